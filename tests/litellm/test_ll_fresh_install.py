"""A fresh virtual environment with ``llmcache[litellm]`` serves a LiteLLM cache hit.

A plain ``pip install litellm`` crashes on the first cache hit (LiteLLM's hit path imports
fastapi, orjson and soundfile, which it does not require); the ``litellm`` extra must install
them. Slow (installs from PyPI into an empty venv), so it runs only when asked:
``LLMCACHE_FRESH_VENV=1`` or under CI (``CI=true``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900  # seconds; litellm and its dependencies are large
RUN_TIMEOUT = 120

pytestmark = pytest.mark.skipif(
    os.environ.get("LLMCACHE_FRESH_VENV") != "1" and os.environ.get("CI") != "true",
    reason="slow: set LLMCACHE_FRESH_VENV=1 (always runs under CI=true)",
)

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm_llmcache import LiteLLMCache
    from llmcache import Cache

    cache = Cache.from_urls(["memory://"])
    litellm.cache = LiteLLMCache(cache)
    ask = [{"role": "user", "content": "hi"}]
    litellm.completion(model="gpt-4o-mini", messages=ask, mock_response="first")
    hit = litellm.completion(model="gpt-4o-mini", messages=ask, mock_response="second")
    assert hit.choices[0].message.content == "first", hit
    assert hit._hidden_params["cache_hit"] is True
    print("HIT", cache.stats()["hits"])
    """
)


def test_fresh_venv_with_the_litellm_extra_serves_a_hit(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    python = env_dir / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[litellm]"],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env=clean_env,
        cwd=tmp_path,
    )
    run = subprocess.run(
        [str(python), "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=clean_env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "HIT 1" in run.stdout
