"""Render the JSON lines the reliability tests record (tests/figures.py) into markdown.

    python scripts/reliability_table.py REPORT STARTED COMMAND     # the tables, on stdout
    python scripts/reliability_table.py --into RELIABILITY.md TABLES  # put them in the page

Rows recorded under one name (the parametrized cases of one test) are merged: integers
summed, durations the largest. Rows are grouped by area, the prefix of their name ("load:",
"fault:", ...), and the header line gives the totals of entries lost and caller errors.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

AREAS = {"load": "load", "fault": "faults", "fuzzing": "fuzzing", "properties": "properties",
         "security": "security"}  # fmt: skip
HEADING = "## Figures of the last run"
INTRO = (
    "Written here by `scripts/reliability.sh` at the end of each run (and saved as\n"
    "`benchmarks/results/reliability.md`): one row per test, parametrized cases summed.\n"
)


def merged(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per test name, in first-recorded order."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        figures = dict(row)
        name = str(figures.pop("test"))
        if name not in out:
            out[name] = figures
            continue
        into = out[name]
        for key, value in figures.items():
            had = into.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                into.setdefault(key, value)
            elif isinstance(value, int) and isinstance(had, int) and not isinstance(had, bool):
                into[key] = had + value
            elif isinstance(had, int | float):
                into[key] = max(had, value)
            else:
                into[key] = value
    return out


def area_of(name: str) -> str:
    prefix = name.split(":", 1)[0]
    return AREAS.get(prefix, "other")


def total(rows: dict[str, dict[str, Any]], key: str) -> int:
    return sum(int(figures.get(key) or 0) for figures in rows.values())


def shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render(rows: list[dict[str, Any]], started: str, command: str) -> str:
    tests = merged(rows)
    seconds = os.environ.get("LLMCACHE_RELIABILITY_SECONDS", "3")
    examples = os.environ.get("LLMCACHE_FUZZ_EXAMPLES", "150")
    lines = [
        f"Run of {started}: `{command}` ({seconds} s per load run, {examples} fuzz inputs per "
        f"target). Totals over all rows: entries lost: {total(tests, 'entries_lost')}, caller "
        f"errors: {total(tests, 'caller_errors')}.",
    ]
    for area in [*AREAS.values(), "other"]:
        names = [name for name in tests if area_of(name) == area]
        if not names:
            continue
        lines += ["", f"### {area}", "", "| test | figures |", "|---|---|"]
        for name in names:
            figures = ", ".join(
                f"{key.replace('_', ' ')}: {shown(value)}" for key, value in tests[name].items()
            )
            test = name.split(":", 1)[1].strip() if ":" in name else name
            lines.append(f"| {test} | {figures} |")
    return "\n".join(lines) + "\n"


def with_figures(page: str, tables: str) -> str:
    """``page`` with the section under HEADING replaced by ``tables`` (up to the next
    second-level heading, or the end); the same tables give the same page."""
    section = f"{HEADING}\n\n{INTRO}\n{tables.rstrip()}\n"
    match = re.search(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", page, re.MULTILINE | re.DOTALL)
    if match is None:
        return page.rstrip("\n") + "\n\n" + section
    rest = page[match.end() :]
    return page[: match.start()] + section + ("\n" + rest if rest else "")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--into"]:
        page_path, tables_path = Path(argv[1]), Path(argv[2])
        page = page_path.read_text(encoding="utf-8")
        page_path.write_text(with_figures(page, tables_path.read_text(encoding="utf-8")))
        return
    report, started, command = argv
    with open(report, encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    sys.stdout.write(render(rows, started, command))


if __name__ == "__main__":
    main(sys.argv[1:])
