"""``llmcache warmup``: the shell's way to warm a cache, on real stores; what an app sees
afterwards, the summary, and the one-line errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import litellm
import pytest
from click.testing import CliRunner, Result
from conftest import assert_one_error_line, closed_port
from langchain_core.globals import get_llm_cache, set_llm_cache
from warmup_fakes import RECORD, answer_to

from langchain_llmcache import LangChainCache
from litellm_llmcache import LiteLLMCache
from llmcache import Cache, scope
from llmcache.cli.app import cli
from llmcache.cli.fake_model import DemoChatModel

STORES = ["sqlite", "mysql", "postgres", "redis"]  # a memory tier ends with the command
FAKE_MODEL = "llmcache.cli.fake_model:DemoChatModel"
RESET = "How do I reset my password?"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["warmup", *args])


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture
def faq(tmp_path: Path) -> Path:
    path = tmp_path / "faq.csv"
    path.write_text(
        f"question,answer,user\n{RESET},Open Settings.,\nRefunds?,30 days.,alice\n",
        encoding="utf-8",
    )
    return path


def langchain_answer(url: str, question: str, user: str | None = None) -> tuple[str, bool, int]:
    """What the app's LangChain call gets from the store: answer, hit, model calls made."""
    previous = get_llm_cache()
    with Cache.from_urls([url], fleet_stats=False) as cache:
        set_llm_cache(LangChainCache(cache))
        try:
            model = DemoChatModel(latency=0)
            with scope(user=user):
                answer = model.invoke(question)
        finally:
            set_llm_cache(previous)
    return str(answer.content), "llmcache" in answer.response_metadata, model.calls


@pytest.mark.parametrize("tier_url", STORES, indirect=True)
def test_faq_from_the_shell_is_a_hit_for_the_app(tier_url: str, faq: Path) -> None:
    summary = run_json("--url", tier_url, "--faq", str(faq), "--model", FAKE_MODEL)
    assert (summary["stored"], summary["skipped"], summary["failed"]) == (2, 0, 0)
    assert summary["source"] == "faq" and summary["adapter"] == "langchain"
    assert langchain_answer(tier_url, RESET) == ("Open Settings.", True, 0)
    assert langchain_answer(tier_url, "Refunds?", user="alice") == ("30 days.", True, 0)
    assert langchain_answer(tier_url, "Refunds?", user="bob")[1:] == (False, 1)


def test_the_summary_table(sqlite_url: str, faq: Path) -> None:
    result = run("--url", sqlite_url, "--faq", str(faq), "--model", FAKE_MODEL)
    assert result.exit_code == 0, result.output
    for row in ("stored", "skipped", "failed", "elapsed"):
        assert row in result.stdout
    assert "│ stored  │      2 │" in result.stdout


def test_skip_bad_lists_the_rows_left_out(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text('{"question": "a?", "answer": "A."}\n{"question": "b?"}\n', encoding="utf-8")
    result = run("--url", sqlite_url, "--faq", str(path), "--model", FAKE_MODEL, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped line 2: no answer" in result.stdout
    summary = run_json("--url", sqlite_url, "--faq", str(path), "--model", FAKE_MODEL, "--skip-bad")
    assert summary["bad_rows"] == [{"line": 2, "reason": "no answer"}]


def test_replaying_a_log_from_the_shell(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    prompts = ["a?", "b?", "a?", "c?", "a?", "b?"]
    log.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    RECORD.reset()
    RECORD.hold_until = 2  # both calls must be in flight at once before either is answered
    args = ["--url", sqlite_url, "--from-log", str(log), "--top", "2"]
    summary = run_json(*args, "--model", "warmup_fakes:make_model", "--concurrency", "2")
    assert sorted(RECORD.asked) == ["a?", "b?"]
    assert RECORD.max_in_flight == 2
    assert (summary["stored"], summary["model_calls"], summary["failed"]) == (2, 2, 0)
    assert summary["log"] == {"records": 6, "distinct_calls": 3, "other_models": 0, "top": 2}
    again = run_json(*args, "--model", "warmup_fakes:make_model")
    assert (again["already_cached"], again["model_calls"]) == (2, 0)
    with Cache.from_urls([sqlite_url], fleet_stats=False) as cache:
        from warmup_fakes import make_model

        model = make_model().model_copy(update={"cache": LangChainCache(cache)})
        assert model.invoke("b?").content == answer_to("b?")
    assert sorted(RECORD.asked) == ["a?", "b?"]  # served by the cache, not the model


def test_replaying_through_litellm_from_the_shell(redis_prefix_url: str, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.write_text('{"prompt": "a?", "tenant": "acme"}\n', encoding="utf-8")
    args = ["--url", redis_prefix_url, "--from-log", str(log), "--top", "5", "--adapter", "litellm"]
    summary = run_json(*args, "--model", "gpt-4o-mini", "--mock-response", "from the model")
    assert (summary["stored"], summary["model_calls"]) == (1, 1)
    before = litellm.cache
    with Cache.from_urls([redis_prefix_url], fleet_stats=False) as cache:
        litellm.cache = LiteLLMCache(cache)
        try:
            hit = litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "a?"}],
                metadata={"llmcache_tenant": "acme"},
                mock_response="unused",
            )
        finally:
            litellm.cache = before
    assert hit.choices[0].message.content == "from the model"
    assert hit._hidden_params["cache_hit"] is True


def test_when_every_call_fails_the_exit_code_is_1(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.write_text('{"prompt": "a?"}\n{"prompt": "b?"}\n', encoding="utf-8")
    RECORD.reset()
    RECORD.fail_on = {"a?", "b?"}
    args = ["--url", sqlite_url, "--from-log", str(log), "--top", "2", "--json"]
    result = run(*args, "--model", "warmup_fakes:make_model")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["failed"] == 2
    assert "RuntimeError: the provider refused" in summary["errors"][0]
    assert "sk-secret123" not in result.output
    RECORD.fail_on = {"b?"}
    assert run(*args, "--model", "warmup_fakes:make_model").exit_code == 0  # a's answer stored
    RECORD.reset()


# ---------------------------------------------------------------------------- errors
def test_a_bad_file_exits_2_and_stores_nothing(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(f"question,answer\n{RESET},Open Settings.\nb?,\n", encoding="utf-8")
    result = run("--url", sqlite_url, "--faq", str(path), "--model", FAKE_MODEL)
    assert_one_error_line(result, 2, "faq.csv line 3: empty answer", "--skip-bad")
    assert langchain_answer(sqlite_url, RESET)[1] is False  # the good row was not stored


def test_a_bad_log_exits_2_unless_bad_lines_are_skipped(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    log.write_text('{"prompt": "a?"}\nnot json\n', encoding="utf-8")
    args = ["--url", sqlite_url, "--from-log", str(log), "--top", "1", "--model", FAKE_MODEL]
    assert_one_error_line(run(*args), 2, "calls.jsonl line 2: not valid JSON")
    summary = run_json(*args, "--skip-bad")
    assert (summary["stored"], summary["skipped"]) == (1, 1)
    assert summary["bad_rows"][0]["line"] == 2


def test_an_unreachable_tier_exits_1(faq: Path) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    result = run("--url", url, "--faq", str(faq), "--model", FAKE_MODEL)
    assert_one_error_line(result, 1, "redis", "is the server running")


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("no_colon", "expected module:attribute"),
        ("no_such_module_xyz:llm", "cannot import no_such_module_xyz"),
        ("llmcache.cli.fake_model:Missing", "has no attribute Missing"),
        ("llmcache.cli.fake_model:estimate_tokens", "calling it failed"),
        ("llmcache.cli.fake_model:_SENTENCES", "must be a LangChain chat model"),
    ],
)
def test_a_bad_model_exits_2(sqlite_url: str, faq: Path, model: str, fragment: str) -> None:
    result = run("--url", sqlite_url, "--faq", str(faq), "--model", model)
    assert_one_error_line(result, 2, fragment)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ('raise RuntimeError("no OPENAI_API_KEY set")', "failed (RuntimeError: no OPENAI_API_KEY"),
        ("def chat(:\n", "failed (SyntaxError: "),
        ("import sys\nsys.exit(3)\n", "failed (SystemExit: 3)"),
        ('raise ValueError("api_key=sk-not-shown")', "failed (ValueError: api_key=***)"),
        ("def __getattr__(name):\n    raise KeyError(name)\n", "reading chat failed (KeyError"),
    ],
)
def test_an_app_module_that_fails_as_it_loads_exits_2_in_one_line(
    sqlite_url: str,
    faq: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    fragment: str,
) -> None:
    # Not only ImportError: whatever the module raises as it runs is a bad --model.
    module = f"failing_app_{abs(hash(source))}"
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("--url", sqlite_url, "--faq", str(faq), "--model", f"{module}:chat")
    assert_one_error_line(result, 2, f"--model '{module}:chat': ", fragment)
    assert "Traceback" not in result.output and "sk-not-shown" not in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give one of --faq FILE or --from-log FILE"),
        (["--from-log", "x.jsonl"], "--from-log needs --top N"),
        (["--faq", "x.csv", "--top", "3"], "--top and --log-model go with --from-log"),
        (["--faq", "x.csv", "--mock-response", "m"], "--mock-response is for --adapter litellm"),
        # Was accepted and ignored: the log's calls were warmed without it, as logged.
        (["--from-log", "x.jsonl", "--top", "3", "--system", "Be brief."], "--system goes with"),
    ],
)
def test_usage_errors_exit_2(args: list[str], fragment: str) -> None:
    result = run("--url", "memory://", "--model", FAKE_MODEL, *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
