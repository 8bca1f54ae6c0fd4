"""The docs name only things that exist: every `backend/...` path, and every function written in
call form (`name()`, `Class.method(args)`) in backticks. docs/architecture.md, which walks requests
through the code, is held to more: every file, folder, `Class.member` and snake_case name in it.

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
                elif isinstance(node, ast.arg):  # a parameter (`check_llms` of a service)
                    names.add(node.arg)
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


# docs/architecture.md walks requests through the code, so every name it shows must exist, not only
# the ones in call form: `Class.member`, snake_case names, and file and folder names.
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TOKEN = re.compile(r"`([^`\n]+)`")
NAME = re.compile(r"@?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)(\(.*\))?")
FILE = re.compile(r"[\w.*/-]+(\.py|/)")
# What the page names that is not ours or not in a checkout: Pydantic's and aiosqlite's methods,
# PostgreSQL's connection setting and our NOTIFY channels, the graphql-ws message type, HTTP
# headers, and the log folder (made at run time).
EXTERNAL = frozenset(
    {
        "model_construct",
        "execute_fetchall",
        "application_name",
        "crewql_events",
        "crewql_progress",
        "crewql_cancels",
        "crewql_turns",
        "connection_init",
        "Accept",
        "Authorization",
        "logs/",
    }
)
# Where the classes the page names from our dependencies live.
LIBRARIES = (
    "sqlalchemy.exc",
    "sqlalchemy.ext.asyncio",
    "strawberry.extensions",
    "pydantic_ai",
    "pydantic_ai.mcp",
)


@cache
def repository_files() -> frozenset[str]:
    """Every file and folder of the repository's own trees, by each of its trailing paths."""
    found = {p.name + ("/" if p.is_dir() else "") for p in ROOT.iterdir()}
    for folder in ("backend", "tests", "bench", "web", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if "__pycache__" in path.parts or "node_modules" in path.parts:
                continue
            parts = path.relative_to(ROOT).parts
            suffix = "/" if path.is_dir() else ""
            found.update("/".join(parts[i:]) + suffix for i in range(len(parts)))
    return frozenset(found)


def architecture_name_exists(name: str) -> bool:
    from backend.db.base import Base

    tables = Base.metadata.tables.values()
    last = name.rpartition(".")[2]
    return (
        last in EXTERNAL
        or any(hasattr(importlib.import_module(m), last) for m in LIBRARIES)
        or last in {t.name for t in tables}
        or last in {c.name for t in tables for c in t.c}
        or f"{last}.py" in repository_files()
        or (last in sources()[0] and exists(name))
    )


def test_architecture_names_exist() -> None:
    import backend.models  # noqa: F401 - the tables, for their names

    missing = []
    for token in sorted(set(TOKEN.findall(ARCHITECTURE.read_text(encoding="utf-8")))):
        if token in EXTERNAL or token in repository_files():
            continue
        if FILE.fullmatch(token) and not token.startswith("/"):
            if "*" not in token and token.removeprefix("backend/") not in repository_files():
                missing.append(token)
            continue
        match = NAME.fullmatch(token)
        if match is None:
            continue
        name = match.group(1)
        parts = name.split(".")
        if any(re.search(r"[a-z][A-Z]", p) and p[0].islower() for p in parts):
            continue  # camelCase: a GraphQL name (docs/api.md's business)
        if name.isupper() or re.fullmatch(r"[A-Z0-9_]+", parts[-1]):
            continue  # a setting, a status, an error code
        if "_" not in name and "." not in name and not name[0].isupper():
            continue  # a plain word
        if not architecture_name_exists(name):
            missing.append(token)
    assert not missing, f"architecture.md names what does not exist: {missing}"
