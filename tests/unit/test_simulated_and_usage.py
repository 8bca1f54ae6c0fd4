"""The simulated model's script syntax, and how usage, cost and budgets add up."""

from __future__ import annotations

import pytest

from backend.config.settings import ModelPrice
from backend.core.usage import Usage
from backend.runner.agent.errors import Redactor
from backend.runner.agent.simulated import (
    ScriptedCall,
    SimulatedFailure,
    check_options,
    parse_script,
)
from backend.runner.agent.usage import Budget, priced


def test_a_script_reads_options_and_calls_in_order() -> None:
    script = parse_script(
        'call=http_request{"url":"http://h/a,b","headers":{"x":"1"}},delay=0.5,call=now,chunk=3,fail',
        0.0,
        24,
    )
    assert (script.delay, script.chunk, script.fail) == (0.5, 3, True)
    assert script.calls == (
        ScriptedCall("http_request", '{"url":"http://h/a,b","headers":{"x":"1"}}'),
        ScriptedCall("now", "{}"),
    )
    assert parse_script("", 0.25, 7) == parse_script("", 0.25, 7)
    assert parse_script("", 0.25, 7).delay == 0.25


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("delay=soon", "bad value in simulated option 'delay=soon'"),
        ("delay=-1", "bad value"),
        ("chunk=0", "bad value"),
        ("colour=blue", "unknown simulated option 'colour=blue'"),
        ("call=", "names no tool"),
        ("call=x{nope", "are not JSON"),
        ("call=x[1]", "'x[1]' is not a tool name"),
        ('call=x{"a":1}}', "are not JSON"),
    ],
)
def test_bad_scripts_say_why(options: str, message: str) -> None:
    problem = check_options(options)
    assert problem is not None
    assert message in problem
    with pytest.raises(SimulatedFailure):
        parse_script(options, 0, 1)


def test_unknown_prices_stay_unknown() -> None:
    prices = {"a": ModelPrice(input=2.0, output=10.0)}
    known = priced(prices, "a", 1_000, 100)
    assert known == Usage(1_000, 100, 1, pytest.approx(0.003))  # type: ignore[arg-type]
    unknown = priced(prices, "b", 1_000, 100)
    assert unknown.cost_usd is None
    assert (known + known).cost_usd == pytest.approx(0.006)
    total = known + unknown
    assert (total.input_tokens, total.output_tokens, total.requests) == (2_000, 200, 2)
    assert total.cost_usd is None
    assert (Usage() + known).cost_usd == known.cost_usd


def test_budgets_say_which_limit_and_by_how_much() -> None:
    assert Budget().check(Usage(10**9, 10**9, 5, 10**6)) is None
    over = Budget(max_tokens=100).check(Usage(80, 30, 2, None))
    assert over is not None
    assert (over.limit, over.allowed, over.used, over.over) == ("maxTokens", 100, 110, 10)
    assert Budget(max_tokens=110).check(Usage(80, 30, 2, None)) is None  # at the limit is fine
    costly = Budget(max_cost_usd=0.5).check(Usage(1, 1, 1, 0.75))
    assert costly is not None
    assert costly.as_data() == {
        "code": "BUDGET_EXCEEDED",
        "limit": "maxCostUsd",
        "allowed": 0.5,
        "used": 0.75,
        "over": 0.25,
    }
    assert "maxCostUsd is 0.5" in costly.message()


def test_redactor_removes_secrets_longest_first() -> None:
    redact = Redactor(["sk-abc", "sk-abcdef", "", "xy"])
    assert redact("key sk-abcdef and sk-abc and xy") == "key [redacted] and [redacted] and xy"
