"""Listing stored entries: the paged, bounded primitive every tier implements (``list_page``).

``list_page(selector, now, cursor, limit)`` returns a ``ListPage``: up to ``limit`` entries
that ``selector`` matches (scope, model, namespace, tags; ``older_than`` is not a listing
criterion: the cache filters by age after decoding, when it is asked to) and that have not
expired by ``now``, with the cursor of the next page. Pass ``cursor=None`` for the first page,
then the cursor of the page before; a page whose cursor is None is the last. The cursor is
opaque and tier specific (a digest for memory and SQL, SCAN/SSCAN cursors for Redis); a page
may be empty while more follow (a Redis SCAN round that found nothing). Nothing is ever loaded
whole: each call reads one bounded page.

What a page holds is what the tier keeps: a ``CacheEntry`` (memory) or the stored payload
(SQL, Redis), which may be sealed (encryption at rest): the cache opens and decodes it.
``expires_at`` is when this tier drops the entry (its default TTL applied).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey

#: Entries per page when the caller does not say.
DEFAULT_PAGE = 200
#: The largest page a caller may ask for (a page is held in memory whole).
MAX_PAGE = 5_000


class Listed(NamedTuple):
    key: CacheKey
    found: CacheEntry | bytes
    expires_at: float | None


class ListPage(NamedTuple):
    items: list[Listed]
    cursor: Any  # None: this was the last page


LAST_PAGE = ListPage([], None)
