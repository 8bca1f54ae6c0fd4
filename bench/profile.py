"""`--py-spy DIR`: sample a server with py-spy during a measured phase, and summarise where its
CPU went (the raw stacks, plus a text file of the top functions by own and by inclusive samples).

py-spy runs with `--nonblocking` (the server is not paused to be sampled) and `--gil`: a sample
counts only when a thread holds the GIL, so the counts are Python CPU time, of the event loop and
of the driver threads alike, and exclude the loop waiting for I/O and C code that releases the
GIL (SQLite executing a statement).
`--py-spy-native` adds C frames (uvloop, sqlite3, the interpreter) at the price of pausing the
server for each sample.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.output import say

RATE = 200


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, directory: Path | None, label: str, native: bool = False) -> None:
        self.directory = directory
        self.label = label
        self.native = native
        self.proc: subprocess.Popen[bytes] | None = None
        self.raw: Path | None = None

    def start(self, pid: int) -> None:
        if self.directory is None:
            return
        binary = py_spy()
        if binary is None:
            say("  --py-spy: py-spy is not installed; not profiling")
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.raw = self.directory / f"{self.label}.txt"
        argv = [binary, "record", "--pid", str(pid), "--rate", str(RATE)]
        # Native frames (C extensions, the interpreter) need the process paused for each sample.
        # Otherwise only samples that hold the GIL: Python work of any thread, not the event
        # loop waiting in epoll (which uvloop does without a Python frame of its own).
        argv += ["--native"] if self.native else ["--nonblocking", "--gil"]
        argv += ["--format", "raw", "--output", str(self.raw)]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> Path | None:
        """Stops sampling (py-spy writes its file on SIGINT); returns the summary's path."""
        if self.proc is None or self.raw is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if not self.raw.exists():
            say(f"  --py-spy: no profile written for {self.raw.stem}")
            return None
        summary = self.raw.with_suffix(".top.txt")
        summary.write_text(summarise(self.raw.read_text(encoding="utf-8")), encoding="utf-8")
        say(f"  profile: {summary}")
        return summary

    def close(self) -> None:
        """For the session's cleanup: never leave py-spy attached."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def summarise(raw: str, top: int = 40) -> str:
    """Top functions by own samples and by inclusive samples, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples at {RATE} Hz ({total / RATE:.1f} CPU seconds)", ""]
    for title, counter in (("own", own), ("inclusive", inclusive)):
        lines.append(f"top {top} by {title} samples")
        for name, count in counter.most_common(top):
            lines.append(f"{count / total * 100:6.1f}%  {name}")
        lines.append("")
    return "\n".join(lines)


def _function(frame: str) -> str:
    """`func (path/file.py:123)` without the line number, so lines of one function add up."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    return f"{name} ({path})" if path else name
