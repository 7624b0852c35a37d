"""Render the JSON lines the reliability tests record into a markdown table."""

from __future__ import annotations

import json
import os
import sys


def main(path: str, started: str) -> None:
    with open(path, encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    seconds = os.environ.get("LLMCACHE_RELIABILITY_SECONDS", "3")
    examples = os.environ.get("LLMCACHE_FUZZ_EXAMPLES", "150")
    print(f"Run of {started}: `bash scripts/reliability.sh` ({seconds} s per load run, "
          f"{examples} fuzz inputs per target).\n")  # fmt: skip
    print("| test | figures |")
    print("|---|---|")
    for row in rows:
        test = row.pop("test")
        figures = ", ".join(f"{k.replace('_', ' ')}: {v:,}" if isinstance(v, int) else
                            f"{k.replace('_', ' ')}: {v}" for k, v in row.items())  # fmt: skip
        print(f"| {test} | {figures} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
