"""Executing the notebooks as tests: ``python -m pytest --nbmake notebooks``.

nbmake runs each notebook in a fresh Jupyter kernel, a separate process that imports whatever
llmcache its ``sys.path`` finds first. The kernel gets this checkout prepended to PYTHONPATH,
so the notebooks exercise the code under test even when the editable install points at another
checkout (a git worktree). Each notebook also gets a time limit of its own (pytest-timeout),
well above what it takes on a 2-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
#: Seconds one notebook may take, kernel start included (the slowest takes about 50 s).
NOTEBOOK_TIMEOUT = 180


def _is_notebook(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb" and item.path.parent == HERE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_notebook(item):
            item.add_marker(pytest.mark.timeout(NOTEBOOK_TIMEOUT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    if not _is_notebook(item):
        return (yield)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), before]))
    try:
        return (yield)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
