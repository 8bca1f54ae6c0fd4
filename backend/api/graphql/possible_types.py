"""Apollo Client's `possibleTypes`: which object types each union and interface may be.

Apollo's cache cannot tell, from a result alone, that a `ValidationError` is an `Error` or a
`CreateExecutionResult`; without this map it drops the fields selected through `... on Error`
(the `code` and `message` of every typed error). `crewql export-schema --possible-types FILE`
writes it; docs/clients.md shows where it goes.
"""

from __future__ import annotations

from graphql import GraphQLInterfaceType, GraphQLSchema, GraphQLUnionType


def possible_types(schema: GraphQLSchema) -> dict[str, list[str]]:
    """{abstract type: [object types]}, both sorted, introspection types left out."""
    found: dict[str, list[str]] = {}
    for name, type_ in sorted(schema.type_map.items()):
        if name.startswith("__") or not isinstance(type_, GraphQLUnionType | GraphQLInterfaceType):
            continue
        found[name] = sorted(t.name for t in schema.get_possible_types(type_))
    return found
