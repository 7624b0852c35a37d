"""Figures of the reliability campaign: each test records what it measured.

With ``LLMCACHE_RELIABILITY_REPORT=path`` set (``scripts/reliability.sh`` sets it), every
``record`` call appends one JSON line there; the script turns them into the table in
RELIABILITY.md. Without it, figures are only printed (visible with ``pytest -s``).
Durations scale with ``LLMCACHE_RELIABILITY_SECONDS`` (the short CI run uses the default).
"""

from __future__ import annotations

import json
import os
from typing import Any

SECONDS = float(os.environ.get("LLMCACHE_RELIABILITY_SECONDS", "3"))


def record(test: str, **figures: Any) -> None:
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(line)
    path = os.environ.get("LLMCACHE_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(line + "\n")
