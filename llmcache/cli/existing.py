"""Commands that read a cache open only a cache that exists.

SQLite creates a missing file, and the FAISS index a missing one, on first use: right for an
app, wrong for ``inspect``, ``export``, ``doctor``... There a mistyped path would report
"0 entries" or "all good" about an empty cache made up on the spot, and leave it behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from llmcache.cache import Cache
from llmcache.errors import ConfigError

_SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")


def check_exists(urls: Iterable[str], semantic: str | None = None) -> None:
    """Raise ConfigError naming the first SQLite or FAISS file among ``urls`` and
    ``semantic`` that does not exist (servers and ``:memory:`` are not checked)."""
    from llmcache.semantic.url import faiss_file
    from llmcache.tiers.sql_url import parse_sql_url, sqlite_file

    for url in urls:
        url = url.strip()
        if url.split(":", 1)[0].lower() in _SQLITE_SCHEMES:
            file = sqlite_file(parse_sql_url(url))
            if file is not None and not file.exists():
                raise _missing(str(file), "--url")
    path = None if semantic is None else faiss_file(semantic.strip())
    if path is not None and not os.path.exists(path):
        raise _missing(path, "--semantic")


def open_existing(urls: Iterable[str], *, semantic: str | None = None, **options: Any) -> Cache:
    """``Cache.from_urls`` for an operator's one-off read: only caches that exist, no
    single-flight, and no counters of its own published (``options`` override these)."""
    urls = list(urls)
    check_exists(urls, semantic)
    chosen: dict[str, Any] = {"single_flight_timeout": None, "fleet_stats": False, **options}
    return Cache.from_urls(urls, semantic=semantic, **chosen)


def _missing(path: str, option: str) -> ConfigError:
    return ConfigError(
        f"no cache at {path} ({option}): the file does not exist; check the path "
        "(an app, `llmcache import` or `llmcache warmup` creates it)"
    )
