"""`make bench`: our server against a bare Strawberry app, in one run, on this machine.

`python -m bench` starts each server in its own process with the same uvicorn settings, seeds
our server through its own GraphQL API, drives every server with wrk (or a Python fallback), and
prints requests/s, p50 and p99 with the two target ratios. docs/performance.md explains the method.
"""
