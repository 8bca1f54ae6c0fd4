"""Runs one server under uvicorn: `python -m bench.serve {crewql,bare} --port P`.

Both servers go through this one function, so they run with the same uvicorn settings: uvloop and
httptools named explicitly (not "auto"), one worker, log level warning, no access log, and the
other options `crewql serve` passes (proxy headers, graceful shutdown timeout, log_config=None).
Our server reads its settings from CREWQL_* variables, which the bench sets, and logs through
loguru exactly as `crewql serve` configures it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import uvicorn

APPS = {
    "crewql": "backend.main:create_app",
    "bare": "bench.bare:create_app",
}

UVICORN_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "loop": "uvloop",
    "http": "httptools",
    "workers": 1,
    "log_level": "warning",
    "log_config": None,
    "access_log": False,
    "proxy_headers": True,
    "timeout_graceful_shutdown": 5,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.app == "crewql":
        from backend.config.logging import configure_logging
        from backend.config.settings import get_settings

        configure_logging(get_settings())
    uvicorn.run(APPS[args.app], factory=True, port=args.port, **UVICORN_SETTINGS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
