"""Who a LiteLLM call is for: ``user=``, ``metadata`` fields and ``llmcache.scope(...)``.

Sources, all optional:

* ``llmcache.scope(user=, tenant=, acl=)`` around the call (the ambient scope);
* ``metadata={"llmcache_user": ..., "llmcache_tenant": ..., "llmcache_acl": [...]}``;
* LiteLLM's own ``user=`` argument (the end-user id).

They are combined, never overridden: a part given by one source only is taken as is; the
same value given twice counts once; *different* values for the same part make a scope
that holds all of them (so a request can narrow the ambient scope but never widen or
replace it: alice inside ``scope(user="alice")`` asking with ``user="bob"`` sees neither
alice's nor bob's entries). ACL lists are united.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from llmcache.context import COMBINED_PREFIX, current_scope
from llmcache.errors import ConfigError
from llmcache.request import Scope

USER_FIELD = "llmcache_user"
TENANT_FIELD = "llmcache_tenant"
ACL_FIELD = "llmcache_acl"

#: Prefix of a combined scope part; no single id may start with it (it could be forged):
#: ``scope()`` refuses such an id too.
_COMBINED = COMBINED_PREFIX


def _combine(kind: str, values: Iterable[object]) -> str | None:
    distinct: list[str] = []
    for value in values:
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"LiteLLM call: the scope {kind} must be a non-empty string, "
                f"got {value!r}; pass e.g. metadata={{'{TENANT_FIELD}': 'acme'}}"
            )
        if value.startswith(_COMBINED):
            raise ConfigError(f"LiteLLM call: the scope {kind} {value!r} uses a reserved prefix")
        if value not in distinct:
            distinct.append(value)
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return _COMBINED + orjson.dumps(sorted(distinct)).decode()


def scope_of(user: object, metadata: Mapping[str, Any]) -> Scope:
    """The scope of one call: the ambient scope combined with the call's own parts."""
    ambient = current_scope()
    acl = metadata.get(ACL_FIELD)
    if acl is not None and (isinstance(acl, (str, bytes)) or not isinstance(acl, Iterable)):
        raise ConfigError(
            f"LiteLLM call: metadata['{ACL_FIELD}'] must be a list of group ids, got {acl!r}"
        )
    if (
        user is None
        and acl is None
        and metadata.get(USER_FIELD) is None
        and metadata.get(TENANT_FIELD) is None
    ):
        return ambient  # the common case: nothing to combine
    return Scope.of(
        user=_combine("user", (ambient.user, metadata.get(USER_FIELD), user)),
        tenant=_combine("tenant", (ambient.tenant, metadata.get(TENANT_FIELD))),
        # Chained, not a set built here: Scope.of checks every entry first (an unhashable
        # or non-string entry is a ConfigError, not a TypeError from frozenset).
        acl=itertools.chain(ambient.acl, acl or ()),
    )
