"""Helpers of the LiteLLM adapter tests (fixtures are at the end of tests/conftest.py)."""

from __future__ import annotations

import os

# Set before litellm is imported: otherwise the import tries to download LiteLLM's price map.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "gpt-4o-mini"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
