"""``llmcache inspect``: listing entries by scope, tag and model, one entry in full, on real
stores; what it prints never holds a secret; bad input is one line."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import assert_one_error_line, closed_port, drop_tables, with_query
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest, Scope, Usage, scope
from llmcache.cli.app import cli

ALICE = Scope.of(user="alice", tenant="acme", acl=["kb-7", "kb-9"])
API_KEY = "sk-live-4f9Qw2Zx8Lm3Np7Rt5Vb1Yc6"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["inspect", *args])


def listed(*args: str) -> list[dict[str, Any]]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)["entries"]
    return entries


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store(request: pytest.FixtureRequest) -> str:
    """A store holding six entries: alice's (tagged faq) and anonymous ones, two models."""
    url = _url(request)
    with Cache.from_urls([url], fleet_stats=False) as cache:
        for i in range(3):
            cache.set(
                CacheRequest(model="m", prompt=f"q{i}", model_name="gpt-x", scope=ALICE,
                             tags=("faq", "[red]*")),
                {"content": f"alice {i}"}, usage=Usage(10 + i, 2),
            )  # fmt: skip
            cache.set(
                CacheRequest(model="c", prompt=f"q{i}", model_name="claude-y"),
                {"content": f"anon {i}"},
                ttl=3600,
            )
    return url


def _url(request: pytest.FixtureRequest) -> str:
    prefix = request.getfixturevalue("table_prefix")
    if request.param == "sqlite":
        return f"sqlite:///{request.getfixturevalue('tmp_path')}/inspect.db"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_prefix_url"))
    base = request.getfixturevalue("postgres_url")
    request.addfinalizer(lambda: drop_tables(base, prefix))
    return with_query(base, table_prefix=prefix)


def test_filters_select_by_scope_tag_and_model(store: str) -> None:
    everything = listed("--url", store)
    assert len(everything) == 6
    assert {e["model"] for e in everything} == {"gpt-x", "claude-y"}
    alice = ["--user", "alice", "--tenant", "acme", "--acl", "kb-9", "--acl", "kb-7"]
    assert len(listed("--url", store, *alice)) == 3
    assert len(listed("--url", store, "--scope", "user=alice,tenant=acme,acl=kb-7,acl=kb-9")) == 3
    assert listed("--url", store, "--user", "alice") == []  # the scope is exact
    tagged = listed("--url", store, "--tag", "[red]*")  # glob and markup characters are data
    assert len(tagged) == 3 and all(e["tags"] == ["faq", "[red]*"] for e in tagged)
    assert listed("--url", store, "--tag", "*") == []
    claude = listed("--url", store, "--model", "claude-y")
    assert len(claude) == 3 and all(e["expires"] is not None for e in claude)
    assert sorted(e["usage"]["input_tokens"] for e in listed("--url", store, "--tag", "faq")) == [
        10, 11, 12,
    ]  # fmt: skip


def test_the_table_and_the_limit(store: str) -> None:
    result = run("--url", store, "--limit", "2", "--model", "gpt-x")
    assert result.exit_code == 0, result.output
    assert "faq, [red]*" in result.stdout  # shown as text, not taken as rich markup
    assert "more entries than --limit 2" in result.stdout
    assert json.loads(run("--url", store, "--limit", "6", "--json").stdout)["more"] is False


def test_one_entry_in_full(store: str) -> None:
    key = listed("--url", store, "--model", "claude-y", "--limit", "1")[0]["key"]
    result = run("--url", store, key[:10], "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["key"] == key and shown["model"] == "claude-y"
    assert shown["value"]["content"].startswith("anon ")
    table = run("--url", store, key[:10])
    assert table.exit_code == 0 and '"content": "anon' in table.stdout


def test_inspect_output_never_holds_an_api_key(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/secret.db"
    llm_string = (
        "[('_type', 'openai-chat'), ('model_name', 'gpt-4o-mini'), "
        f"('openai_api_key', '{API_KEY}'), ('stop', None)]"
    )
    message = AIMessage(
        content=f"Use the header Authorization: Bearer {API_KEY} (api_key={API_KEY})",
        response_metadata={"api_key": API_KEY, "headers": {"x-api-key": API_KEY}},
    )
    with Cache.from_urls([url], fleet_stats=False) as cache:
        adapter = LangChainCache(cache)
        with scope(user="alice"):
            adapter.update("a prompt", llm_string, [ChatGeneration(message=message)])
            assert adapter.lookup("a prompt", llm_string) is not None
        raw = b"".join(
            row[0] for row in cache.tiers[0].engine.connect().exec_driver_sql(  # type: ignore[attr-defined]
                "SELECT value FROM llmcache_entries"
            )
        )  # fmt: skip
    assert API_KEY.encode() in raw  # the answer itself holds it: inspect must hide it
    key = listed("--url", url)[0]["key"]
    outputs = [
        run("--url", url).output,
        run("--url", url, "--json").output,
        run("--url", url, key).output,
        run("--url", url, key, "--json").output,
    ]
    for output in outputs:
        assert "gpt-4o-mini" in output or key in output
        assert API_KEY not in output and API_KEY[:12] not in output


def test_inspect_hides_every_secret_named_field_but_shows_token_counts(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/named.db"
    secrets = {
        "aws_secret_access_key": "AKIA-SECRET-1",
        "private_key": "PRIVATE-2",
        "secret_key": "SECRET-3",
        "secretKey": "SECRET-4",
        "credentials": {"user": "svc", "pass": "CRED-5"},
        "passphrase": "PASS-6",
        "cookie": "sid=COOKIE-7",
        "client_secret": "CLIENT-8",
    }
    texts = [
        "aws_secret_access_key=AKIA-TEXT-9",
        "Authorization: Bearer BEARER-TEXT-10",
    ]
    counts = {"max_tokens": 256, "stop_token_ids": [7, 9], "prompt_tokens": 11, "token_count": 3}
    with Cache.from_urls([url], fleet_stats=False) as cache:
        asked = CacheRequest(model="m", model_name="m", prompt="p")
        cache.set(asked, {**secrets, "texts": texts, **counts}, ttl=None)
    key = listed("--url", url)[0]["key"]
    shown = run("--url", url, key, "--json")
    assert shown.exit_code == 0, shown.output
    value = json.loads(shown.stdout)["value"]
    assert {name: value[name] for name in secrets} == dict.fromkeys(secrets, "***")
    assert value["texts"] == ["aws_secret_access_key=***", "Authorization: Bearer ***"]
    assert {name: value[name] for name in counts} == counts
    for output in (shown.stdout, run("--url", url, key).stdout):
        assert not re.search(r"[A-Z]+-(?:TEXT-)?\d+\b", output), output


def test_bad_input_is_one_line(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    Cache.from_urls([url]).close()  # an app made it
    assert_one_error_line(run("--url", "nosuch://x"), 2, "unsupported tier URL scheme")
    assert_one_error_line(
        run("--url", f"redis://127.0.0.1:{closed_port()}/0"), 1, "is the server running"
    )
    assert_one_error_line(
        run("--url", f"mysql+pymysql://root:hunter2@127.0.0.1:{closed_port()}/x"),
        1,
        "is the server running",
    )
    assert (
        "hunter2"
        not in run("--url", f"mysql+pymysql://root:hunter2@127.0.0.1:{closed_port()}/x").output
    )
    assert_one_error_line(run("--url", url, "abcdef"), 1, "no entry whose key starts with abcdef")
    assert_one_error_line(run("--url", url, "not-hex"), 2, "KEY is an entry's digest in hex")
    assert_one_error_line(run("--url", url, "--scope", "name=alice"), 2, "--scope takes user=")
    assert_one_error_line(run("--url", url, "--tier", "nope"), 2, "no tier named 'nope'")
