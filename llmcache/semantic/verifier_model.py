"""The shipped pair model: gradient-boosted trees read from JSON and evaluated in pure Python.

The file is data only (never pickle): feature names, a baseline log-odds, for each tree
parallel lists (feature, threshold, left, right, value, is_leaf). Evaluating ~150 shallow trees
in plain Python costs tens of microseconds, cheaper than converting one row to numpy. The
file is written by ``scripts/train_verifier.py``; it is checked when loaded, and a missing or
malformed file raises ``VerifierModelError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from llmcache.errors import LLMCacheError

FORMAT = "llmcache-pair-verifier"
FORMAT_VERSION = 1
DEFAULT_MODEL_FILE = "verifier_model.json"


class VerifierModelError(LLMCacheError):
    """The verifier's model file is missing or malformed."""


@dataclass(frozen=True)
class Tree:
    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]
    is_leaf: tuple[bool, ...]

    def predict(self, x: Sequence[float]) -> float:
        # Local names: this loop is most of the verifier's cost.
        feature, threshold, left, right, is_leaf = (
            self.feature,
            self.threshold,
            self.left,
            self.right,
            self.is_leaf,
        )
        node = 0
        # NaN never occurs (features are always defined), so "<=" alone routes every row.
        while not is_leaf[node]:
            node = left[node] if x[feature[node]] <= threshold[node] else right[node]
        return self.value[node]


_FlatTree = tuple[
    tuple[int, ...],
    tuple[float, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[float, ...],
    tuple[bool, ...],
]


@dataclass(frozen=True)
class PairModel:
    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]
    threshold: float  # default operating point (probability), chosen on the dev split
    min_similarity: float  # cosine below which the model was never trained (pre-threshold)
    meta: dict[str, Any]
    _flat: tuple[_FlatTree, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The trees as plain tuples, walked in one loop: a method call per tree was a third
        # of the verifier's cost.
        flat = tuple(
            (t.feature, t.threshold, t.left, t.right, t.value, t.is_leaf) for t in self.trees
        )
        object.__setattr__(self, "_flat", flat)

    def probability(self, x: Sequence[float]) -> float:
        """Probability that the pair asks the same question."""
        raw = self.baseline
        for feature, threshold, left, right, value, is_leaf in self._flat:
            node = 0
            while not is_leaf[node]:
                node = left[node] if x[feature[node]] <= threshold[node] else right[node]
            raw += value[node]
        return 1.0 / (1.0 + math.exp(-raw))


def _fail(source: str, problem: str) -> VerifierModelError:
    return VerifierModelError(
        f"verifier model {source}: {problem}; retrain it with scripts/train_verifier.py "
        "or reinstall llmcache"
    )


def _tree(raw: Any, n_features: int, source: str, i: int) -> Tree:
    try:
        tree = Tree(
            feature=tuple(int(v) for v in raw["feature"]),
            threshold=tuple(float(v) for v in raw["threshold"]),
            left=tuple(int(v) for v in raw["left"]),
            right=tuple(int(v) for v in raw["right"]),
            value=tuple(float(v) for v in raw["value"]),
            is_leaf=tuple(bool(v) for v in raw["is_leaf"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(source, f"tree {i} is malformed ({exc!r})") from exc
    n = len(tree.feature)
    lengths = {
        len(tree.threshold),
        len(tree.left),
        len(tree.right),
        len(tree.value),
        len(tree.is_leaf),
    }
    if n == 0 or lengths != {n}:
        raise _fail(source, f"tree {i} has lists of different lengths")
    for node in range(n):
        if tree.is_leaf[node]:
            continue
        # Children come after their parent, so every walk ends at a leaf (no cycles).
        if not (node < tree.left[node] < n and node < tree.right[node] < n):
            raise _fail(source, f"tree {i} node {node} points outside the tree")
        if not 0 <= tree.feature[node] < n_features:
            raise _fail(source, f"tree {i} node {node} uses unknown feature {tree.feature[node]}")
    return tree


def parse_model(doc: Any, source: str, expected_features: Sequence[str]) -> PairModel:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(source, f"not a {FORMAT} file")
    if doc.get("version") != FORMAT_VERSION:
        raise _fail(source, f"version {doc.get('version')!r}, this llmcache reads {FORMAT_VERSION}")
    features = tuple(doc.get("features", ()))
    if features != tuple(expected_features):
        raise _fail(source, "its features differ from this llmcache's (trained by another version)")
    trees = doc.get("trees")
    if not isinstance(trees, list) or not trees:
        raise _fail(source, "no trees")
    try:
        baseline = float(doc["baseline"])
        threshold = float(doc["threshold"])
        min_similarity = float(doc["min_similarity"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(source, f"missing or bad field ({exc!r})") from exc
    return PairModel(
        features=features,
        baseline=baseline,
        trees=tuple(_tree(t, len(features), source, i) for i, t in enumerate(trees)),
        threshold=threshold,
        min_similarity=min_similarity,
        meta=dict(doc.get("meta", {})),
    )


def load_model(expected_features: Sequence[str], path: str | Path | None = None) -> PairModel:
    """Read and check a model file: ``path``, or the one shipped inside the package."""
    if path is None:
        ref = resources.files("llmcache.semantic") / DEFAULT_MODEL_FILE
        source = f"(shipped) {DEFAULT_MODEL_FILE}"
        try:
            text = ref.read_text(encoding="utf-8")
        except (FileNotFoundError, OSError) as exc:
            raise _fail(source, "file not found in the installed package") from exc
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise _fail(source, "file not found") from exc
        except OSError as exc:
            raise _fail(source, f"cannot be read ({exc.strerror})") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(source, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    return parse_model(doc, source, expected_features)
