"""Reading what a test app wrote to its log files (to check that a secret is not there)."""

from __future__ import annotations

from pathlib import Path


def read_logs(directory: Path) -> str:
    files = list(directory.glob("*.log"))
    assert files, f"no log file in {directory}"
    return "\n".join(f.read_text() for f in files)
