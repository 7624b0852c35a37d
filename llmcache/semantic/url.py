"""Semantic tier URLs.

``faiss://PATH?threshold=0.9&k=4&embedder=minilm&verify=on&refresh=1&hnsw_above=5000``
    PATH is the SQLite file that holds the vectors (``faiss://./llmcache.faiss``,
    ``faiss:///abs/path.faiss``; ``faiss://:memory:`` keeps nothing). ``refresh``: seconds
    between looks for other processes' stores (default 1); ``hnsw_above``: partition size
    from which HNSW replaces exact search (default 5000); ``max_partitions``: partitions kept
    loaded in memory (default 4096).
``redisvl://host:port[/db]?threshold=...&k=...&embedder=...&verify=...``
    the index lives in Redis Stack (``llmcache.semantic.redisvl_index``); its own options
    are that module's.

Options of the tier itself, on either scheme: ``threshold`` (lowest cosine served: 0.70 with
the verifier, 0.95 without), ``k`` (candidates per lookup, default 4), ``embedder``
(``minilm``, the default: MiniLM with the shipped question adapter; ``minilm-base``, MiniLM
as published; or ``litellm:<model>``; a LangChain ``Embeddings`` object goes to
``from_urls(embedder=)``), ``verify`` (``on``, the default, or ``off`` for plain cosine).
"""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import urlsplit

from llmcache._optional import require
from llmcache.errors import ConfigError
from llmcache.redact import redact_url
from llmcache.semantic.embedders import Embedder, as_embedder
from llmcache.semantic.index import VectorIndex
from llmcache.semantic.tier import DEFAULT_K, DEFAULT_THRESHOLD, SemanticTier, check_threshold
from llmcache.semantic.verifier import AcceptAll, Verifier
from llmcache.tiers.options import query_options

#: The default threshold when the verifier is on (see semantic_from_url).
VERIFIED_THRESHOLD = 0.70

TIER_OPTIONS = frozenset({"threshold", "k", "embedder", "verify"})
FAISS_OPTIONS = frozenset({"refresh", "hnsw_above", "max_partitions"})


def semantic_from_url(
    url: str, *, embedder: object = None, verifier: Verifier | None = None
) -> SemanticTier:
    """Build the semantic tier a URL names. ``embedder``/``verifier`` override the URL's."""
    options = _options(url)
    k = _count(options, "k", DEFAULT_K)
    verify = options.get("verify", "on").lower()
    if verify not in ("on", "off", "true", "false", "1", "0"):
        raise ConfigError(f"semantic URL option verify must be 'on' or 'off', got {verify!r}")
    if verifier is None and verify in ("off", "false", "0"):
        verifier = AcceptAll()
    # With the verifier judging candidates, the cosine threshold only pre-filters them: the
    # verifier's operating point was chosen (on QQP dev) over candidates at cosine >= 0.70.
    # Plain cosine needs the stricter default.
    default = DEFAULT_THRESHOLD if isinstance(verifier, AcceptAll) else VERIFIED_THRESHOLD
    threshold = check_threshold(_number(options, "threshold", default))
    index, chosen = open_index(url, embedder=embedder)
    try:
        return SemanticTier(index, chosen, verifier=verifier, threshold=threshold, k=k)
    except BaseException:  # e.g. the index holds another embedder's vectors
        index.close()
        raise


def open_index(url: str, *, embedder: object = None) -> tuple[VectorIndex, Embedder]:
    """The index a semantic URL names and the embedder it asks for (``embedder`` overrides
    the URL's), not yet bound to each other: ``llmcache reindex`` opens an index that
    holds another embedder's vectors this way, to re-embed them."""
    options = _options(url)
    parts = urlsplit(url)
    chosen = as_embedder(embedder if embedder is not None else options.get("embedder"))
    if parts.scheme.lower() == "faiss":
        return _faiss(parts.netloc + parts.path, options, chosen.dim), chosen
    module = require(
        "llmcache.semantic.redisvl_index", extra="redisvl", feature="the redisvl index"
    )
    return module.RedisVLIndex.from_url(url, dim=chosen.dim), chosen


def faiss_file(url: str) -> str | None:
    """The file a ``faiss://`` URL names; None for other schemes and ``faiss://:memory:``."""
    if url.split(":", 1)[0].lower() != "faiss":
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: building the index names the problem
        return None
    path = parts.netloc + parts.path
    return None if path in ("", ":memory:") else path


def _options(url: str) -> dict[str, str]:
    """The URL's query options, after checking its scheme and (for faiss://) their names."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"semantic URL must look like 'faiss://./llmcache.faiss?threshold=0.9' or "
            f"'redisvl://host:port', got {url!r}"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # urllib's own errors ("Invalid IPv6 URL")
        raise ConfigError(f"cannot parse the semantic URL {redact_url(url)!r}: {exc}") from None
    options = query_options("semantic URL", parts.query, redact_url(url))
    scheme = parts.scheme.lower()
    if scheme not in ("faiss", "redisvl", "redisvls"):
        raise ConfigError(
            f"unknown semantic scheme {scheme!r} in {redact_url(url)!r}; use faiss:// or redisvl://"
        )
    if scheme == "faiss":
        unknown = set(options) - TIER_OPTIONS - FAISS_OPTIONS
        if unknown:
            raise ConfigError(
                f"unknown option(s) {sorted(unknown)} in semantic URL; faiss:// takes "
                f"{sorted(TIER_OPTIONS | FAISS_OPTIONS)}"
            )
    return options


def _faiss(path: str, options: dict[str, str], dim: int) -> VectorIndex:
    from llmcache.semantic.faiss_index import (
        DEFAULT_HNSW_ABOVE,
        DEFAULT_MAX_PARTITIONS,
        DEFAULT_REFRESH_SECONDS,
        FaissIndex,
    )

    if not path:
        raise ConfigError("faiss:// needs a path, e.g. faiss://./llmcache.faiss (or :memory:)")
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder) and os.path.isdir(os.path.join("/", folder)):
        raise ConfigError(
            f"faiss index: folder {folder!r} does not exist (faiss://{path} is relative to the "
            f"working directory; an absolute path takes three slashes: faiss:///{path})"
        )
    refresh = _number(options, "refresh", DEFAULT_REFRESH_SECONDS)
    hnsw_above = _count(options, "hnsw_above", DEFAULT_HNSW_ABOVE)
    max_partitions = _count(options, "max_partitions", DEFAULT_MAX_PARTITIONS)
    return FaissIndex(
        path, dim=dim, refresh=refresh, hnsw_above=hnsw_above, max_partitions=max_partitions
    )


def _number(options: dict[str, str], name: str, default: float) -> Any:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"semantic URL option {name} must be a number, got {raw!r}") from None


def _count(options: dict[str, str], name: str, default: int) -> int:
    """A positive whole number (``k``, ``hnsw_above``, ``max_partitions``): ``2.5``, ``0``,
    ``inf`` or ``nan`` is a ConfigError naming the option, never truncated in silence."""
    value = _number(options, name, default)
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise ConfigError(
            f"semantic URL option {name} must be a positive integer, got {options.get(name)!r}"
        )
    return int(value)
