"""The ``llmcache`` command: the demo's output, its JSON, its errors, and the workload.

The demo runs for real (LangChain's global cache, real SQLite files) with a tiny latency;
only the entry point test starts a subprocess, to see what a user's shell sees.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import assert_one_error_line, closed_port
from langchain_core.caches import InMemoryCache
from langchain_core.globals import get_llm_cache, set_llm_cache

import llmcache
from llmcache import Cache, CacheRequest, Scope
from llmcache.cli.app import cli
from llmcache.cli.demo import percentile
from llmcache.cli.workload import QUESTIONS, TENANT, USERS, build_workload

TINY = ["--calls", "30", "--latency", "0.001"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def demo_json(*args: str) -> dict[str, Any]:
    result = run("demo", *TINY, "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    return data


# ---------------------------------------------------------------------------- the demo
def test_demo_prints_a_table_with_a_positive_hit_rate() -> None:
    result = run("demo", *TINY)
    assert result.exit_code == 0, result.output
    out = result.stdout
    match = re.search(r"hit rate\W+-\W+(\d+\.\d)%", out)
    assert match, out
    assert float(match.group(1)) > 0
    for row in ("latency p50", "latency p95", "tokens saved", "LLM calls made"):
        assert row in out
    assert re.search(r"memory\W+\d+", out)  # hits by tier
    assert "Traceback" not in result.output


def test_demo_json_is_consistent_with_the_stats() -> None:
    data = demo_json()
    before, after = data["without_cache"], data["with_cache"]
    assert before["calls"] == after["calls"] == 30
    assert before["hits"] == 0 and before["llm_calls"] == 30
    assert 0 < data["hit_rate"] == after["hits"] / 30
    assert after["hits"] + after["llm_calls"] == 30
    assert sum(data["hits_by_tier"].values()) == after["hits"] == data["stats"]["hits"]
    # Every token a hit saved is one the uncached run spent and the cached run did not.
    assert data["tokens_saved"] == before["tokens_spent"] - after["tokens_spent"] > 0
    assert data["errors_by_tier"] == {}
    assert data["provider"] == "fake"
    assert [u.split(":", 1)[0] for u in data["tiers"]] == ["memory", "sqlite"]


def test_demo_is_reproducible_for_a_seed() -> None:
    first, second = demo_json("--seed", "3"), demo_json("--seed", "3")
    assert first["with_cache"]["hits"] == second["with_cache"]["hits"]
    assert first["without_cache"]["tokens_spent"] == second["without_cache"]["tokens_spent"]


def test_demo_on_a_url_chain() -> None:
    data = demo_json("--url", "memory://?maxsize=5")
    assert data["tiers"] == ["memory://?maxsize=5"]
    assert set(data["hits_by_tier"]) == {"memory"}
    assert data["hit_rate"] > 0


def test_db_keeps_answers_for_a_warm_run_and_a_cold_run_starts_over(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    cold = demo_json("--db", db)
    warm = demo_json("--db", db, "--warm")
    # A new process-like run: memory is empty, SQLite still has every answer of the first run.
    assert warm["hit_rate"] == 1.0
    assert warm["hits_by_tier"]["sqlite"] > 0
    again = demo_json("--db", db)  # without --warm the demo's own entries are cleared first
    assert again["with_cache"]["hits"] == cold["with_cache"]["hits"]


def test_demo_clears_only_its_own_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    request = CacheRequest(model="m", prompt="p", scope=Scope.of(user=USERS[0], tenant="prod"))
    with Cache.from_urls([url]) as cache:
        assert cache.set(request, "an app's answer")
    demo_json("--db", str(tmp_path / "shared.db"))
    with Cache.from_urls([url]) as cache:
        hit = cache.get(request)
    assert hit is not None and hit.entry.value == "an app's answer"


def test_demo_restores_the_callers_global_llm_cache() -> None:
    mine = InMemoryCache()
    set_llm_cache(mine)
    try:
        demo_json()
        assert get_llm_cache() is mine
    finally:
        set_llm_cache(None)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("nope", "not a tier URL"),
        ("memory://?bad=1", "unknown option"),
        ("ftp://x/y", "unsupported tier URL scheme"),
    ],
)
def test_bad_url_is_one_line_and_a_usage_error(url: str, fragment: str) -> None:
    assert_one_error_line(run("demo", *TINY, "--url", url), 2, fragment)


def test_a_redis_url_with_a_bad_prefix_is_one_line() -> None:
    result = run("demo", *TINY, "--url", "redis://127.0.0.1:6379/0?prefix=a*b")
    assert_one_error_line(result, 2, "redis tier", "prefix 'a*b'", "is not allowed")


def test_unreachable_redis_is_one_line_naming_it() -> None:
    port = closed_port()
    result = run("demo", *TINY, "--url", f"redis://:hunter2@127.0.0.1:{port}/0")
    assert_one_error_line(result, 1, f"127.0.0.1:{port}", "is the server running")
    assert "hunter2" not in result.output


def test_unreachable_server_is_one_line_naming_it() -> None:
    port = closed_port()
    url = f"mysql+pymysql://root:hunter2@127.0.0.1:{port}/test"
    result = run("demo", *TINY, "--url", url)
    assert_one_error_line(result, 1, f"127.0.0.1:{port}", "is the server running")
    assert "hunter2" not in result.output


READING_COMMANDS = [
    ["inspect"],
    ["export", "-o", "out.jsonl"],
    ["doctor"],
    ["stats"],
    ["report"],
    ["invalidate", "--tag", "faq"],
]


@pytest.mark.parametrize("command", READING_COMMANDS, ids=lambda c: c[0])
def test_a_reading_command_refuses_an_sqlite_file_that_does_not_exist(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mistyped path used to answer "0 entries" or "all good" about an empty cache made on
    # the spot, and leave that file behind.
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.db"
    result = run(*command, "--url", "memory://", "--url", f"sqlite:///{missing}")
    assert_one_error_line(result, 2, f"no cache at {missing}", "--url", "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [["reindex"], ["export", "--url", "memory://", "-o", "out.jsonl"]],
    ids=lambda c: c[0],
)
def test_a_reading_command_refuses_a_faiss_index_that_does_not_exist(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.faiss"
    result = run(*command, "--semantic", f"faiss://{missing}")
    assert_one_error_line(result, 2, f"no cache at {missing}", "--semantic")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_reading_command_opens_an_sqlite_file_an_app_made(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with Cache.from_urls([url]) as cache:
        cache.set(CacheRequest(model="m", prompt="refund policy?"), "Within 30 days.")
    out = tmp_path / "out.jsonl"
    result = run("export", "--url", url, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "Within 30 days." in out.read_text()


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["demo", "--latency", "nan"], "'nan' is not a finite number of seconds"),
        (["demo", "--latency", "inf"], "'inf' is not a finite number of seconds"),
        (["invalidate", "--url", "memory://", "--older-than", "nan"], "not a finite number"),
        # A warm-up with ttl 0 would store nothing and report every row as failed.
        (["warmup", "--url", "memory://", "--model", "m", "--ttl", "0"], "not in the range x>0"),
        (["warmup", "--url", "memory://", "--model", "m", "--ttl", "nan"], "not a finite number"),
    ],
)
def test_durations_that_mean_nothing_are_usage_errors(command: list[str], shown: str) -> None:
    # click's FloatRange lets nan and inf through: every comparison with nan is false.
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert shown in result.stderr


def test_db_and_url_together_is_a_usage_error(tmp_path: Path) -> None:
    result = run("demo", "--db", str(tmp_path / "x.db"), "--url", "memory://")
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_out_of_range_option_is_clicks_usage_error() -> None:
    result = run("demo", "--calls", "0")
    assert result.exit_code == 2
    assert "--calls" in result.stderr


def test_real_provider_without_a_key_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert_one_error_line(run("demo", "--provider", "openai"), 2, "OPENAI_API_KEY")


def test_auto_provider_without_a_key_uses_the_fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert demo_json("--provider", "auto")["provider"] == "fake"


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"llmcache, version {llmcache.__version__}"


def test_entry_point_in_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmcache.cli.main", "demo", "--calls", "5", "--latency", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hit rate" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "llmcache.cli.main", "demo", "--url", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_without_the_cli_extra_the_command_names_it() -> None:
    code = (
        "import sys; sys.modules['click'] = None  # as if click were not installed\n"
        "from llmcache.cli.main import main; main(['--version'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'llmcache[cli]'" in proc.stderr


# ---------------------------------------------------------------------------- README
README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# llmcache"
    fence = lines.index("```bash")
    assert lines[fence + 1 : fence + 4] == [
        'pip install -e ".[cli,langchain]" && llmcache demo',
        "bash scripts/test.sh",
        "```",
    ]
    assert fence <= 4  # right under the title and one sentence


@pytest.mark.parametrize(
    "snippet", re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
)
def test_readme_python_snippets_run(snippet: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,  # snippets write ./llmcache.db
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Each "# ..." comment after a print states what it prints.
    expected = [
        line.split("# ", 1)[1].strip()
        for line in snippet.splitlines()
        if line.startswith("print(") and "# " in line
    ]
    assert proc.stdout.splitlines() == expected


# ---------------------------------------------------------------------------- workload
def test_workload_is_seeded_skewed_and_scoped_to_the_users_asked_for() -> None:
    calls = build_workload(400, users=3, seed=1)
    assert calls == build_workload(400, users=3, seed=1)
    assert calls != build_workload(400, users=3, seed=2)
    assert {c.user for c in calls} == set(USERS[:3])
    counts = Counter(c.question for c in calls)
    assert counts[QUESTIONS[0]] > 4 * counts.get(QUESTIONS[-1], 0)  # Zipf: head >> tail
    assert TENANT == "llmcache-demo"


@pytest.mark.parametrize(("calls", "users"), [(0, 1), (1, 0), (1, len(USERS) + 1)])
def test_workload_refuses_impossible_sizes(calls: int, users: int) -> None:
    with pytest.raises(ValueError):
        build_workload(calls, users, seed=0)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
    assert percentile([], 0.5) == 0.0
