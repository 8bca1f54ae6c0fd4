"""What /proc says about a process: CPU seconds, open sockets, peak memory (Linux only).

Used to tell a saturated server from a slow one, and to see that the sockets of a thousand
websocket clients are really closed on the server's side afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(path: str) -> float | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of all the process's threads so far; None when unreadable."""
    return _stat_cpu(f"/proc/{pid}/stat")


def main_thread_cpu_seconds(pid: int) -> float | None:
    """CPU of the main thread alone: in our servers, the event loop's."""
    return _stat_cpu(f"/proc/{pid}/task/{pid}/stat")


def connections_on_port(port: int) -> int:
    """TCP connections whose local port is `port` and that a process still holds (not
    listening; TIME_WAIT has no owner and is not counted): a server's open client sockets."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            state, inode = fields[3], fields[9]
            if local_port == port and state != "0A" and inode != "0":
                count += 1
    return count


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class CpuMeter:
    """CPU seconds a process used between `start()` and `stop()`, and the share of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu0: float | None = None
        self._main0: float | None = None
        self._t0 = 0.0
        self.cpu_s: float | None = None
        self.main_cpu_s: float | None = None  # the main (event-loop) thread alone
        self.wall_s = 0.0

    def start(self, now: float) -> None:
        self._cpu0 = cpu_seconds(self.pid)
        self._main0 = main_thread_cpu_seconds(self.pid)
        self._t0 = now

    def stop(self, now: float) -> None:
        cpu1 = cpu_seconds(self.pid)
        main1 = main_thread_cpu_seconds(self.pid)
        self.wall_s = now - self._t0
        if self._cpu0 is not None and cpu1 is not None:
            self.cpu_s = cpu1 - self._cpu0
        if self._main0 is not None and main1 is not None:
            self.main_cpu_s = main1 - self._main0

    @property
    def share(self) -> float | None:
        """1.0 = one core busy for the whole interval."""
        if self.cpu_s is None or self.wall_s <= 0:
            return None
        return self.cpu_s / self.wall_s

    @property
    def main_share(self) -> float | None:
        """The event-loop thread's share of one core: near 1.0, the loop is the bottleneck."""
        if self.main_cpu_s is None or self.wall_s <= 0:
            return None
        return self.main_cpu_s / self.wall_s


def _cpu_times() -> tuple[int, int, int] | None:
    """From /proc/stat, in ticks: (all, idle + iowait, user + nice + system)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return None
    return sum(values), values[3] + (values[4] if len(values) > 4 else 0), sum(values[:3])


def machine_busy(seconds: float = 1.0) -> float | None:
    """The share of all cores busy over the next `seconds`: measured while our server is idle,
    it says how much of the machine other work takes (the bench notes it with each run)."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None or after[0] == before[0]:
        return None
    return 1.0 - (after[1] - before[1]) / (after[0] - before[0])


def postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL process connected to `database` (its title names
    the database: `postgres: 15/main: user database host(port) state`)."""
    found: dict[int, float] = {}
    needle = f" {database} ".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            title = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and needle in title:
            cpu = _stat_cpu(f"{entry.path}/stat")
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Phase:
    """CPU over one measured phase: each named process (all its threads), the PostgreSQL
    backends serving `database` (a backend that exits meanwhile takes its CPU with it), this
    (the bench's) process, and what the rest of the machine used meanwhile: others' work, which
    disturbs a measurement on a shared machine (user + system time from /proc/stat; interrupt
    handling, such as loopback traffic, is left out)."""

    def __init__(self, pids: dict[str, int], database: str | None = None) -> None:
        self.meters = {label: CpuMeter(pid) for label, pid in pids.items()}
        self.database = database
        self.wall_s = 0.0
        self._t0 = 0.0
        self._busy0: int | None = None
        self._own0 = 0.0
        self._db0: dict[int, float] = {}
        self.busy_core_s: float | None = None  # the whole machine
        self.own_cpu_s = 0.0
        self.database_cpu_s = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        for meter in self.meters.values():
            meter.start(self._t0)
        times = _cpu_times()
        self._busy0 = None if times is None else times[2]
        self._own0 = _own_cpu()
        self._db0 = postgres_backends(self.database) if self.database else {}

    def stop(self) -> None:
        ended = time.monotonic()
        for meter in self.meters.values():
            meter.stop(ended)
        self.wall_s = ended - self._t0
        times = _cpu_times()
        if self._busy0 is not None and times is not None:
            self.busy_core_s = (times[2] - self._busy0) / TICKS
        self.own_cpu_s = _own_cpu() - self._own0
        if self.database:
            db1 = postgres_backends(self.database)
            self.database_cpu_s = sum(cpu - self._db0.get(pid, 0.0) for pid, cpu in db1.items())

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds by process label, and "postgres" (the database's backends)."""
        found = {label: meter.cpu_s or 0.0 for label, meter in self.meters.items()}
        if self.database:
            found["postgres"] = self.database_cpu_s
        return found

    def cores(self) -> dict[str, float]:
        """Cores used on average (1.0 = one core busy throughout), the bench client included."""
        wall = self.wall_s or 1.0
        found = {label: cpu / wall for label, cpu in self.cpu_s().items()}
        found["bench client"] = self.own_cpu_s / wall
        return found

    def others(self) -> float | None:
        """Cores' worth of CPU that other processes used, on average (0.5 = half a core)."""
        if self.busy_core_s is None or self.wall_s <= 0:
            return None
        ours = sum(self.cpu_s().values()) + self.own_cpu_s
        return max(0.0, self.busy_core_s - ours) / self.wall_s
