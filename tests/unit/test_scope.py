"""scope(...): validation, nesting, and propagation to asyncio tasks and threads."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmcache import ConfigError, Scope, current_scope, scope
from llmcache.keys import scope_digest
from llmcache.request import MAX_SCOPE_PART_CHARS


def test_default_is_anonymous() -> None:
    assert current_scope() == Scope()
    assert current_scope().is_anonymous


def test_nested_scopes_inherit_and_restore() -> None:
    with scope(tenant="acme"):
        with scope(user="alice", acl=["kb-9", "kb-7"]):
            assert current_scope() == Scope.of(user="alice", tenant="acme", acl=["kb-7", "kb-9"])
            with scope(tenant=None):
                assert current_scope() == Scope.of(user="alice", acl=["kb-7", "kb-9"])
        assert current_scope() == Scope.of(tenant="acme")
    assert current_scope().is_anonymous


def test_scope_is_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError), scope(user="alice"):
        raise RuntimeError
    assert current_scope().is_anonymous


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user": ""},
        {"user": 42},
        {"tenant": "x" * (MAX_SCOPE_PART_CHARS + 1)},
        {"acl": "kb-7"},  # a bare string would otherwise be split into characters
        {"acl": ["ok", 7]},
        {"user": "\ud800"},  # lone surrogate cannot be keyed faithfully
    ],
)
def test_bad_scope_parts_are_refused_with_a_clear_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="scope"), scope(**kwargs):
        pass
    with pytest.raises(ConfigError, match="scope"):
        Scope(**kwargs)  # type: ignore[arg-type]  # built directly, not through Scope.of


def test_a_scope_built_directly_is_the_scope_of_the_same_parts() -> None:
    # Scope(acl="admin") used to be the set of its letters: the scope of a, d, m, i, n.
    with pytest.raises(ConfigError, match="not one string"):
        Scope(acl="admin")  # type: ignore[arg-type]
    assert Scope(user="u", acl=["b", "a", "a"]) == Scope.of(user="u", acl=("a", "b"))  # type: ignore[arg-type]
    assert scope_digest(Scope(acl=frozenset({"x"}))) == scope_digest(Scope.of(acl=["x"]))
    with pytest.raises(ConfigError, match="acl entry must be a string, got list"):
        Scope(acl=[["kb-7"]])  # type: ignore[list-item]  # was an unhashable-list TypeError


async def test_scope_holds_per_asyncio_task() -> None:
    async def who(user: str) -> str | None:
        with scope(user=user):
            await asyncio.sleep(0)
            # another task switched in meanwhile; our scope is still ours
            await asyncio.sleep(0)
            return current_scope().user

    results = await asyncio.gather(*(who(f"u{i}") for i in range(50)))
    assert results == [f"u{i}" for i in range(50)]


def test_scope_follows_copied_context_into_threads() -> None:
    with scope(user="alice"), ThreadPoolExecutor(2) as pool:
        ctx = contextvars.copy_context()
        assert pool.submit(ctx.run, lambda: current_scope().user).result() == "alice"
        # a thread started without the context sees no scope: never someone else's
        assert pool.submit(lambda: current_scope().user).result() is None


async def test_scope_follows_to_thread() -> None:
    with scope(user="bob", tenant="t"):
        assert await asyncio.to_thread(lambda: current_scope().describe()) == "bob@t"


def _stepped_in_fresh_contexts(steps: object) -> list[object]:
    """Iterate a generator as Starlette's ``iterate_in_threadpool`` does: each ``next`` in
    a fresh copy of the request's context (``anyio.to_thread.run_sync`` copies it)."""
    request_context = contextvars.copy_context()
    out = []
    while True:
        try:
            out.append(request_context.copy().run(next, steps))
        except StopIteration:
            return out


def test_blocks_held_across_a_generators_yields_end_in_another_context() -> None:
    from llmcache import cache_control, current_tags, tags
    from llmcache.context import current_control

    def stream() -> object:
        with scope(user="alice"), tags("kb-7"), cache_control(no_store=True):
            yield current_scope().user
            yield "second chunk"

    # Each block's end used to raise ValueError ("created in a different Context") into the
    # user's stream, after its last chunk.
    assert _stepped_in_fresh_contexts(stream()) == ["alice", "second chunk"]

    steps = stream()
    assert contextvars.copy_context().run(next, steps) == "alice"
    closing = contextvars.copy_context()
    closing.run(steps.close)  # closed in yet another context: no error either
    assert closing.run(current_scope).is_anonymous
    assert closing.run(current_tags) == ()
    assert not closing.run(current_control).no_store


@pytest.mark.parametrize("part", ["user", "tenant"])
def test_an_ambient_id_cannot_name_a_litellm_combined_scope(part: str) -> None:
    # The LiteLLM adapter names "alice asking with user=bob" by an id of this form; an id
    # taken from a client into scope(...) could otherwise name it and read its entries.
    forged = '\x00llmcache-combined:["alice","bob"]'
    with pytest.raises(ConfigError, match="reserved"), scope(**{part: forged}):
        pass
    assert current_scope().is_anonymous
