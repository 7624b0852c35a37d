"""``llmcache invalidate``: the shell's way to ``Cache.invalidate``, on real stores.

Entries are written by a Cache on a fake clock set in the past, so ``--older-than`` (which the
command measures on the wall clock) selects them without any sleep.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner, Result

from llmcache import Cache, CacheRequest, FakeClock, Scope
from llmcache.cli.app import cli

ALICE_AT_ACME = Scope.of(user="alice", tenant="acme", acl=["kb-7", "kb-9"])

ENTRIES = {
    "faq": CacheRequest(model="m", prompt="a", model_name="gpt-x", tags=("faq",)),
    "alice": CacheRequest(model="m", prompt="a", model_name="gpt-x", scope=ALICE_AT_ACME),
    "claude": CacheRequest(model="c", prompt="a", model_name="claude-y"),
    "v1": CacheRequest(model="m", prompt="a", model_name="gpt-x", namespace="template-v1"),
}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["invalidate", *args])


def still_served(url: str) -> set[str]:
    with Cache.from_urls([url], fleet_stats=False) as cache:
        return {name for name, request in ENTRIES.items() if cache.get(request) is not None}


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A store holding ENTRIES, written an hour ago by the fake clock."""
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path}/cli.db"
    else:
        store_url = request.getfixturevalue("redis_prefix_url")
    hour_ago = FakeClock(start=time.time() - 3600)
    with Cache.from_urls([store_url], clock=hour_ago, fleet_stats=False) as cache:
        for request_ in ENTRIES.values():
            cache.set(request_, "answer", ttl=None)
    return store_url


def test_each_option_selects_what_the_api_would(url: str) -> None:
    result = run("--url", url, "--tag", "faq", "--tag", "unused")
    assert result.exit_code == 0, result.output
    assert result.stdout == "removed 1 entry\n"
    assert still_served(url) == {"alice", "claude", "v1"}
    scope = ["--user", "alice", "--tenant", "acme", "--acl", "kb-9", "--acl", "kb-7"]
    assert run("--url", url, *scope[:2]).stdout == "removed 0 entries\n"  # the scope is exact
    assert run("--url", url, *scope).stdout == "removed 1 entry\n"
    assert run("--url", url, "--model", "claude-y").stdout == "removed 1 entry\n"
    assert still_served(url) == {"v1"}
    assert run("--url", url, "--namespace", "template-v1", "--older-than", "7200").stdout == (
        "removed 0 entries\n"  # written an hour ago: not two hours old
    )
    assert run("--url", url, "--namespace", "template-v1", "--older-than", "1800").stdout == (
        "removed 1 entry\n"
    )
    assert still_served(url) == set()


def test_json_output_and_every_tier_counted(url: str, tmp_path: object) -> None:
    second = f"sqlite:///{tmp_path}/second.db"
    with Cache.from_urls([second]) as cache:
        cache.set(ENTRIES["faq"], "also here")
    result = run("--url", url, "--url", second, "--tag", "faq", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "removed": 2,
        "criteria": {
            "tags": ["faq"],
            "scope": None,
            "model": None,
            "namespace": None,
            "older_than": None,
        },
    }
    assert still_served(second) == set()


def test_without_criteria_it_is_a_usage_error_and_removes_nothing(url: str) -> None:
    result = run("--url", url)
    assert result.exit_code == 2
    assert "give at least one of --tag" in result.stderr
    assert still_served(url) == set(ENTRIES)


def test_bad_input_is_one_error_line(tmp_path: object) -> None:
    result = run("--url", "nosuch://x", "--tag", "a")
    assert result.exit_code == 2
    assert result.stderr.startswith("llmcache: error: not a tier URL") or (
        "unsupported tier URL scheme" in result.stderr
    )
    result = run("--url", f"sqlite:///{tmp_path}/x.db", "--older-than", "-1")
    assert result.exit_code == 2 and "-1" in result.stderr


def test_an_unreachable_tier_fails_naming_it(tmp_path: object) -> None:
    Cache.from_urls([f"sqlite:///{tmp_path}/x.db"]).close()  # an app made it
    result = run(
        "--url", f"sqlite:///{tmp_path}/x.db", "--url", "redis://127.0.0.1:1/0", "--tag", "a"
    )
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("llmcache: error: invalidate removed 0 entries")
    assert "redis" in last and "run it again" in last
    assert "Traceback" not in result.output
