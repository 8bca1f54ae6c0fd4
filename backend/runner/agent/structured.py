"""Structured output: a task's `outputSchema` as its agent's output type, validated in full.

PydanticAI asks the model for the answer through an output tool whose parameters are the schema
(`StructuredDict`) and runs `output_validator`s on what comes back; a validator that raises
`ModelRetry` sends the model the reason and lets it try again, at most n times
(`retries={"output": n}`), after which the run fails (UnexpectedModelBehavior). `StructuredDict`
itself only checks that the answer is an object, so the validator checks it against the whole
schema with jsonschema (the library that checked the schema when the task was saved).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic_ai import Agent, ModelRetry, StructuredDict, ToolOutput
from pydantic_ai.models import Model

# Problems quoted back to the model per retry: enough to fix, short enough to read.
MAX_PROBLEMS = 5


def structured_agent(
    model: Model, instructions: str, name: str, schema: dict[str, Any], retries: int
) -> Agent[None, Any]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    agent: Agent[None, Any] = Agent(
        model,
        instructions=instructions,
        name=name,
        # One budget for both ways an answer can miss: arguments that are not an object of the
        # schema's shape (the tool's own validation) and the full check below.
        output_type=ToolOutput(
            StructuredDict(schema),
            name="final_answer",
            description="The task's answer, as the schema says.",
            max_retries=retries,
        ),
        retries={"output": retries},
    )

    @agent.output_validator
    def matches(output: Any) -> Any:
        problems = mismatches(validator, output)
        if problems:
            raise ModelRetry(
                "The answer does not match the required JSON Schema: " + "; ".join(problems)
            )
        return output

    return agent


def mismatches(validator: Any, value: Any) -> list[str]:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or 'the answer'}: {e.message}"
        for e in errors[:MAX_PROBLEMS]
    ]


def as_text(value: Any) -> str:
    """The structured answer as the task's output text, and as context for later tasks."""
    return json.dumps(value, ensure_ascii=False, indent=2)
