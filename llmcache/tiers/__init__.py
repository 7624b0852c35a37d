"""Tiers, and building one from a URL.

Each scheme's module is imported only when a URL of that scheme is used, so a missing optional
driver only matters to the user who asks for that tier.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from llmcache.errors import ConfigError
from llmcache.redact import redact_url
from llmcache.tiers.base import Tier
from llmcache.tiers.memory import MemoryTier

__all__ = ["MemoryTier", "Tier", "tier_from_url"]

_SQL_SCHEMES = ("sqlite", "mysql", "mariadb", "postgresql", "postgres")
_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel")
#: A second URL after whitespace ("memory:// sqlite:///x.db"): a list written as one string.
_ANOTHER_URL = re.compile(r"\s[A-Za-z][A-Za-z0-9+.-]*://")


def tier_from_url(url: str) -> Tier:
    """Build a tier from one of the URLs in the README (``memory://``, ``sqlite:///...``...).

    Raises ConfigError for any URL that does not describe a tier."""
    try:
        return _tier_from_url(url)
    except ConfigError:
        raise
    except ValueError as exc:  # urllib's own parse errors ("Invalid IPv6 URL", bad ports...)
        raise ConfigError(f"not a valid tier URL {redact_url(url)!r}: {exc}") from None


def _tier_from_url(url: str) -> Tier:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"not a tier URL: {url!r} (expected e.g. 'memory://' or 'sqlite:///x.db')"
        )
    if _ANOTHER_URL.search(url):
        raise ConfigError(
            f"{redact_url(url)!r} holds several URLs; give each tier its own URL (a list for "
            "from_urls, commas in LLMCACHE_URLS)"
        )
    parts = urlsplit(url)
    _check_bracketed_host(parts.netloc)
    scheme = parts.scheme.lower()
    base = scheme.split("+", 1)[0]
    if scheme == "memory":
        return MemoryTier.from_url(url)
    if base in _SQL_SCHEMES:
        from llmcache.tiers.sql import SqlTier

        return SqlTier.from_url(url)
    if scheme in _REDIS_SCHEMES:
        from llmcache.tiers.redis import RedisTier

        return RedisTier.from_url(url)
    raise ConfigError(
        f"unsupported tier URL scheme {scheme!r} in {redact_url(url)!r}; use memory://, "
        "sqlite:///, mysql+pymysql://, postgresql+psycopg://, redis://, rediss://, unix://, "
        "redis+cluster:// or redis+sentinel://"
    )


def _check_bracketed_host(netloc: str) -> None:
    """Refuse a bracketed host that is no IPv6 address (``redis://[x]:1``), as urllib itself
    does from Python 3.11.4 on; older versions would hand it to the driver."""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        inside = host[1:].partition("]")[0]
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise ValueError(f"Invalid IPv6 URL: the host {host!r} is no IPv6 address") from None
