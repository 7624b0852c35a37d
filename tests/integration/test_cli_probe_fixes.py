"""CLI behaviour a newcomer met following the README: a failed export that destroyed the
previous backup, warm-up output that read file names as rich markup or showed a model
error's API key, and an ``inspect`` table that cut the expiry when piped."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import closed_port

from llmcache import Cache, CacheRequest
from llmcache.cli.app import cli

BACKUP = b'{"format":"llmcache-export","version":1}\n{"an": "earlier backup"}\n'


def test_a_failed_export_leaves_the_earlier_file_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "backup.jsonl"
    out.write_bytes(BACKUP)
    down = f"redis://127.0.0.1:{closed_port()}/0"
    result = CliRunner().invoke(cli, ["export", "--url", down, "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "is the server running" in result.stderr
    assert out.read_bytes() == BACKUP  # not a header-only file an import takes for empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.jsonl"]  # nothing left over


def test_an_export_replaces_the_file_once_it_is_complete(sqlite_url: str, tmp_path: Path) -> None:
    with Cache.from_urls([sqlite_url], fleet_stats=False) as cache:
        cache.set(CacheRequest(model="m", prompt="q"), {"content": "a"}, ttl=None)
    out = tmp_path / "backup.jsonl"
    out.write_bytes(BACKUP)
    result = CliRunner().invoke(cli, ["export", "--url", sqlite_url, "-o", str(out)])
    assert result.exit_code == 0, result.output
    header, *rows = out.read_bytes().splitlines()
    assert json.loads(header)["format"] == "llmcache-export" and len(rows) == 1
    result = CliRunner().invoke(cli, ["import", "--url", "memory://", str(out)])
    assert result.stdout == "imported 1 entries; skipped 0 expired and 0 invalid lines\n"


@pytest.mark.parametrize("folder", ["d[/b]", "faq[v2]"])
def test_warmup_shows_the_file_as_named_never_as_markup(
    sqlite_url: str, tmp_path: Path, folder: str
) -> None:
    path = tmp_path / folder / "faq.csv"
    path.parent.mkdir(parents=True)  # d[/b] is d[ then b]
    path.write_text("question,answer\nRefunds?,30 days.\n", encoding="utf-8")
    model = "llmcache.cli.fake_model:DemoChatModel"
    result = CliRunner().invoke(
        cli, ["warmup", "--url", sqlite_url, "--faq", str(path), "--model", model]
    )
    assert result.exit_code == 0, result.output  # a [/b] raised rich's MarkupError here
    assert f"FAQ {path} through langchain" in result.stdout  # [v2] was dropped from the name


def test_warmup_hides_an_api_key_quoted_by_a_model_error(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-" + uuid.uuid4().hex
    module = f"failing_chat_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from langchain_core.language_models import BaseChatModel\n"
        "class Failing(BaseChatModel):\n"
        "    @property\n"
        "    def _llm_type(self):\n"
        "        return 'failing'\n"
        "    def _generate(self, messages, stop=None, run_manager=None, **kwargs):\n"
        f"        raise RuntimeError('Incorrect API key provided: {key}')\n",
        encoding="utf-8",
    )
    (tmp_path / "calls.jsonl").write_text('{"prompt": "a?"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the app's module, as `llmcache warmup` imports it
    args = ["warmup", "--url", sqlite_url, "--from-log", "calls.jsonl", "--top", "1"]
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(cli, [*args, "--model", f"{module}:Failing", *extra])
        assert result.exit_code == 1, result.output
        assert "Incorrect API key provided" in result.output
        assert key not in result.output and key[:12] not in result.output


def test_inspect_piped_shows_whole_keys_and_expiry_times(sqlite_url: str) -> None:
    with Cache.from_urls([sqlite_url], fleet_stats=False) as cache:
        cache.set(CacheRequest(model="m", prompt="q", tags=("faq", "billing")), "a", ttl=3600)
        (stored,) = cache.entries()
    assert stored.expires_at is not None
    result = CliRunner().invoke(cli, ["inspect", "--url", sqlite_url])  # stdout: not a tty
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if stored.key.hex[:12] in line]
    expiry = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d", row)
    assert len(expiry) == 2 and "…" not in row  # created and expires, whole, on one line
    shown = json.loads(CliRunner().invoke(cli, ["inspect", "--url", sqlite_url, "--json"]).stdout)
    assert shown["entries"][0]["expires"][:16].replace("T", " ") == expiry[1]


class _UnloadableEmbedder:
    """An embedder whose model is loaded on first use (as MiniLM is) and cannot be: offline,
    its weights missing."""

    name = "unloadable"
    dim = 16

    def embed(self, texts: list[str]) -> Any:
        raise OSError("cannot load the model's weights (offline)")

    async def aembed(self, texts: list[str]) -> Any:
        return self.embed(texts)


def test_demo_with_a_semantic_tier_that_cannot_embed_stops_before_the_runs() -> None:
    from llmcache.cli.demo import DemoConfig, run_demo
    from llmcache.errors import TierError
    from llmcache.semantic.url import semantic_from_url

    semantic = semantic_from_url("faiss://:memory:", embedder=_UnloadableEmbedder())
    config = DemoConfig(calls=3, latency=0.0, semantic=semantic)  # type: ignore[arg-type]
    # It was found during the timed run (failing open), where loading MiniLM also took place:
    # the cached run then read as many times slower than the model.
    with pytest.raises(TierError, match="semantic tier: OSError: cannot load the model"):
        run_demo(config)


def test_demo_shows_its_database_path_as_given_never_as_markup(tmp_path: Path) -> None:
    folder = tmp_path / "d[/b]"  # d[ then b]: a [/b] raised rich's MarkupError
    folder.mkdir(parents=True)
    db = folder / "demo.db"
    result = CliRunner().invoke(
        cli, ["demo", "--calls", "30", "--latency", "0.001", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert f"sqlite:///{db}" in result.stdout
