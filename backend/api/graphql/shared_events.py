"""Shared subscription work: one execution of the selection and one encoded payload per event
for every subscriber that would get the same bytes.

Without it, each subscriber of an execution runs graphql-core's per-event execution of its
selection and JSON-encodes the result, once per subscriber per event (docs/performance.md: about
half of the CPU per delivered message with 1,000 subscribers). Subscribers whose root field
(alias, name, directives, selection), fragments, the values of the variables used inside that
selection, workspace and role are the same get byte-identical results for one event, so the
result is computed once and the others reuse it.

What is NOT shared, so every subscriber keeps its own semantics: its source stream (its `after`
cursor, catch-up from the table, bounded bus buffer and lag handling, in ExecutionWatch), the
order of its events, and anything that failed (a result with errors is never reused). The root
field's own arguments (`executionId`, `after`, a filter) decide which events a subscriber gets,
not how one event is shaped, so they are left out of the key; the event itself is named by
(`executionId`, `seq`), which never changes once committed.

Why a hand-written memo: graphql-core and Strawberry have no multiplexing; graphql-core's
documented hook for per-event execution is the executor class (`executor_class`, which Strawberry
passes as `execution_context_class`). The memo is a small per-process LRU; an evicted event is
simply executed again by whoever asks later (a slow subscriber catching up).

Websocket subscribers of a group get a shared event's frame without going through the executor
at all (direct.py); the executor tells their sink the group when it is built.
"""

from __future__ import annotations

import inspect
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from graphql import (
    ExecutionResult,
    FieldNode,
    OperationType,
    VariableNode,
    Visitor,
    print_ast,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from backend.api.graphql.direct import DIRECT, event_key
from backend.api.graphql.types.execution import ExecutionEvent

if TYPE_CHECKING:
    from backend.api.graphql.relay import GroupRelay

DEFAULT_CAPACITY = 4096
MAX_GROUPS = 10_000
_GROUP_NUMBERS = itertools.count(1)  # process-wide: a number never stands for two groups


class SharedEvents:
    """Per-process memo: (group, execution id, seq) -> the per-event result, and its encoded
    `{"data": ...}` payload, found by the identity of the `data` it handed out."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, enabled: bool = True) -> None:
        self.capacity = capacity
        self.enabled = enabled
        self._results: OrderedDict[Hashable, ExecutionResult] = OrderedDict()
        # id(data) -> (data, encoded payload or None): the entry holds `data`, so its id is
        # not reused while the entry lives.
        self._payloads: dict[int, tuple[Any, str | None]] = {}
        # group key -> a small number standing for it in every event's key, so that a lookup
        # (per subscriber and event) hashes three numbers, not the nested key
        self._groups: dict[Hashable, int] = {}
        # (group number, execution id's int) -> the group's relay (relay.py), while it has members
        self.relays: dict[tuple[Hashable, int], GroupRelay] = {}
        self.hits = 0
        self.misses = 0
        self.direct = 0  # hits answered with the encoded payload for a DirectSink or a relay
        self.relayed = 0  # frames a group's relay wrote (relay.py), of `direct`

    def intern(self, group: Hashable | None) -> int | None:
        """The number standing for `group`. Kept for MAX_GROUPS groups; past that the table
        starts over with new numbers (a group then misses its older events, nothing more)."""
        if group is None:
            return None
        number = self._groups.get(group)
        if number is None:
            if len(self._groups) >= MAX_GROUPS:
                self._groups.clear()
            number = self._groups[group] = next(_GROUP_NUMBERS)
        return number

    def get(self, key: Hashable) -> ExecutionResult | None:
        found = self._results.get(key)
        if found is None:
            self.misses += 1
            return None
        self._results.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Hashable, result: ExecutionResult) -> None:
        if result.errors or result.data is None or key in self._results:
            return
        self._results[key] = result
        self._payloads[id(result.data)] = (result.data, None)
        while len(self._results) > self.capacity:
            _, old = self._results.popitem(last=False)
            self._payloads.pop(id(old.data), None)

    def encoded(self, key: Hashable, encode: Callable[[object], str]) -> str | None:
        """The encoded `{"data": ...}` payload of a stored result; None when there is none (a
        miss is not counted: the event then takes the executor's path, which counts it)."""
        found = self._results.get(key)
        if found is None:
            return None
        self._results.move_to_end(key)
        self.hits += 1
        self.direct += 1
        return self.encoded_payload(found.data, encode)

    def encoded_payload(self, data: object, encode: Callable[[object], str]) -> str | None:
        """`{"data": data}` encoded once for everyone, when `data` is a shared result's (by
        identity); None otherwise (the caller encodes as usual)."""
        entry = self._payloads.get(id(data))
        if entry is None or entry[0] is not data:
            return None
        if entry[1] is None:
            entry = (data, encode({"data": data}))
            self._payloads[id(data)] = entry
        return entry[1]

    def __len__(self) -> int:
        return len(self._results)


class _VariableNames(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _group_key(executor: Any) -> Hashable | None:
    """What, besides the event, decides the per-event result; None when not shareable."""
    context = getattr(executor, "context_value", None)
    shared = getattr(context, "shared_events", None)
    principal = getattr(context, "principal", None)
    operation = executor.operation
    if shared is None or not shared.enabled or principal is None:
        return None
    if operation.operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None  # a root fragment: not worth the bookkeeping
    field = selections[0]
    fragments = executor.fragment_definitions
    shape = (
        field.alias.value if field.alias else None,
        field.name.value,
        tuple(print_ast(directive) for directive in field.directives or ()),
        print_ast(field.selection_set) if field.selection_set else None,
        tuple(sorted((name, print_ast(node)) for name, node in fragments.items())),
    )
    used = _VariableNames()
    for node in (*(field.directives or ()), field.selection_set, *fragments.values()):
        if node is not None:
            visit(node, used)
    coerced = executor.variable_values.coerced
    values = repr(sorted((name, coerced.get(name)) for name in used.names))
    return (shape, values, principal.workspace_id, principal.role)


class SharingExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, answering a subscription event from SharedEvents when a
    subscriber of the same group already executed it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Once per operation; each event's executor is a copy of this one and keeps it.
        shared = getattr(self.context_value, "shared_events", None)
        self._group = None if shared is None else shared.intern(_group_key(self))
        sink = DIRECT.get()
        if sink is not None:  # a websocket operation: its resolver may send shared frames
            sink.group = self._group
            sink.executor = self

    def execute_operation(self, serially: bool | None = None) -> Any:
        group = self._group
        event = self.root_value
        seq = getattr(event, "seq", None)  # the pydantic-made type's fields are not typed
        if group is None or not isinstance(event, ExecutionEvent) or seq is None:
            return super().execute_operation(serially)
        shared: SharedEvents = self.context_value.shared_events
        key = event_key(group, event.execution_id, seq)
        found = shared.get(key)
        if found is not None:
            return found
        result = super().execute_operation(serially)
        if inspect.isawaitable(result):
            return _stored(shared, key, result)
        if isinstance(result, ExecutionResult):
            shared.put(key, result)
        return result


async def _stored(shared: SharedEvents, key: Hashable, pending: Awaitable[Any]) -> Any:
    result = await pending
    if isinstance(result, ExecutionResult):
        shared.put(key, result)
    return result
