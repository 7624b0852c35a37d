"""Nothing in the package can execute or unpickle stored data: a scan of its source.

Stored values are untrusted (another process, another tenant, a tampered file): the package must
never hand them to pickle, marshal, eval/exec or LangChain's ``loads`` (which instantiates
classes named in the data). ``client.eval(...)`` on Redis runs our own Lua script on the server
and is allowed: only the Python builtins count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("llmcache", "langchain_llmcache", "litellm_llmcache")
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
# (module, name) pairs whose call would revive objects described by stored data.
FORBIDDEN_FROM = {("langchain_core.load", "loads"), ("langchain_core.load", "load")}


def _sources() -> list[Path]:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 20, "the scan found too few files: is ROOT right?"
    return files


def _violations(source: str, label: str) -> list[str]:
    tree = ast.parse(source, filename=label)
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{label}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if _forbidden(node.module):
                found.append(f"{where} imports from {node.module}")
            found += [
                f"{where} imports {node.module}.{a.name}"
                for a in node.names
                if (node.module, a.name) in FORBIDDEN_FROM
            ]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                found.append(f"{where} calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr == "load":
                base = func.value
                if isinstance(base, ast.Name) and base.id == "yaml":
                    found.append(f"{where} calls yaml.load()")
    return found


def _forbidden(module: str) -> bool:
    return module.split(".")[0] in FORBIDDEN_MODULES


def test_package_never_unpickles_or_evaluates() -> None:
    violations = [
        v
        for path in _sources()
        for v in _violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert violations == []


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "from pickle import loads",
        "import marshal as m",
        "x = eval('1')",
        "exec('x = 1')",
        "from langchain_core.load import loads",
        "import yaml\nyaml.load(s)",
    ],
)
def test_the_scan_catches_what_it_forbids(source: str) -> None:
    assert _violations(source, "probe.py"), f"not caught: {source!r}"


def test_redis_lua_eval_is_not_flagged() -> None:
    # client.eval runs our own Lua script on the Redis server, not Python code.
    assert _violations("client.eval(SCRIPT, 1, key)", "probe.py") == []
