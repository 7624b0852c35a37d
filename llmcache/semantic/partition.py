"""The partition of a request: everything that must match exactly for a semantic hit.

A 16-byte BLAKE2b digest of one canonical JSON array (as in ``keys.py``): the scope digest,
namespace, model identity, parameters and ``semantic_context`` (system prompt, earlier turns,
tools). The vector search runs inside one partition only, so an entry of another user, model
or conversation is never a candidate, however close its text.
"""

from __future__ import annotations

import hashlib

from llmcache.keys import CacheKey, canonical_json
from llmcache.request import CacheRequest

#: Bump when the canonical form changes: old vectors then simply stop being candidates.
PARTITION_VERSION = 1


def partition_digest(request: CacheRequest, key: CacheKey) -> bytes:
    """16 bytes; raises CodecError when the context is not JSON-like (no semantic match)."""
    params = request.params
    canonical = canonical_json(
        [
            PARTITION_VERSION,
            key.scope.hex(),  # the request's scope digest, already computed for its key
            request.namespace,
            request.model,
            dict(params) if params else None,
            request.semantic_context,
        ]
    )
    return hashlib.blake2b(canonical, digest_size=16, person=b"llmcache-part").digest()
