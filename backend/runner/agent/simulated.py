"""The simulated model (llm `simulated[/options]`): deterministic, offline, able to call tools.

For demos, tests and benchmarks. It is a PydanticAI `FunctionModel` whose stream function follows
a script written in the llm string's options, comma-separated after the slash:

- `delay=<seconds>`: how long the final answer takes to stream (default from settings);
- `chunk=<characters>`: the size of each streamed piece (default from settings);
- `fail`: the answer breaks off half-way and the task fails;
- `call=<tool>` or `call=<tool>{json arguments}`: one model request that calls that tool; several
  `call=` options make several requests, in order. Then comes the final answer, which quotes
  what each tool returned.
- a task with an output schema gets an answer that fits it (a deterministic sample of the schema,
  words from the prompt), through PydanticAI's output tool; `mismatch=<n>`: the first n answers
  set every property to null instead, so the run has to retry (output validation).

    simulated/call=current_time,call=http_request{"url":"http://127.0.0.1:8000/healthz"},delay=0

The llm string allows no spaces, so write the JSON without them. The answer is made from the
prompt (a digest of it picks the words) and always says it is simulated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from backend.runner.tools import model_tool_name
from backend.schemas.tool.names import parse_tool_name
from backend.utils.json_sample import sample

WORDS = [
    *("analysis", "insight", "evidence", "summary", "plan", "draft", "outline", "finding"),
    *("source", "trend", "risk", "option", "result", "detail", "context", "step", "goal"),
    *("answer", "review", "signal", "pattern", "estimate"),
]
RESULT_QUOTE_CHARS = 200
TOOL_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")  # also `mcp:<server>/<tool>`


class SimulatedFailure(Exception):
    """The script asked to fail, or cannot be followed; the message is safe to show."""


@dataclass(frozen=True)
class ScriptedCall:
    tool: str
    args_json: str  # a JSON object


@dataclass(frozen=True)
class Script:
    delay: float
    chunk: int
    fail: bool = False
    calls: tuple[ScriptedCall, ...] = field(default_factory=tuple)
    mismatch: int = 0


def _split_options(options: str) -> list[str]:
    """Splits at commas outside braces, brackets and strings (tool arguments hold commas)."""
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for index, char in enumerate(options):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(options[start:index])
            start = index + 1
    parts.append(options[start:])
    return [p.strip() for p in parts if p.strip()]


def _call(value: str) -> ScriptedCall:
    name, brace, args = value.partition("{")
    name = name.strip()
    if not name:
        raise SimulatedFailure(f"call={value!r} names no tool")
    if not TOOL_NAME.fullmatch(name):
        raise SimulatedFailure(f"call={value!r}: {name!r} is not a tool name")
    if not brace:
        return ScriptedCall(name, "{}")
    try:
        parsed = json.loads("{" + args)
    except ValueError as exc:
        raise SimulatedFailure(f"the arguments of call={value!r} are not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise SimulatedFailure(f"the arguments of call={value!r} must be a JSON object")
    return ScriptedCall(name, json.dumps(parsed, separators=(",", ":")))


def parse_script(options: str, default_delay: float, default_chunk: int) -> Script:
    """The script in `options` (the part of the llm string after `simulated/`)."""
    delay, chunk, fail, calls, mismatch = default_delay, default_chunk, False, [], 0
    for part in _split_options(options):
        key, equals, value = part.partition("=")
        try:
            if key == "delay" and equals:
                delay = float(value)
                if not 0 <= delay < float("inf"):
                    raise ValueError(value)
            elif key == "chunk" and equals:
                chunk = int(value)
                if chunk < 1:
                    raise ValueError(value)
            elif key == "fail" and not equals:
                fail = True
            elif key == "call" and equals:
                calls.append(_call(value))
            elif key == "mismatch" and equals:
                mismatch = int(value)
                if mismatch < 0:
                    raise ValueError(value)
            else:
                raise SimulatedFailure(
                    f"unknown simulated option {part!r} "
                    "(known: delay=, chunk=, fail, call=, mismatch=)"
                )
        except ValueError:
            raise SimulatedFailure(f"bad value in simulated option {part!r}") from None
    return Script(delay, chunk, fail, tuple(calls), mismatch)


def _prompt_text(messages: list[ModelMessage], instructions: str | None) -> str:
    texts = [instructions or ""]
    for message in messages:
        if isinstance(message, ModelRequest):
            texts += [str(p.content) for p in message.parts if isinstance(p, UserPromptPart)]
    return "\n".join(texts)


def _tool_results(messages: list[ModelMessage]) -> list[str]:
    lines = []
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    content = part.model_response_str()[:RESULT_QUOTE_CHARS]
                    verb = "returned" if part.outcome == "success" else "failed"
                    lines.append(f"Tool {part.tool_name} {verb}: {content}")
    return lines


def _words(messages: list[ModelMessage], instructions: str | None) -> tuple[bytes, list[str]]:
    digest = hashlib.sha256(_prompt_text(messages, instructions).encode()).digest()
    return digest, [WORDS[b % len(WORDS)] for b in digest[:24]]


def structured_answer(
    messages: list[ModelMessage], info: AgentInfo, mismatch: int
) -> dict[int, DeltaToolCall]:
    """A call of the output tool with arguments that fit its schema (or, for the first
    `mismatch` attempts, that do not: every property null)."""
    tool = info.output_tools[0]
    _, words = _words(messages, info.instructions)
    value = sample(tool.parameters_json_schema, lambda n: words[n % len(words)])
    attempts = sum(  # earlier calls of the output tool: each was sent back
        isinstance(part, ToolCallPart) and part.tool_name == tool.name
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
    )
    if attempts < mismatch and isinstance(value, dict):
        value = dict.fromkeys(value)
    return {0: DeltaToolCall(tool.name, json.dumps(value), tool_call_id=f"sim-out-{attempts}")}


def answer(messages: list[ModelMessage], instructions: str | None) -> str:
    prompt = _prompt_text(messages, instructions)
    digest, words = _words(messages, instructions)
    task_line = next(
        (line for line in prompt.splitlines() if line.startswith("Task: ")), "Task: (none)"
    )
    tools = "".join(f"\n{line}" for line in _tool_results(messages))
    return (
        f"[simulated answer] {task_line[6:][:120]}\n"
        f"Key points: {', '.join(words[:8])}.\n"
        f"Details: {' '.join(words[8:])}.{tools}\n"
        f"(Simulated by crewql; no language model was called. Fingerprint {digest[:4].hex()}.)"
    )


def model_name(tool: str) -> str:
    """The name the model sees: MCP tools (`mcp:<server>/<tool>`) are renamed for model APIs."""
    ref = parse_tool_name(tool)
    if ref is not None and ref.server is not None and ref.tool is not None:
        return model_tool_name(ref.server, ref.tool)
    return tool


class SimulatedStream:
    """The stream function of a `FunctionModel` that follows one script."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def __call__(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        return self._stream(messages, info)

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        step = sum(1 for m in messages if isinstance(m, ModelResponse))
        if step < len(self.script.calls):
            call = self.script.calls[step]
            available = {t.name for t in info.function_tools}
            name = model_name(call.tool)
            if name not in available:
                have = ", ".join(sorted(available)) or "none"
                raise SimulatedFailure(
                    f"the simulated script calls tool {call.tool!r}, which this agent does not "
                    f"have (its tools: {have})"
                )
            await asyncio.sleep(0)  # an await point, so cancellation is honoured
            yield {0: DeltaToolCall(name, call.args_json, tool_call_id=f"sim-{step + 1}")}
            return
        if info.output_tools and not info.allow_text_output:
            await asyncio.sleep(self.script.delay)
            yield structured_answer(messages, info, self.script.mismatch)
            return
        text = answer(messages, info.instructions)
        size = self.script.chunk
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        pause = self.script.delay / len(pieces)
        fail_at = len(pieces) // 2 if self.script.fail else None
        for index, piece in enumerate(pieces):
            if index == fail_at:
                raise SimulatedFailure("simulated failure (llm option 'fail')")
            await asyncio.sleep(pause)
            yield piece


def simulated_model(options: str, default_delay: float, default_chunk: int) -> FunctionModel:
    script = parse_script(options, default_delay, default_chunk)
    return FunctionModel(stream_function=SimulatedStream(script), model_name="simulated")


def check_options(options: str) -> str | None:
    """Why `options` is not a valid script, or None."""
    try:
        parse_script(options, 0.0, 1)
    except SimulatedFailure as exc:
        return str(exc)
    return None
