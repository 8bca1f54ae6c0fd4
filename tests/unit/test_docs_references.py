"""The docs name only things that exist: every `backend/...` path, and every function written in
call form (`name()`, `Class.method(args)`) in backticks.

Restricted on purpose so that it cannot be flaky or noisy: only snake_case names are checked
(GraphQL fields such as `createTask(input)` or `crew(id:)` are camelCase, classes CapWords,
settings UPPER_CASE), and a name counts when it is defined in this repository's Python sources,
is a builtin, is importable as written (`module.name()`), is one of SQLAlchemy's, or is one of the
SQL functions below.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])
PATH = re.compile(r"(?<![\w/.-])backend/[\w./-]*[\w/]")
# `name(...)` or `a.b.name(...)` in backticks, whose arguments hold no `:` (GraphQL arguments).
CALL = re.compile(r"`((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)\(([^`:()]*)\)")


# SQL, not Python: PostgreSQL's and SQLite's functions the docs show in statements.
SQL_FUNCTIONS = frozenset({"pg_notify", "wal_checkpoint", "pg_terminate_backend", "count"})
SNAKE = re.compile(r"[a-z_][a-z0-9_]*")


@cache
def sources() -> tuple[frozenset[str], dict[str, tuple[set[str], list[str]]]]:
    """Every function, class, method and module- or class-level name in our sources; and per
    class its own members and the names of its bases."""
    names: set[str] = set()
    classes: dict[str, tuple[set[str], list[str]]] = {}
    for folder in ("backend", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
                if isinstance(node, ast.ClassDef):
                    members, bases = classes.setdefault(node.name, (set(), []))
                    for base in node.bases:  # `Base` or `Base[Model]`
                        base = base.value if isinstance(base, ast.Subscript) else base
                        if isinstance(base, ast.Name):
                            bases.append(base.id)
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                            members.add(item.name)
                        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                            members.add(item.target.id)
    return frozenset(names), classes


def has_member(cls: str, name: str, seen: frozenset[str] = frozenset()) -> bool:
    classes = sources()[1]
    if cls not in classes or cls in seen:
        return cls not in classes  # a base we do not define (a library's): cannot tell
    members, bases = classes[cls]
    return name in members or any(has_member(b, name, seen | {cls}) for b in bases)


def exists(name: str) -> bool:
    prefix, _, last = name.rpartition(".")
    owner = prefix.rpartition(".")[2]
    if SNAKE.fullmatch(last) and owner in sources()[1]:  # `OurClass.method()`: on that class
        return has_member(owner, last)
    if not SNAKE.fullmatch(last) or last in SQL_FUNCTIONS or last in sources()[0]:
        return True
    if hasattr(builtins, last) or importable(name):
        return True
    return any(hasattr(importlib.import_module(m), last) for m in ("sqlalchemy", "sqlalchemy.orm"))


def importable(dotted: str) -> bool:
    """`package.module.attribute.attribute` resolves: the longest importable module, then
    attributes."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_backend_paths_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = sorted({p for p in PATH.findall(text) if not (ROOT / p.rstrip(".")).exists()})
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_functions_in_call_form_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    unknown = sorted({name for name, _ in CALL.findall(text) if not exists(name)})
    assert not unknown, f"{doc.name} names functions that do not exist: {unknown}"
