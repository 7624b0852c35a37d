"""The one normalized input of the core: who is asking (Scope) and what (CacheRequest)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmcache._sentinel import UNSET, Unset
from llmcache.errors import ConfigError

#: Upper bound on one scope identifier; longer ids are refused rather than silently truncated.
MAX_SCOPE_PART_CHARS = 1024
MAX_ACL_ENTRIES = 1024
#: Upper bound on one entry's or one invalidation's tags (each is a lookup in every tier).
MAX_TAGS = 1024


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as a tuple of non-empty strings, in order, without duplicates."""
    if isinstance(tags, str):
        raise ConfigError(f"tags must be a list of strings, not one string: use [{tags!r}]")
    if not isinstance(tags, Iterable):
        raise ConfigError(f"tags must be a list of strings, got {type(tags).__name__}")
    out: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ConfigError(f"every tag must be a non-empty string, got {tag!r}")
        out[tag] = None
    if len(out) > MAX_TAGS:
        raise ConfigError(f"more than {MAX_TAGS} tags")
    return tuple(out)


def _check_part(kind: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"scope {kind} must be a string, got {type(value).__name__}")
    if value == "":
        raise ConfigError(f"scope {kind} must not be empty; pass None for 'no {kind}'")
    if len(value) > MAX_SCOPE_PART_CHARS:
        raise ConfigError(f"scope {kind} is longer than {MAX_SCOPE_PART_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be keyed faithfully
        raise ConfigError(f"scope {kind} is not valid Unicode text: {exc.reason}") from None
    return value


def _check_entry(entry: object) -> None:
    if entry is None:
        raise ConfigError("scope acl entry must be a string, got NoneType")
    _check_part("acl entry", entry)


@dataclass(frozen=True, slots=True)
class Scope:
    """Who an entry belongs to. An entry is only ever visible to the exact same scope.

    ``acl`` is a set: order and duplicates do not matter, and an empty set equals no ACL.
    Identifiers are compared exactly (no case folding or Unicode normalization), so two
    ids that differ in any code point are different scopes.
    """

    user: str | None = None
    tenant: str | None = None
    acl: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        user: str | None = None,
        tenant: str | None = None,
        acl: Iterable[str] | None = None,
    ) -> Scope:
        """Validate and normalize the parts of a scope (as the constructor does: this one
        also takes ``acl`` as any iterable, and None)."""
        return cls(user, tenant, acl if acl is not None else frozenset())  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        # Here, not only in ``of``: a scope built directly used to take acl="admin" as the
        # set of its letters, the scope of acl=["a", "d", "m", "i", "n"], and serve it.
        _check_part("user", self.user)
        _check_part("tenant", self.tenant)
        given: object = self.acl
        if isinstance(given, str) or not isinstance(given, Iterable):
            found = "one string" if isinstance(given, str) else type(given).__name__
            raise ConfigError(f"scope acl must be a list of group ids, not {found}")
        entries = tuple(given)
        for entry in entries:  # strings before hashing: a list entry is not hashable
            _check_entry(entry)
        if type(given) is not frozenset:
            object.__setattr__(self, "acl", frozenset(entries))
        if len(self.acl) > MAX_ACL_ENTRIES:
            raise ConfigError(f"scope acl has more than {MAX_ACL_ENTRIES} entries")

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and self.tenant is None and not self.acl

    def describe(self) -> str:
        """A short human label (for inspect/debug output; never for keys)."""
        acl = ",".join(sorted(self.acl))
        return f"{self.user or '-'}@{self.tenant or '-'}" + (f"[{acl}]" if acl else "")


ANONYMOUS = Scope()


@dataclass(frozen=True, slots=True)
class CacheControl:
    """One call's overrides of the cache policy (``llmcache.cache_control(...)``, LiteLLM's
    ``cache={...}``/``metadata``). Not part of the key: they decide whether and how long.

    ``ttl``: this answer's lifetime (wins over every TTL rule; 0 = do not store);
    ``no_cache``: do not read (the answer is still stored); ``no_store``: do not store;
    ``strict``: True/False forces strict mode on/off for the call, None keeps the policy's.
    """

    ttl: float | Unset | None = UNSET
    no_cache: bool = False
    no_store: bool = False
    strict: bool | None = None

    @property
    def stores_nothing(self) -> bool:
        """The call's answer will not be stored (``no_store``, or ``ttl`` 0)."""
        return self.no_store or self.ttl == 0


#: No overrides (the policy decides alone). Compared by identity on the hot path.
NO_CONTROL = CacheControl()


def is_cosine(value: object) -> bool:
    """Whether ``value`` is a similarity threshold: a number in [-1, 1] (not a bool, which
    Python counts as a number)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and -1 <= value <= 1


@dataclass(slots=True)
class CacheRequest:
    """Everything that identifies one cacheable LLM call. Treat it as immutable.

    (Not ``frozen``: one is built per LLM call, and a frozen dataclass costs three times as
    much to construct.)

    ``model``, ``prompt``, ``params``, ``namespace`` and ``scope`` form the key: anything that
    can change the answer belongs in one of them. ``model_name`` and ``tags`` only describe
    the entry (for stats, pricing and invalidation) and are not part of the key.
    ``prompt`` and ``params`` must be JSON-like (dicts, lists, str, numbers, bool, None).

    ``semantic_text`` and ``semantic_context`` are for the semantic tier only (not part of the
    exact key): the text of the last user turn, which is embedded, and everything else about
    the call that must match exactly for a semantic hit (system prompt, earlier turns, tools),
    JSON-like. ``semantic_text=None`` means the request is not eligible for a semantic match.
    ``semantic_threshold`` overrides the semantic tier's threshold for this call only.
    ``control`` carries the call's policy overrides (``CacheControl``).
    """

    model: str
    prompt: Any
    params: Mapping[str, Any] | None = None
    scope: Scope = ANONYMOUS
    namespace: str = ""
    model_name: str = ""
    tags: tuple[str, ...] = ()
    semantic_text: str | None = None
    semantic_context: Any = None
    #: The lowest cosine this call accepts for a semantic hit; None = the semantic tier's.
    semantic_threshold: float | None = None
    #: This call's overrides of the policy (``llmcache.cache_control``); not keyed.
    control: CacheControl = NO_CONTROL
    #: ``llmcache.keys.request_key`` keeps the key here: an adapter that hands the same
    #: request again (a hot prompt) does not hash it again. Never compared or shown.
    key_memo: Any = field(default=None, init=False, repr=False, compare=False)
