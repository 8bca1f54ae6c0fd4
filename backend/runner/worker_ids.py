"""Worker ids, and telling from one whether its process is gone.

A worker id is `pid-space:pid:random`. Two processes in the same pid space (same host, boot and
PID namespace) can check each other's pid, so the reaper need not wait for the lease of a worker
of this machine whose process has died.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path


def pid_space() -> str:
    """The host name, plus a digest of the boot and PID namespace when Linux tells them: two
    processes with the same one can check each other's pid; a host name alone does not prove it
    (containers with the host's name, cloned machines)."""
    host = socket.gethostname()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return f"{host}@{hashlib.sha256(f'{boot}/{namespace}'.encode()).hexdigest()[:6]}"


def make_worker_id() -> str:
    return f"{pid_space()}:{os.getpid()}:{secrets.token_hex(3)}"


def pid_space_of(worker_id: str) -> str:
    """The pid space a worker id names (the id itself if it is not one of ours)."""
    parts = worker_id.rsplit(":", 2)
    return parts[0] if len(parts) == 3 else worker_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, its parent has not collected it yet) still answers signal 0.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here, or it just went: the next look tells
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def stopped_local_worker(own_worker_id: str) -> Callable[[str | None], bool]:
    """Recognises workers of this host whose process is gone (or is this process in an earlier
    life: same pid, other id), so their executions need not wait for the lease to expire."""
    host, pid = pid_space(), os.getpid()

    def is_dead(worker_id: str | None) -> bool:
        if worker_id is None:
            return True
        parts = worker_id.rsplit(":", 2)
        if len(parts) != 3 or pid_space_of(worker_id) != host or worker_id == own_worker_id:
            return False
        try:
            worker_pid = int(parts[1])
        except ValueError:
            return False
        return worker_pid == pid or not _pid_alive(worker_pid)

    return is_dead
