"""``llmcache export`` / ``llmcache import`` between backends, seen from LangChain: after moving
a SQLite cache to Redis, MariaDB or PostgreSQL through the CLI, the same ``invoke`` on the new
store is a hit with the same answer, and scopes survive (another user still misses). A
semantic export, re-embedded on import, serves a paraphrase."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lc_fakes import ScriptedChat, scope_reply

from langchain_llmcache import LangChainCache
from llmcache import Cache, scope
from llmcache.cli.app import cli
from llmcache.semantic.verifier import AcceptAll

QUESTION = "What is our refund policy?"
PARAPHRASE = "What's our policy on refunds?"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _fill_source(url: str) -> None:
    """Alice's and Bob's answers to one question, stored through LangChain."""
    with Cache.from_urls([url], fleet_stats=False) as cache:
        model = ScriptedChat(cache=LangChainCache(cache), reply=scope_reply)
        for user in ("alice", "bob"):
            with scope(user=user, tenant="acme"):
                model.invoke(QUESTION)
        assert model.calls == 2


@pytest.mark.parametrize("tier_url", ["redis", "mysql", "postgres", "redis_cluster"], indirect=True)
def test_sqlite_moved_to_another_backend_serves_the_same_answers(
    tier_url: str, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    _fill_source(source)
    exported = tmp_path / "cache.jsonl"
    result = run("export", "--url", source, "-o", str(exported))
    assert result.exit_code == 0, result.output
    assert len(exported.read_bytes().splitlines()) == 3  # the header and two entries
    result = run("import", "--url", tier_url, str(exported), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 2

    with Cache.from_urls([tier_url], fleet_stats=False) as target:
        model = ScriptedChat(cache=LangChainCache(target), reply=scope_reply)
        with scope(user="alice", tenant="acme"):
            answer = model.invoke(QUESTION)
        assert answer.content == f"for alice: {QUESTION}" and model.calls == 0
        assert answer.response_metadata["llmcache"]["tier"] == target.tiers[0].name
        with scope(user="bob", tenant="acme"):
            assert model.invoke(QUESTION).content == f"for bob: {QUESTION}"
        assert model.calls == 0
        with scope(user="mallory", tenant="acme"):  # a scope the export never had: a miss
            assert model.invoke(QUESTION).content == f"for mallory: {QUESTION}"
        assert model.calls == 1


def test_a_scoped_export_moves_only_that_scope(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/t.db"
    _fill_source(source)
    exported = tmp_path / "alice.jsonl"
    result = run(
        "export", "--url", source, "--scope", "user=alice,tenant=acme", "-o", str(exported)
    )
    assert result.exit_code == 0, result.output
    assert run("import", "--url", target, str(exported)).exit_code == 0
    with Cache.from_urls([target], fleet_stats=False) as cache:
        model = ScriptedChat(cache=LangChainCache(cache), reply=scope_reply)
        with scope(user="alice", tenant="acme"):
            model.invoke(QUESTION)
        assert model.calls == 0
        with scope(user="bob", tenant="acme"):
            model.invoke(QUESTION)
        assert model.calls == 1


def test_a_semantic_export_is_re_embedded_on_import_and_serves_a_paraphrase(
    tmp_path: Path, minilm: object, semantic_cache: Callable[..., Cache]
) -> None:
    source = semantic_cache()  # memory + entries.db, FAISS vectors.faiss, MiniLM
    model = ScriptedChat(cache=LangChainCache(source))
    with scope(user="alice", tenant="acme"):
        model.invoke(QUESTION)
    source.close()
    exported = tmp_path / "semantic.jsonl"
    result = run(
        "export",
        "--url", f"sqlite:///{tmp_path}/entries.db",
        "--semantic", f"faiss://{tmp_path}/vectors.faiss",
        "-o", str(exported),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header, row = (json.loads(line) for line in exported.read_bytes().splitlines())
    assert header["embedding_model"] and row["semantic"]["text"] == QUESTION
    assert "vector" not in row  # vectors stay behind: the importer embeds with its own model

    target_db, target_index = f"sqlite:///{tmp_path}/target.db", f"{tmp_path}/target.faiss"
    result = run(
        "import", "--url", target_db, "--semantic", f"faiss://{target_index}", str(exported)
    )
    assert result.exit_code == 0, result.output
    with Cache.from_urls(
        [target_db],
        semantic=f"faiss://{target_index}?threshold=0.8&refresh=0",
        embedder=minilm,
        verifier=AcceptAll(),
        fleet_stats=False,
    ) as target:
        model = ScriptedChat(cache=LangChainCache(target))
        with scope(user="alice", tenant="acme"):
            hit = model.invoke(PARAPHRASE)
        assert model.calls == 0 and hit.content == "ok"
        assert hit.response_metadata["llmcache"]["match"] == "semantic"
        with scope(user="bob", tenant="acme"):  # the partition holds the scope: bob misses
            model.invoke(PARAPHRASE)
        assert model.calls == 1


def _keys(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


def test_an_encrypted_cache_exports_only_with_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = f"sqlite:///{tmp_path}/sealed.db", f"sqlite:///{tmp_path}/resealed.db"
    monkeypatch.setenv("LLMCACHE_ENCRYPTION_KEYS", _keys("old"))
    _fill_source(source)
    exported = tmp_path / "sealed.jsonl"
    assert run("export", "--url", source, "-o", str(exported)).exit_code == 0
    assert b"for alice" in exported.read_bytes()  # opened: the file holds the answers

    monkeypatch.setenv("LLMCACHE_ENCRYPTION_KEYS", _keys("new"))  # the target's own keys
    assert run("import", "--url", target, str(exported)).exit_code == 0
    assert b"for alice" not in Path(f"{tmp_path}/resealed.db").read_bytes()  # sealed again
    with Cache.from_urls([target], fleet_stats=False) as cache:
        model = ScriptedChat(cache=LangChainCache(cache), reply=scope_reply)
        with scope(user="alice", tenant="acme"):
            assert model.invoke(QUESTION).content == f"for alice: {QUESTION}"
        assert model.calls == 0

    monkeypatch.delenv("LLMCACHE_ENCRYPTION_KEYS")  # no keys: nothing can be exported
    result = run("export", "--url", target, "-o", str(tmp_path / "none.jsonl"))
    assert result.exit_code == 1, result.output  # an incomplete backup is not a success
    assert "2 of 2 entries could not be read here and are not in the file" in result.stderr
    assert len((tmp_path / "none.jsonl").read_bytes().splitlines()) == 1  # the header only
