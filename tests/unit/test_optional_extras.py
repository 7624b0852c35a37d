"""`import llmcache` works with no extras; a feature whose extra is missing names the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def __init__(self, names):
            self.names = set(names)
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ImportError(f"No module named {name!r} (blocked by test)")
            return None

    sys.meta_path.insert(0, Block(BLOCKED))
    """
)

OPTIONAL = [
    "langchain_core",
    "litellm",
    "redis",
    "pymysql",
    "psycopg",
    "click",
    "rich",
    "faiss",
    "numpy",
    "sentence_transformers",
    "cryptography",
    "prometheus_client",
]


def run(code: str, blocked: list[str]) -> subprocess.CompletedProcess[str]:
    script = f"BLOCKED = {blocked!r}\n" + BLOCKER + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def test_core_imports_and_works_without_any_extra() -> None:
    result = run(
        """
        import llmcache
        cache = llmcache.Cache.from_urls(["memory://"])
        req = llmcache.CacheRequest(model="m", prompt="p")
        cache.set(req, "v")
        assert cache.get(req).entry.value == "v"
        print("ok")
        """,
        OPTIONAL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_missing_sql_driver_names_the_extra() -> None:
    result = run(
        """
        import llmcache
        for url, extra in [("mysql+pymysql://root@127.0.0.1:1/test", "mysql"),
                           ("postgresql+psycopg://u@127.0.0.1:1/test", "postgres")]:
            try:
                llmcache.Cache.from_urls([url])
            except llmcache.MissingExtraError as exc:
                assert f"llmcache[{extra}]" in str(exc), str(exc)
            else:
                raise SystemExit(f"no error for {url}")
        print("ok")
        """,
        OPTIONAL,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "ok"


def test_langchain_adapter_without_langchain_names_the_extra() -> None:
    result = run(
        """
        try:
            import langchain_llmcache
        except ImportError as exc:
            assert "llmcache[langchain]" in str(exc), str(exc)
            print("ok")
        """,
        OPTIONAL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
