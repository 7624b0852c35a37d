"""Semantic tier fixes found by probing it as a fleet's user: URL options, re-embedding an
encrypted cache's index."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from conftest import assert_one_error_line

from llmcache import Cache
from llmcache.cli.app import cli
from llmcache.crypto import Sealer
from llmcache.errors import ConfigError
from llmcache.request import CacheRequest
from llmcache.semantic.url import semantic_from_url
from llmcache.semantic.verifier import AcceptAll

ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
KEY = base64.b64encode(b"\x07" * 32).decode()


class FourDims:
    """An embedder of no consequence: these URLs fail before anything is embedded."""

    dim = 4
    name = "four"

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return np.full((len(texts), 4), 0.5, np.float32)

    async def aembed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return self.embed(texts)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("k", "inf"),
        ("k", "nan"),
        ("k", "1e400"),
        ("hnsw_above", "inf"),
        ("hnsw_above", "nan"),
        ("hnsw_above", "2.7"),
        ("max_partitions", "nan"),
        ("max_partitions", "0.9"),
    ],
)
def test_semantic_url_counts_must_be_whole_numbers(tmp_path: Path, option: str, value: str) -> None:
    url = f"faiss://{tmp_path}/vectors.faiss?{option}={value}"
    wanted = f"option {option} must be a positive integer, got '{value}'"
    with pytest.raises(ConfigError, match=wanted):
        semantic_from_url(url, embedder=FourDims())


def test_semantic_redisvl_url_with_a_port_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Port out of range"):
        semantic_from_url("redisvl://127.0.0.1:99999", embedder=FourDims())


def req(text: str) -> CacheRequest:
    return CacheRequest(model="gpt-x", prompt=[None, text], semantic_text=text)


def sealed_cache(tmp_path: Path, minilm: Any, url: str) -> Cache:
    return Cache.from_urls(
        [f"sqlite:///{tmp_path}/entries.db"],
        semantic=url,
        embedder=minilm,
        verifier=AcceptAll(),
        encryption=Sealer({"k1": base64.b64decode(KEY)}),
    )


def test_semantic_reindex_of_an_encrypted_cache_embeds_the_opened_texts(
    tmp_path: Path, minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"faiss://{tmp_path}/vectors.faiss?threshold=0.8&refresh=0"
    cache = sealed_cache(tmp_path, minilm, url)
    cache.set(req(ASKED), "use the reset link")
    cache.close()
    # Without the keys it stops with the reason (embedding sealed bytes would ruin them).
    monkeypatch.delenv("LLMCACHE_ENCRYPTION_KEYS", raising=False)
    result = CliRunner().invoke(cli, ["reindex", "--semantic", url])
    assert_one_error_line(result, 2, "LLMCACHE_ENCRYPTION_KEYS")
    # With the apps' keys, the opened question is embedded, not its sealed bytes.
    monkeypatch.setenv("LLMCACHE_ENCRYPTION_KEYS", f"k1:{KEY}")
    result = CliRunner().invoke(cli, ["reindex", "--semantic", url, "--json"])
    assert result.exit_code == 0, result.output
    assert '"reembedded": 1' in result.stdout
    cache = sealed_cache(tmp_path, minilm, url)
    hit = cache.get(req(PARAPHRASE))
    assert hit is not None and (hit.match, hit.entry.value) == ("semantic", "use the reset link")
    cache.close()


def test_semantic_faiss_path_of_a_file_that_is_not_ours_is_a_config_error(tmp_path: Path) -> None:
    """``faiss://./index.faiss`` naming a FAISS index written by another tool (the extension
    invites it): a clear error, not sqlite3's traceback, from an app and from the CLI."""
    import faiss

    path = tmp_path / "index.faiss"
    faiss.write_index(faiss.IndexFlatIP(4), str(path))
    with pytest.raises(ConfigError, match="cannot be used as llmcache's vector file"):
        semantic_from_url(f"faiss://{path}", embedder=FourDims())
    result = CliRunner().invoke(cli, ["reindex", "--semantic", f"faiss://{path}"])
    assert_one_error_line(result, 2, "cannot be used as llmcache's vector file")
    with pytest.raises(ConfigError, match="cannot be used as llmcache's vector file"):
        semantic_from_url(f"faiss://{tmp_path}", embedder=FourDims())  # a folder
