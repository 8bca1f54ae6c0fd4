"""Document limits (depth, aliases, fields) measured in one linear pass, memoised per fragment.

Why not Strawberry's QueryDepthLimiter and MaxAliasesLimiter: both walk every fragment spread
again each time it occurs, so a document whose fragments each spread the next one twice costs
2^n walks (837 bytes with 20 levels held the event loop for seconds). Here each definition is
walked once; a fragment's measure is computed once, after the fragments it spreads, and a spread
adds the measure of its fragment. Counts grow exponentially in such a document, but they are
integers: comparing them costs nothing, and a bomb is refused by its field count.

The measure of a selection set, for every operation:
- depth: how many selection sets nest below the root one (the limit of QueryDepthLimiter:
  `{ agents { nodes { id } } }` is 2); the subtree of an introspection field (`__schema`,
  `__type`) does not count, GraphiQL's own introspection query is deep; graphql-core's
  MaxIntrospectionDepthRule limits those instead;
- aliases and fields: how many field selections (with an alias) the operation makes once every
  fragment spread is replaced by its fragment, which is what execution may resolve.
Fragment cycles and unknown fragments count as empty: validation reports them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    SelectionSetNode,
)

# A count above this is shown as "more than ...": a 60-level bomb has 2^60 fields.
SHOWN_UP_TO = 1_000_000
LIMIT_EXCEEDED = "GRAPHQL_VALIDATION_FAILED"


@dataclass(frozen=True, slots=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    fields: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    """The most an operation may select; each with the setting that changes it."""

    depth: int
    aliases: int
    fields: int


@dataclass(slots=True)
class _Walk:
    """One definition's own selections; its spreads are resolved after their fragments."""

    depth: int
    aliases: int
    fields: int
    # (fragment name, depth of the selection set holding the spread or None when the spread
    # sits under an introspection field, where depth does not count)
    spreads: list[tuple[str, int | None]]


def _walk(selection_set: SelectionSetNode) -> _Walk:
    """The definition's own measure, without recursion (nesting is bounded by the parser, but an
    explicit stack costs nothing and keeps this independent of the recursion limit)."""
    walk = _Walk(0, 0, 0, [])
    stack: list[tuple[SelectionSetNode, int | None]] = [(selection_set, 0)]
    while stack:
        current, level = stack.pop()
        if level is not None:
            walk.depth = max(walk.depth, level)
        for selection in current.selections:
            if isinstance(selection, FragmentSpreadNode):
                walk.spreads.append((selection.name.value, level))
                continue
            nested = selection.selection_set  # type: ignore[attr-defined]
            nested_level = level
            if isinstance(selection, FieldNode):
                walk.fields += 1
                walk.aliases += selection.alias is not None
                if level is not None:
                    nested_level = None if selection.name.value.startswith("__") else level + 1
            if nested is not None:
                stack.append((nested, nested_level))
    return walk


def _combine(walk: _Walk, fragments: dict[str, Measure]) -> Measure:
    depth, aliases, fields = walk.depth, walk.aliases, walk.fields
    for name, level in walk.spreads:
        spread = fragments.get(name)
        if spread is None:
            continue  # unknown, or part of a cycle
        aliases += spread.aliases
        fields += spread.fields
        if level is not None:
            depth = max(depth, level + spread.depth)
    return Measure(depth, aliases, fields)


def _fragment_order(walks: dict[str, _Walk]) -> Iterator[str]:
    """Every fragment after those it spreads (post-order, iterative); a spread closing a cycle is
    skipped, so the fragments of a cycle measure as if it were cut there."""
    done: set[str] = set()
    for root in walks:
        if root in done:
            continue
        path = [(root, iter(walks[root].spreads))]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread, _level in spreads:
                if spread in walks and spread not in done and spread not in on_path:
                    path.append((spread, iter(walks[spread].spreads)))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
                yield name


def measure(document: DocumentNode) -> dict[OperationDefinitionNode, Measure]:
    """The measure of each operation of the document, each fragment measured once."""
    walks = {
        definition.name.value: _walk(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    fragments: dict[str, Measure] = {}
    for name in _fragment_order(walks):
        fragments[name] = _combine(walks[name], fragments)
    return {
        definition: _combine(_walk(definition.selection_set), fragments)
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    }


def _shown(count: int) -> str:
    return f"{count:,}" if count <= SHOWN_UP_TO else f"more than {SHOWN_UP_TO:,}"


def limit_errors(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """One error per limit an operation exceeds, each naming the limit and its setting."""
    errors: list[GraphQLError] = []
    spreads = any(isinstance(d, FragmentDefinitionNode) for d in document.definitions)
    counted = " (fragments counted in full)" if spreads else ""
    for operation, found in measure(document).items():
        label = f"Operation '{operation.name.value}'" if operation.name else "The operation"
        checks = (
            ("depth", found.depth, limits.depth, "CREWQL_MAX_QUERY_DEPTH", "nests {} levels deep"),
            ("aliases", found.aliases, limits.aliases, "CREWQL_MAX_ALIASES", "uses {} aliases"),
            ("fields", found.fields, limits.fields, "CREWQL_MAX_FIELDS", "selects {} fields"),
        )
        for limit, count, maximum, setting, what in checks:
            if count > maximum:
                errors.append(
                    GraphQLError(
                        f"{label} {what.format(_shown(count))}{counted}; "
                        f"the {limit} limit is {maximum:,} ({setting}).",
                        [operation],
                        extensions={"code": LIMIT_EXCEEDED, "limit": limit, "maximum": maximum},
                    )
                )
    return errors
