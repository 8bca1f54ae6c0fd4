"""The GraphQL documents the bench sends; (a) and (b) share one selection."""

from __future__ import annotations

CREW_SELECTION = (
    "id name description "
    "tasks { id name description expectedOutput agent { id name role } } "
    "agents { id name }"
)

# (a) one crew by id, through our server.
CREW_BY_ID = "query CrewById($id: ID!) { crew(id: $id) { " + CREW_SELECTION + " } }"

# (b) a page of 100 crews; the bare app answers the same document from memory.
CREWS_PAGE = "query CrewsPage { crews(first: 100) { edges { node { " + CREW_SELECTION + " } } } }"

HELLO = "{ hello }"

PAGE_SIZE = 100
