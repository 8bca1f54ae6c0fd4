from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import jsonschema
from pydantic import AfterValidator, Field

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, Text
from backend.schemas.tool.names import ToolList

MAX_SCHEMA_CHARS = 32_000


def _checked(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema of an object, checked against its meta-schema now, so that a bad schema
    is the caller's ValidationError here and never a failure at run time."""
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise ValueError(f"is longer than {MAX_SCHEMA_CHARS} characters as JSON")
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ValueError(f"is not a valid JSON Schema: {error.message} (at {where})") from None
    if schema.get("type") != "object":
        raise ValueError('must describe a JSON object: give it "type": "object"')
    return schema


OutputSchema = Annotated[dict[str, Any], AfterValidator(_checked)]


class TaskBase(InputSchema):
    name: Name
    description: Text
    expected_output: Text
    agent_id: uuid.UUID
    # Ids of the tasks whose output this one reads, in the order they are presented to the model.
    context_task_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    human_input: bool = Field(
        default=False,
        description="Wait for a person to approve the answer (or send feedback) before going on.",
    )
    output_schema: OutputSchema | None = Field(
        default=None,
        description="A JSON Schema (of an object) the answer must validate against; the answer "
        "is then kept as JSON and read as JSON by tasks that take it as context.",
    )
    tools: ToolList = Field(
        default_factory=list, description="Tools it may use besides its agent's."
    )
