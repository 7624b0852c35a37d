"""The core pricer: LiteLLM's prices, provider-cached tokens at their rate, no guesses."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

import litellm
import pytest

from llmcache import Usage
from llmcache.pricing import cost_of
from llmcache.savings import new_row, priced_row


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
@pytest.mark.parametrize(("read", "created"), [(0, 0), (400, 0), (0, 300), (200, 300)])
def test_a_usage_costs_what_litellm_bills_for_it(model: str, read: int, created: int) -> None:
    billed_in, billed_out = litellm.cost_per_token(
        model=model,
        prompt_tokens=1000,
        completion_tokens=200,
        cache_read_input_tokens=read,
        cache_creation_input_tokens=created,
    )
    cost = cost_of(model, Usage(1000, 200, read, created))
    assert cost.priced
    assert cost.input_usd == pytest.approx(billed_in)
    assert cost.output_usd == pytest.approx(billed_out)
    full_in, _ = litellm.cost_per_token(model=model, prompt_tokens=read)
    read_in, _ = litellm.cost_per_token(
        model=model, prompt_tokens=read, cache_read_input_tokens=read
    )
    assert cost.provider_cache_saved_usd == pytest.approx(full_in - read_in)


def test_a_model_litellm_does_not_know_costs_nothing_and_prints_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm, "suppress_debug_info", False)  # as a fresh process has it
    cost = cost_of("my-private-finetune", Usage(1000, 200, 400, 0))
    assert cost == (0.0, 0.0, 0.0, False)
    assert cost_of("", Usage(10, 10)).priced is False
    assert capsys.readouterr().out == ""  # LiteLLM's "Provider List" banner stays quiet
    assert litellm.suppress_debug_info is False  # LiteLLM's own setting is left as it was


def test_a_row_without_tokens_is_not_priced() -> None:
    row = new_row()
    row[0] = 3  # hits of answers that reported no usage
    priced = priced_row("gpt-4o-mini", row)
    assert (priced["hits"], priced["cost_saved_usd"], priced["priced"]) == (3, 0.0, False)


def _register(name: str, input_usd: float, output_usd: float) -> None:
    litellm.register_model(
        {
            name: {
                "input_cost_per_token": input_usd,
                "output_cost_per_token": output_usd,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )


def test_prices_registered_after_the_first_read_apply() -> None:
    name = "llmcache-probe-private-model"
    usage = Usage(1000, 100)
    try:
        assert cost_of(name, usage).priced is False  # read (and remembered) before it is known
        _register(name, 1e-6, 2e-6)  # changes litellm.model_cost in place
        cost = cost_of(name, usage)
        assert cost.priced
        assert (cost.input_usd, cost.output_usd) == pytest.approx((1e-3, 2e-4))
        _register(name, 3e-6, 2e-6)  # a new price for a model already priced
        assert cost_of(name, usage).input_usd == pytest.approx(3e-3)
    finally:
        litellm.model_cost.pop(name, None)
