"""Every GraphQL document the documentation shows validates against the schema the code serves.

Documents are found in README.md and docs/*.md: every ```graphql block, every `"query": "…"` of
a JSON request or transcript in any block, and every query, mutation or subscription written as a
string in a js, python or sh block; and in GraphiQL's welcome text, both its runnable part and its
commented example. A block that shows an error on purpose (a syntax error, a misspelt field) is
preceded by `<!-- invalid on purpose -->`; such a block must still hold a document that fails, so
the marker cannot outlive its reason. A block of several operations, meant to be run one after
the other, is validated one operation at a time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

from backend.api.graphiql import PAGE_TEMPLATE
from backend.api.graphql.schema import build_schema as build_crewql_schema
from backend.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GRAPHIQL_PAGE = PAGE_TEMPLATE
INVALID_ON_PURPOSE = "<!-- invalid on purpose -->"

FENCE = re.compile(r"^```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^```", re.S | re.M)
JSON_QUERY = re.compile(r'"query"\s*:\s*"((?:[^"\\]|\\.)*)"')
# A string literal (template, triple-quoted or plain) that starts like an operation.
CODE_STRING = re.compile(
    r"(?:`|\"\"\"|')\s*((?:query|mutation|subscription)(?=[\s({])[^`'\"]*?)\s*(?:`|\"\"\"|')", re.S
)
GET_QUERY = re.compile(r"'query=([^']*)'")  # curl's --data-urlencode 'query=…'
WELCOME = re.compile(r"var DEFAULT_QUERY = \[(?P<lines>.*?)\]\.join", re.S)


@dataclass(frozen=True)
class Block:
    where: str
    documents: tuple[str, ...]
    invalid_on_purpose: bool


def documents_in(lang: str, body: str) -> list[str]:
    if lang == "graphql":
        return [body]
    found = [json.loads(f'"{raw}"') for raw in JSON_QUERY.findall(body)]
    if lang in ("js", "python", "sh"):
        found += CODE_STRING.findall(body)
    if lang == "sh":
        found += GET_QUERY.findall(body)
    # `${…}` marks a JavaScript template that only looks like an operation (a log line)
    return [text for text in found if "${" not in text]


def doc_blocks() -> list[Block]:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            documents = documents_in(match["lang"], match["body"])
            if not documents:
                continue
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip().splitlines()[-1:]
            blocks.append(
                Block(
                    f"{page.relative_to(ROOT)}:{line}",
                    tuple(documents),
                    before == [INVALID_ON_PURPOSE],
                )
            )
    return blocks


def welcome_documents() -> tuple[str, ...]:
    """GraphiQL's first-visit editor text, and the example its comments show."""
    match = WELCOME.search(GRAPHIQL_PAGE.read_text(encoding="utf-8"))
    assert match, f"no DEFAULT_QUERY in {GRAPHIQL_PAGE}"
    lines = [json.loads(item) for item in re.findall(r'"(?:[^"\\]|\\.)*"', match["lines"])]
    text = "\n".join(lines)
    example = "\n".join(line.removeprefix("#   ") for line in lines if line.startswith("#   "))
    assert example.strip(), "the welcome text shows no example"
    return text, example


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    """The schema the code serves (not the committed schema.graphql, which could be stale)."""
    return build_schema(build_crewql_schema(load_settings(log_to_files=False)).as_str())


def problems(schema: GraphQLSchema, text: str) -> list[str]:
    try:
        document = parse(text)
    except GraphQLError as error:
        return [error.message]
    if any(not isinstance(node, OperationDefinitionNode) for node in document.definitions) and all(
        "type_definition" in node.kind or node.kind == "schema_definition"
        for node in document.definitions
    ):
        return []  # a schema excerpt (SDL), not an operation
    return [
        error.message for part in one_operation_each(document) for error in validate(schema, part)
    ]


def one_operation_each(document: DocumentNode) -> list[DocumentNode]:
    operations = [n for n in document.definitions if isinstance(n, OperationDefinitionNode)]
    if len(operations) <= 1:
        return [document]
    shared = [n for n in document.definitions if not isinstance(n, OperationDefinitionNode)]
    return [DocumentNode(definitions=(operation, *shared)) for operation in operations]


BLOCKS = doc_blocks()


def test_the_documentation_shows_graphql() -> None:
    # a guard against a pattern that silently stops finding anything
    assert len(BLOCKS) > 80
    assert sum(block.invalid_on_purpose for block in BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.where)
def test_every_documented_document_validates(schema: GraphQLSchema, block: Block) -> None:
    found = {text: problems(schema, text) for text in block.documents}
    if block.invalid_on_purpose:
        assert any(found.values()), f"{block.where} is marked invalid on purpose but validates"
    else:
        assert not any(found.values()), {text[:80]: p for text, p in found.items() if p}


def test_graphiqls_welcome_text_and_its_example_validate(schema: GraphQLSchema) -> None:
    for text in welcome_documents():
        assert problems(schema, text) == [], text
