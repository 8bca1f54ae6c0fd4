"""The simulated provider: deterministic text from the prompt, no network.

For demos, tests and dashboards. Options ride on the llm string, comma-separated after the slash:
`simulated`, `simulated/fail` (the task fails), `simulated/delay=0.2,chunk=8` (seconds per task,
characters per chunk; the defaults come from settings). Every answer says it is simulated.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator

from backend.runner.providers.base import ModelCall, ProviderError

WORDS = [
    "analysis",
    "insight",
    "evidence",
    "summary",
    "plan",
    "draft",
    "outline",
    "finding",
    "source",
    "trend",
    "risk",
    "option",
    "result",
    "detail",
    "context",
    "step",
    "goal",
    "answer",
    "review",
    "signal",
    "pattern",
    "estimate",
]


def parse_options(model: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in model.split(","))):
        key, _, value = part.partition("=")
        options[key] = value or "true"
    return options


class SimulatedProvider:
    def __init__(self, delay_seconds: float, chunk_chars: int) -> None:
        self.delay_seconds = delay_seconds
        self.chunk_chars = chunk_chars

    def answer(self, call: ModelCall) -> str:
        prompt = "\n".join(m.content for m in call.messages)
        digest = hashlib.sha256(prompt.encode()).digest()
        words = [WORDS[b % len(WORDS)] for b in digest[:24]]
        task_line = next(
            (line for line in prompt.splitlines() if line.startswith("Task: ")), "Task: (none)"
        )
        return (
            f"[simulated answer] {task_line[6:][:120]}\n"
            f"Key points: {', '.join(words[:8])}.\n"
            f"Details: {' '.join(words[8:])}.\n"
            f"(Simulated by crewql; no language model was called. Fingerprint {digest[:4].hex()}.)"
        )

    async def stream(self, call: ModelCall) -> AsyncGenerator[str, None]:
        options = parse_options(call.model)
        try:
            delay = float(options.get("delay", self.delay_seconds))
            chunk = int(options.get("chunk", self.chunk_chars))
        except ValueError as exc:
            raise ProviderError(f"bad simulated option in {call.model!r}: {exc}") from None
        text = self.answer(call)
        pieces = [text[i : i + max(chunk, 1)] for i in range(0, len(text), max(chunk, 1))]
        pause = delay / len(pieces) if pieces else 0.0
        fail_at = len(pieces) // 2 if "fail" in options else None
        for index, piece in enumerate(pieces):
            if index == fail_at:
                raise ProviderError("simulated failure (llm option 'fail')")
            if pause:
                await asyncio.sleep(pause)
            else:
                await asyncio.sleep(0)  # an await point, so cancellation is honoured
            yield piece
