"""What an entry is keyed on: prompt, llm_string and the ambient scope, read at call time."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from lc_fakes import ScriptedChat, scope_reply

from langchain_llmcache import LangChainCache
from llmcache import Cache, Scope, scope


def gen(text: str) -> list[Generation]:
    return [Generation(text=text)]


def texts(found: list[Generation] | None) -> list[str] | None:
    return None if found is None else [g.text for g in found]


def test_same_prompt_other_llm_string_is_a_miss(lc_tier_cache: LangChainCache) -> None:
    lc_tier_cache.update("prompt", "model-a---[('stop', None)]", gen("from a"))
    assert lc_tier_cache.lookup("prompt", "model-b---[('stop', None)]") is None
    assert lc_tier_cache.lookup("prompt", "model-a---[('stop', ['x'])]") is None
    assert texts(lc_tier_cache.lookup("prompt", "model-a---[('stop', None)]")) == ["from a"]


def test_prompts_differing_in_case_or_trailing_space_are_different_entries(
    lc_tier_cache: LangChainCache,
) -> None:
    # MariaDB's default collation would call these equal if keys were compared as text.
    prompts = ["Hello", "hello", "Hello ", "HELLO", "Hello\t", "Héllo", "He\u0301llo"]
    for prompt in prompts:
        lc_tier_cache.update(prompt, "llm", gen(f"answer to {prompt!r}"))
    for prompt in prompts:
        assert texts(lc_tier_cache.lookup(prompt, "llm")) == [f"answer to {prompt!r}"]
    llms = ["LLM", "llm ", "llm"]
    for llm in llms:
        lc_tier_cache.update("p", llm, gen(llm))
    for llm in llms:
        assert texts(lc_tier_cache.lookup("p", llm)) == [llm]


def test_scope_is_read_at_lookup_and_update_time(lc_tier_cache: LangChainCache) -> None:
    with scope(user="alice", tenant="acme"):
        lc_tier_cache.update("p", "llm", gen("alice's"))
        assert texts(lc_tier_cache.lookup("p", "llm")) == ["alice's"]
    assert lc_tier_cache.lookup("p", "llm") is None
    with scope(user="bob", tenant="acme"):
        assert lc_tier_cache.lookup("p", "llm") is None
    with scope(user="alice", tenant="other"):
        assert lc_tier_cache.lookup("p", "llm") is None
    with scope(user="alice", tenant="acme", acl=["kb-1"]):
        assert lc_tier_cache.lookup("p", "llm") is None


def test_user_a_is_never_served_user_bs_answer_through_invoke(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(reply=scope_reply, cache=lc_cache)
    with scope(user="alice"):
        assert model.invoke("my balance?").content == "for alice: my balance?"
    with scope(user="bob"):
        assert model.invoke("my balance?").content == "for bob: my balance?"
    assert model.invoke("my balance?").content == "for None: my balance?"
    with scope(user="alice"):
        again = model.invoke("my balance?")
    assert again.content == "for alice: my balance?"
    assert again.response_metadata["llmcache"]["tier"] == "memory"
    assert model.calls == 3


def test_scope_holds_in_batch_threads(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(reply=scope_reply, cache=lc_cache)
    questions = [f"question {i}" for i in range(8)]
    for user in ("alice", "bob", "alice", "bob"):
        with scope(user=user):
            answers = model.batch(questions, config={"max_concurrency": 4})
        assert [a.content for a in answers] == [f"for {user}: {q}" for q in questions]
    assert model.calls == 16  # each user's batch stored once, then served from the cache
    assert lc_cache.cache.stats()["hits"] == 16


async def test_scope_holds_in_abatch(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(reply=scope_reply, cache=lc_cache)
    questions = [f"question {i}" for i in range(6)]
    for user in ("carol", "dave", "carol", "dave"):
        with scope(user=user):
            answers = await model.abatch(questions)
        assert [a.content for a in answers] == [f"for {user}: {q}" for q in questions]
    assert model.calls == 12


async def test_scope_holds_across_gathered_tasks(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(reply=scope_reply, cache=lc_cache)
    users = [f"user{i}" for i in range(12)]

    async def ask(user: str) -> str:
        with scope(user=user, tenant="acme"):
            await asyncio.sleep(0)  # let the other tasks enter their own scopes first
            reply = await model.ainvoke("same question for everyone")
            return str(reply.content)

    for _ in range(2):
        answers = await asyncio.gather(*(ask(u) for u in users))
        assert answers == [f"for {u}: same question for everyone" for u in users]
    assert model.calls == len(users)


def test_clear_removes_everything(lc_tier_cache: LangChainCache) -> None:
    with scope(user="alice"):
        lc_tier_cache.update("p", "llm", gen("a"))
    lc_tier_cache.update("p", "llm", gen("anon"))
    lc_tier_cache.clear()
    assert lc_tier_cache.lookup("p", "llm") is None
    with scope(user="alice"):
        assert lc_tier_cache.lookup("p", "llm") is None


def test_clear_with_a_scope_removes_only_that_scope(lc_tier_cache: LangChainCache) -> None:
    for user in ("alice", "bob"):
        with scope(user=user, tenant="acme"):
            lc_tier_cache.update("p", "llm", gen(user))
    lc_tier_cache.update("p", "llm", gen("anon"))
    lc_tier_cache.clear(scope=Scope.of(user="alice", tenant="acme"))
    with scope(user="alice", tenant="acme"):
        assert lc_tier_cache.lookup("p", "llm") is None
    with scope(user="bob", tenant="acme"):
        assert texts(lc_tier_cache.lookup("p", "llm")) == ["bob"]
    assert texts(lc_tier_cache.lookup("p", "llm")) == ["anon"]


async def test_aclear_with_a_scope(lc_tier_cache: LangChainCache) -> None:
    with scope(user="alice"):
        await lc_tier_cache.aupdate("p", "llm", gen("a"))
    await lc_tier_cache.aupdate("p", "llm", gen("anon"))
    await lc_tier_cache.aclear(scope=Scope.of(user="alice"))
    with scope(user="alice"):
        assert await lc_tier_cache.alookup("p", "llm") is None
    assert texts(await lc_tier_cache.alookup("p", "llm")) == ["anon"]


def test_clear_refuses_what_it_does_not_understand(lc_cache: LangChainCache) -> None:
    from llmcache import ConfigError

    with pytest.raises(ConfigError, match=r"scope=Scope\.of"):
        lc_cache.clear(user="alice")
    with pytest.raises(ConfigError, match=r"takes an llmcache\.Scope"):
        lc_cache.clear(scope="alice")


def test_clear_leaves_foreign_sqlite_tables_alone(sqlite_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE app_data (id INTEGER PRIMARY KEY, v TEXT)"))
        conn.execute(sa.text("INSERT INTO app_data (v) VALUES ('keep me')"))
    other = Cache.from_urls([sqlite_url + "?table_prefix=otherapp"])
    ours = LangChainCache(Cache.from_urls([sqlite_url]))
    try:
        LangChainCache(other).update("p", "llm", gen("theirs"))
        ours.update("p", "llm", gen("ours"))
        ours.clear()
        assert ours.lookup("p", "llm") is None
        assert texts(LangChainCache(other).lookup("p", "llm")) == ["theirs"]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT v FROM app_data")).scalar_one() == "keep me"
    finally:
        other.close()
        ours.cache.close()
        engine.dispose()


def test_namespaces_keep_apps_apart(lc_cache: LangChainCache) -> None:
    app1 = LangChainCache(lc_cache.cache, namespace="app1")
    app2 = LangChainCache(lc_cache.cache, namespace="app2")
    app1.update("p", "llm", [ChatGeneration(message=AIMessage(content="one"))])
    assert app2.lookup("p", "llm") is None
    assert [g.text for g in app1.lookup("p", "llm") or []] == ["one"]


def test_alternating_users_on_one_prompt_each_get_their_own_entry() -> None:
    # The adapter remembers the last request per prompt and reuses it only for the very same
    # scope object; equal-valued scopes built anew in each block, alternating, must still
    # land on their own entries every time.
    lc = LangChainCache(Cache.from_urls(["memory://"]))
    for user in ("alice", "bob"):
        with scope(user=user):
            lc.update("p", "llm", gen(f"{user}'s"))
    for _ in range(3):
        for user in ("alice", "bob", "alice"):
            with scope(user=user):
                assert texts(lc.lookup("p", "llm")) == [f"{user}'s"]
        assert texts(lc.lookup("p", "llm")) is None  # anonymous: neither user's


def test_a_hot_prompt_keeps_its_request_through_a_stream_of_new_prompts() -> None:
    from langchain_llmcache import cache as adapter

    lc = LangChainCache(Cache.from_urls(["memory://"]))
    hot = lc.request_for("hot", "llm")
    for i in range(adapter.REMEMBERED_REQUESTS * 2):
        lc.request_for(f"new {i}", "llm")
        if i % 100 == 0:
            assert lc.request_for("hot", "llm") is hot  # used again: kept, key not recomputed
    assert lc.request_for("new 0", "llm") is not lc.request_for("new 0", "other-llm")
