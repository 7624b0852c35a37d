"""What tokens cost: LiteLLM's price table, read once per model, shared by both adapters.

A model's price is four per-token rates (input, output, provider cache read, provider cache
creation), taken from ``litellm.cost_per_token`` for a small usage, so LiteLLM's own model-name
resolution and any prices registered with ``litellm.register_model`` apply. Rates are linear:
LiteLLM's surcharges above a context size (some models bill a prompt over 200k tokens at a
higher rate) are not applied to the sums ``stats()`` prices.

LiteLLM is imported on the first price asked (it is the ``litellm`` extra; a LangChain-only
install without it prices nothing): a second or more, once. A hit never asks for a price:
``Cache.stats()``, metrics and ``llmcache report`` do. When llmcache is the first to import
LiteLLM, it reads the price table LiteLLM ships (``LITELLM_LOCAL_MODEL_COST_MAP`` is set for
that import only): asking a price never downloads anything. An app that imports LiteLLM itself
first prices with whatever table LiteLLM loaded.

A model LiteLLM does not price (a private deployment, a fake model) costs 0.0 and is reported
as unpriced: a saving is never guessed.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
import threading
from typing import Any, NamedTuple

from llmcache.entry import Usage
from llmcache.fork_safety import renew_after_fork

logger = logging.getLogger("llmcache")

#: Models whose rates are remembered (per price table).
MODELS_REMEMBERED = 1024
#: LiteLLM reads this when imported: its bundled price table instead of a download.
_LOCAL_TABLE = "LITELLM_LOCAL_MODEL_COST_MAP"
#: Tokens of the usage the rates are read from: below every context-size surcharge.
_PROBE_TOKENS = 1000


class Rates(NamedTuple):
    """USD per token. ``priced`` is False when LiteLLM has no price for the model."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_creation: float = 0.0
    priced: bool = False


UNPRICED = Rates()


class Cost(NamedTuple):
    """What one usage cost (USD), and what the provider's prompt cache took off it."""

    input_usd: float
    output_usd: float
    provider_cache_saved_usd: float
    priced: bool

    @property
    def total_usd(self) -> float:
        return self.input_usd + self.output_usd


def cost_of(model: str, usage: Usage) -> Cost:
    """The price of ``usage`` on ``model``, as the provider billed it.

    ``usage.input_tokens`` includes the prompt tokens the provider served from its prompt cache
    (``cache_read_tokens``, billed at the cache-read rate) and wrote to it
    (``cache_creation_tokens``, billed at the creation rate); the rest at the input rate.
    ``provider_cache_saved_usd`` is the full input price of the cache reads minus what they
    cost.
    """
    rates = rates_of(model)
    if not rates.priced:
        return Cost(0.0, 0.0, 0.0, False)
    cached = usage.cache_read_tokens + usage.cache_creation_tokens
    plain = max(usage.input_tokens - cached, 0)
    input_usd = (
        plain * rates.input
        + usage.cache_read_tokens * rates.cache_read
        + usage.cache_creation_tokens * rates.cache_creation
    )
    saved = usage.cache_read_tokens * (rates.input - rates.cache_read)
    return Cost(input_usd, usage.output_tokens * rates.output, max(saved, 0.0), True)


def rates_of(model: str) -> Rates:
    """The model's per-token rates from LiteLLM's table; UNPRICED without LiteLLM or a price
    (read once per model and table: a hit's price is a lookup)."""
    if not model:
        return UNPRICED
    litellm = _litellm()
    if litellm is None:
        return UNPRICED
    table = litellm.model_cost
    return _rates(id(table), _version(table, model), model)


#: The fields of a price table entry that make a model's rates.
_PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)


def _version(table: Any, model: str) -> tuple[Any, ...]:
    """What of ``table`` the model's remembered rates depend on: its size (a model added by
    ``litellm.register_model``, which changes the table in place) and the prices listed under
    the model's name, with and without its provider prefix (a price changed in place)."""
    listed: list[Any] = [len(table)]
    for name in dict.fromkeys((model, model.partition("/")[2])):
        entry = table.get(name) if name else None
        if isinstance(entry, dict):
            listed.extend(entry.get(field) for field in _PRICE_FIELDS)
        else:
            listed.append(None)
    return tuple(listed)


@functools.cache
def _litellm_installed() -> bool:
    return importlib.util.find_spec("litellm") is not None


def _litellm() -> Any:
    """LiteLLM, imported on first use; None when it is not installed."""
    module = sys.modules.get("litellm")
    if module is not None:
        return module
    if not _litellm_installed():
        return None
    if _LOCAL_TABLE in os.environ:
        import litellm  # the optional ``litellm`` extra
    else:
        # Imported here only to read prices: from the table LiteLLM ships, never a download
        # (LiteLLM fetches its table on import, retrying for seconds when offline).
        os.environ[_LOCAL_TABLE] = "True"
        try:
            import litellm
        finally:
            os.environ.pop(_LOCAL_TABLE, None)
    return litellm


#: Serializes reading rates: LiteLLM's ``suppress_debug_info`` is set around each read.
_reading = threading.Lock()
renew_after_fork(sys.modules[__name__], "_reading")


@functools.lru_cache(maxsize=MODELS_REMEMBERED)
def _rates(table: int, version: tuple[Any, ...], model: str) -> Rates:
    """Rates read through ``cost_per_token`` (LiteLLM's name resolution, its registered
    prices). ``table`` (the identity of ``litellm.model_cost``) makes a replaced table count,
    ``version`` (``_version``) a price registered into it."""
    litellm = _litellm()
    with _reading:
        # LiteLLM prints a "Provider List" banner to stdout for a model it does not know:
        # not in the middle of a user's output for asking a price.
        quiet = litellm.suppress_debug_info
        litellm.suppress_debug_info = True
        try:
            return _read_rates(litellm, model)
        finally:
            litellm.suppress_debug_info = quiet


def _read_rates(litellm: Any, model: str) -> Rates:
    n = _PROBE_TOKENS
    try:
        input_usd, output_usd = litellm.cost_per_token(
            model=model, prompt_tokens=n, completion_tokens=n
        )
        read_usd, _ = litellm.cost_per_token(
            model=model, prompt_tokens=n, cache_read_input_tokens=n
        )
        created_usd, _ = litellm.cost_per_token(
            model=model, prompt_tokens=n, cache_creation_input_tokens=n
        )
    except Exception as exc:  # an unpriced model (custom, fake): no dollars, not an error
        logger.debug("llmcache: LiteLLM has no price for %r (%s)", model, exc)
        return UNPRICED
    if not (input_usd or output_usd):
        return UNPRICED
    return Rates(
        float(input_usd) / n,
        float(output_usd) / n,
        float(read_usd) / n,
        float(created_usd) / n,
        priced=True,
    )
