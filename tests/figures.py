"""Figures of the reliability campaign: each test records what it measured.

With ``LLMCACHE_RELIABILITY_REPORT=path`` set (``scripts/reliability.sh`` sets it), every
``record`` call appends one JSON line there; ``scripts/reliability_table.py`` turns them into
the table in RELIABILITY.md. Without it, figures are only printed (visible with ``pytest -s``).
Durations scale with ``LLMCACHE_RELIABILITY_SECONDS`` (the short CI run uses the default).

This module sits in tests/ (on sys.path through tests/conftest.py), so every test directory
imports it the same way: ``from figures import record``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SECONDS = float(os.environ.get("LLMCACHE_RELIABILITY_SECONDS", "3"))


def record(test: str, **figures: Any) -> None:
    """Record one row of figures. Rows recorded under the same ``test`` name (one per
    parametrized case) are merged by the table: their integer figures summed."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(line)
    path = os.environ.get("LLMCACHE_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(line + "\n")


@contextmanager
def counting_inputs(test_function: Any, row: str) -> Iterator[None]:
    """Count the inputs a test tries while it runs, and record them (with the failures) after.

    A hypothesis test runs ``test.hypothesis.inner_test`` once per example (the documented
    hook for wrapping it), so the wrapper counts what really ran, shrinking included. Any other
    test (a parametrized case) tries one input.
    """
    given = getattr(test_function, "hypothesis", None)
    tried = [0 if given is not None else 1]
    if given is not None:
        inner: Callable[..., Any] = given.inner_test

        def counted(*args: Any, **kwargs: Any) -> Any:
            tried[0] += 1
            return inner(*args, **kwargs)

        given.inner_test = counted
    failures = 0
    try:
        yield
    except Exception:  # the test failed
        failures = 1
        raise
    except BaseException:  # skipped or interrupted (pytest's outcomes): nothing to record
        tried[0] = 0
        raise
    finally:
        if given is not None:
            given.inner_test = inner
        if tried[0]:
            record(row, inputs_tried=tried[0], failures=failures)
