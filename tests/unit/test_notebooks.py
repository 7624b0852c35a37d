"""The notebooks as stored: without outputs, on the kernel nbmake starts, listed in the README.

Executing them is CI's job (``--nbmake``, scripts/test.sh); these checks are about the files.
Outputs are left out of the repository: they would go stale with every change, bloat diffs with
images, and could hold whatever a user's run printed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load(path: Path) -> dict[str, Any]:
    notebook: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return notebook


def test_the_walkthroughs_are_there() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {
        "01_quickstart_langchain.ipynb",
        "02_quickstart_litellm.ipynb",
        "03_scopes_and_acls.ipynb",
        "04_semantic_tuning.ipynb",
        "05_savings_report.ipynb",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_a_notebook_is_stored_without_outputs(path: Path) -> None:
    cells = _load(path)["cells"]
    code = [(i, cell) for i, cell in enumerate(cells) if cell["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    with_outputs = [i for i, cell in code if cell["outputs"] or cell["execution_count"]]
    assert not with_outputs, (
        f"{path.name}: cells {with_outputs} were saved with outputs; in Jupyter, "
        "'Clear All Outputs', then save"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_a_notebook_runs_on_the_python3_kernel(path: Path) -> None:
    notebook = _load(path)
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"  # the one ipykernel installs


def test_every_notebook_the_readme_links_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\(notebooks/([\w.-]+\.ipynb)\)", readme))
    assert linked, "the README links no notebook"
    assert linked <= {path.name for path in NOTEBOOKS}
