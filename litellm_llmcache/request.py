"""A LiteLLM call's kwargs -> llmcache ``CacheRequest`` (what is keyed, and for whom).

Keyed: the model identity (the Router's model group or caching group when present, as
LiteLLM's own key does), the prompt material (``messages`` / ``prompt`` / ``input``), every
parameter LiteLLM keys, and a provider's own parameters (``input_type``, ``task_type``...).
Never keyed: ``metadata``, the caller's identity (``user``: it goes into the *scope*
instead), secrets (``api_key``, ``aws_secret_access_key`` ...), transport (``timeout``,
``extra_headers``) and LiteLLM's own bookkeeping kwargs (call ids, logging objects), which
differ on every call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from litellm_llmcache.controls import Controls, controls_of, tags_of
from litellm_llmcache.scope import scope_of
from litellm_llmcache.semantic import semantic_fields
from llmcache.context import current_tags
from llmcache.request import CacheRequest, check_tags

#: Where the prompt of each call type lives.
PROMPT_FIELDS = ("messages", "prompt", "input")

#: Parameters that change what a model answers, as this package knew them: the floor of
#: ``ANSWER_PARAMS`` when LiteLLM's own list cannot be read.
_KNOWN_ANSWER_PARAMS = frozenset(
    {
        "audio",
        "best_of",
        "custom_llm_provider",
        "dimensions",
        "echo",
        "encoding_format",
        "frequency_penalty",
        "function_call",
        "functions",
        "include",
        "instructions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens",
        "modalities",
        "model_id",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "reasoning",
        "reasoning_effort",
        "response_format",
        "seed",
        "service_tier",
        "stop",
        "stop_sequences",
        "stream",
        "suffix",
        "system",
        "temperature",
        "text",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_logprobs",
        "top_n",
        "top_p",
        "truncation",
        "verbosity",
        "web_search_options",
        "extra_body",
    }
)

#: What LiteLLM keys that is not an answer parameter here: the model and the prompt fields
#: are keyed apart, ``user`` goes into the scope, ``metadata`` is never keyed.
_KEYED_APART = frozenset({"model", "user", "metadata", *PROMPT_FIELDS})


def _litellm_keyed_params() -> frozenset[str]:
    """Every parameter LiteLLM's own cache keys (its list grows with each release: the
    Responses API's ``previous_response_id``, Cohere's ``documents``...), read from the
    installed LiteLLM; empty if this LiteLLM does not say."""
    try:
        from litellm.caching import caching
        from litellm.litellm_core_utils.model_param_helper import ModelParamHelper

        keyed = set(ModelParamHelper.get_all_llm_api_params())
        keyed |= set(getattr(caching, "_ALWAYS_KEYED_PROVIDER_PARAMS", ()))
    except Exception:  # another LiteLLM layout: the known list alone
        return frozenset()
    return frozenset(p for p in keyed if isinstance(p, str))


#: Parameters that change what a model answers: LiteLLM's own keyed set (read from the
#: installed LiteLLM, so a parameter a newer release adds is keyed too) minus identity, plus
#: provider routing and what this package knew. A parameter left out would let two calls
#: that differ by it share an answer.
ANSWER_PARAMS = _KNOWN_ANSWER_PARAMS | (_litellm_keyed_params() - _KEYED_APART)

#: Keyword arguments that are neither LiteLLM's own nor in its list, and never change the
#: answer: transport, tracing, and LiteLLM's own state. Any other such argument is a
#: provider's parameter (Cohere's ``input_type``, Gemini's ``task_type``, vLLM's
#: ``repetition_penalty``...) and is keyed, where LiteLLM's own cache ignores it unless told.
_TRANSPORT = frozenset(
    {
        "aws_region_name",  # where the same model runs
        "base_url",
        "extra_headers",
        "headers",
        "http_client",
        "litellm_params",
        "organization",
        "parent_otel_span",
        "request_timeout",
        "session_id",  # LiteLLM's tracing of a session
        "timeout",
        "vertex_location",
        "vertex_project",
    }
)
#: A provider's credential (``aws_secret_access_key``, ``azure_ad_token``,
#: ``vertex_credentials``...): never keyed, it says who pays, not what is answered. A name
#: that ends in key or token, or holds secret, password or credential anywhere; not a name
#: that merely holds "token" (vLLM's ``stop_token_ids`` changes the answer, and was not keyed).
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:api_?key|key|key_id|token|credentials?)$|secret|password|passphrase|credential"
)
#: What ``_keyed`` answered for each argument name (a call has a few dozen; names repeat).
_KEYED: dict[str, bool] = {}
#: Values a provider's parameter is keyed with: data, not clients or callbacks.
_DATA = (str, int, float, bool, list, tuple, dict)


def _owned_by_litellm() -> Callable[[str], bool]:
    try:
        from litellm.types.utils import is_litellm_owned_kwarg
    except Exception:  # another LiteLLM layout: key its documented parameters only
        return lambda name: True
    return is_litellm_owned_kwarg


_OWNED_BY_LITELLM = _owned_by_litellm()


def _keyed(name: str) -> bool:
    """Whether an argument that is not in ``ANSWER_PARAMS`` is keyed: a provider's own
    parameter (``input_type`` of Cohere's embeddings turns a query's vector into a
    document's), unless it is LiteLLM's, transport, the scope or a credential."""
    keyed = _KEYED.get(name)
    if keyed is None:
        keyed = not (
            name in _TRANSPORT
            or name in _KEYED_APART
            or name.startswith("mock_")  # LiteLLM's test doubles, as mock_response
            or _OWNED_BY_LITELLM(name)
            or _SECRET_NAME.search(name) is not None
        )
        if len(_KEYED) >= 4096:  # names come from code, but never let them grow a dict
            _KEYED.clear()
        _KEYED[name] = keyed
    return keyed


#: Default namespace of LiteLLM entries (part of the key; LangChain's entries use another).
NAMESPACE = "litellm"

#: LiteLLM's call types of the Responses API, which shares ``input`` with embeddings: its
#: entries are keyed apart (``RESPONSES_PARAM``), or an embedding call of the same model and
#: input was served a Responses answer (vectors of None), and the other way round raised.
_RESPONSES_CALLS = frozenset({"responses", "aresponses"})
#: The parameter that keys them apart (a name no keyword argument of a call has).
RESPONSES_PARAM = "llmcache:api"


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # ``isinstance(x, Mapping)`` is an ABC check (about 1 µs); kwargs hold plain dicts.
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _metadata_sources(kwargs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [kwargs.get("metadata"), kwargs.get("litellm_metadata")]
    params = kwargs.get("litellm_params")
    if _is_mapping(params):
        found.append(params.get("metadata"))
    return [m for m in found if _is_mapping(m)]


def metadata_of(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The call's ``metadata`` (empty when absent or not a mapping)."""
    metadata = kwargs.get("metadata")
    return metadata if _is_mapping(metadata) else {}


def model_identity(kwargs: Mapping[str, Any]) -> str:
    """The model as LiteLLM keys it: caching group, else Router model group, else ``model``.

    Through a ``Router`` every deployment of one model group shares entries, as with
    LiteLLM's own caches.
    """
    if not ("metadata" in kwargs or "litellm_metadata" in kwargs or "litellm_params" in kwargs):
        return str(kwargs.get("model") or "")  # a plain call: no group can apply
    sources = _metadata_sources(kwargs)
    group = next((str(m["model_group"]) for m in sources if m.get("model_group")), None)
    for metadata in sources:
        for candidate in metadata.get("caching_groups") or ():
            if group is not None and group in candidate:
                return "caching_group:" + ",".join(sorted(str(g) for g in candidate))
    if group is not None:
        return "model_group:" + group
    return str(kwargs.get("model") or "")


def _jsonable(value: Any) -> Any:
    """Pydantic models (tools, response_format classes) as their JSON-like dump.

    A class is checked first: its ``model_dump`` is the unbound method, and calling it
    raised, so no call with ``response_format=SomeModel`` was ever cached.
    """
    if isinstance(value, type):
        schema = getattr(value, "model_json_schema", None)
        return {"pydantic_schema": schema()} if callable(schema) else value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    return value


def build_request(
    kwargs: Mapping[str, Any],
    base_namespace: str,
    *,
    semantic: bool = False,
    controls: Controls | None = None,
) -> CacheRequest:
    """The ``CacheRequest`` of one LiteLLM call (scope from the call and ``llmcache.scope``).

    ``semantic``: fill the semantic fields (chat calls only); False when the cache has no
    semantic component, so plain exact caching pays nothing for them.
    ``controls``: ``controls_of(kwargs)`` when the caller has already read them (they are
    read once per lookup or store, not twice).
    """
    prompt = {f: _jsonable(kwargs[f]) for f in PROMPT_FIELDS if f in kwargs}
    params = {}
    for k, v in kwargs.items():
        if v is None:
            continue
        if k in ANSWER_PARAMS:
            params[k] = _jsonable(v)
        elif (_KEYED[k] if k in _KEYED else _keyed(k)) and isinstance(v, _DATA):
            params[k] = v  # a provider's own parameter
    if "input" in prompt and (
        getattr(kwargs.get("litellm_logging_obj"), "call_type", None) in _RESPONSES_CALLS
    ):
        params[RESPONSES_PARAM] = "responses"
    if params.get("stream") is False:  # the Router passes it, a plain call does not
        del params["stream"]
    cache_arg = kwargs.get("cache")
    namespace = base_namespace
    if _is_mapping(cache_arg) and cache_arg.get("namespace"):
        namespace = f"{base_namespace}/{cache_arg['namespace']}"
    metadata = metadata_of(kwargs)
    tags = current_tags()  # llmcache.tags(...) blocks and metadata: for invalidate(tags=...)
    if extra_tags := tags_of(metadata):
        tags = check_tags((*tags, *extra_tags))
    request = CacheRequest(
        model=model_identity(kwargs),
        prompt=prompt,
        params=params,
        scope=scope_of(kwargs.get("user"), metadata),
        namespace=namespace,
        model_name=str(kwargs.get("model") or ""),
        tags=tags,
        control=(controls if controls is not None else controls_of(kwargs)).cache_control(),
    )
    if semantic and "messages" in prompt:
        request.semantic_text, request.semantic_context = semantic_fields(prompt["messages"])
    return request
