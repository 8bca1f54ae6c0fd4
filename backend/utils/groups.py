"""Rows of many parents, read in one statement, handed back per parent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

K = TypeVar("K")
T = TypeVar("T")
V = TypeVar("V")


def _same(item: Any) -> Any:
    return item


def group_by(
    keys: Iterable[K],
    items: Iterable[T],
    key: Callable[[T], K],
    convert: Callable[[T], V] = _same,
) -> dict[K, list[V]]:
    """`convert(item)` for each of `items` under its `key`, in the items' order. Every one of
    `keys` has an entry, an empty list when no item has it, so a batch loader answers each id it
    was asked for."""
    found: dict[K, list[V]] = {k: [] for k in keys}
    for item in items:
        found[key(item)].append(convert(item))
    return found
