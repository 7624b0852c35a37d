"""A broken tier never fails a LangChain call: the model answers, the fault is counted and
logged once per outage. Real broken tiers: a MariaDB port nobody listens on, a corrupt file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from lc_fakes import ScriptedChat, text_reply

from langchain_llmcache import LangChainCache
from llmcache import Cache

DEAD_MARIADB = "mysql+pymysql://root@127.0.0.1:1/test"


def tier_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]


@pytest.fixture
def corrupt_sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not an SQLite database\x00" * 512)
    return f"sqlite:///{path}"


@pytest.fixture(params=["dead_mariadb", "corrupt_sqlite"])
def broken_url(request: pytest.FixtureRequest) -> str:
    if request.param == "dead_mariadb":
        return DEAD_MARIADB
    return str(request.getfixturevalue("corrupt_sqlite_url"))


@pytest.fixture
def cache_with_broken_tier(broken_url: str) -> Iterator[Cache]:
    cache = Cache.from_urls(["memory://", broken_url])
    yield cache
    cache.close()


def test_invoke_answers_through_a_broken_tier(
    cache_with_broken_tier: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    model = ScriptedChat(
        reply=text_reply("the real answer"), cache=LangChainCache(cache_with_broken_tier)
    )
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        replies = [model.invoke(f"question {i}") for i in range(5)]
        again = model.invoke("question 0")
    assert [r.content for r in replies] == ["the real answer"] * 5
    assert again.content == "the real answer"
    assert again.response_metadata["llmcache"]["tier"] == "memory"  # the healthy tier serves
    assert model.calls == 5
    broken = cache_with_broken_tier.tiers[1].name
    assert cache_with_broken_tier.stats()["errors_by_tier"][broken] >= 1
    failures = tier_failures(caplog)
    assert len(failures) == 1, failures  # once per outage, not once per call
    assert broken in failures[0]


async def test_ainvoke_answers_through_a_broken_tier(
    cache_with_broken_tier: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    model = ScriptedChat(
        reply=text_reply("async answer"), cache=LangChainCache(cache_with_broken_tier)
    )
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        replies = [await model.ainvoke(f"question {i}") for i in range(4)]
    assert [r.content for r in replies] == ["async answer"] * 4
    broken = cache_with_broken_tier.tiers[1].name
    assert cache_with_broken_tier.stats()["errors_by_tier"][broken] >= 1
    assert len(tier_failures(caplog)) == 1


def test_a_cache_of_only_a_dead_server_still_answers(caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache.from_urls([DEAD_MARIADB])
    try:
        model = ScriptedChat(reply=text_reply("answer"), cache=LangChainCache(cache))
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            assert model.invoke("q").content == "answer"
            assert model.invoke("q").content == "answer"
        assert model.calls == 2
        assert cache.stats()["hits"] == 0
        assert sum(cache.stats()["errors_by_tier"].values()) >= 1
        assert len(tier_failures(caplog)) == 1
    finally:
        cache.close()


async def test_a_prompt_holding_a_lone_surrogate_is_cached_not_a_failed_call() -> None:
    """Text decoded with errors="surrogateescape" holds lone surrogates, which orjson and
    UTF-8 refuse: building the key raised into ``invoke`` (a completion model's prompt is
    the text itself)."""
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    adapter = LangChainCache(Cache.from_urls(["memory://"]))
    llm = FakeListLLM(responses=["first", "second", "third"], cache=adapter)
    assert llm.invoke("log line: caf\udce9") == "first"
    assert llm.invoke("log line: caf\udce9") == "first"  # a hit
    assert llm.invoke("log line: caf\udc80") == "second"  # another surrogate, another key
    assert await llm.ainvoke("log line: caf\udce9") == "first"
    chat = FakeListChatModel(responses=["chat answer"], cache=adapter)
    assert chat.invoke("what is caf\udce9?").content == "chat answer"
    assert adapter.cache.stats()["hits"] == 2


def test_a_lone_surrogate_does_not_put_the_semantic_tier_out() -> None:
    """One such question sent to the embedder failed it, and the tier's breaker then skipped
    the semantic tier for every caller."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from word_embeddings import WordEmbeddings

    from llmcache.semantic.verifier import AcceptAll

    cache = Cache.from_urls(
        ["memory://"], semantic="faiss://:memory:", embedder=WordEmbeddings(), verifier=AcceptAll()
    )
    chat = FakeListChatModel(responses=["a", "b", "c"], cache=LangChainCache(cache))
    for i in range(3):
        chat.invoke(f"question {i}: caf\udce9?")
    stats = cache.stats()
    assert stats["semantic_skipped"] == {"invalid_unicode": 3}
    assert stats["breakers"]["semantic:faiss"] == "closed" and stats["errors_by_tier"] == {}
