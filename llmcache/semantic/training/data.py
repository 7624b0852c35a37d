"""The shared semantic datasets, loaded by path, and their MiniLM embeddings cached under /tmp.

``embed`` takes the embedder by its spec: ``minilm`` (the default: MiniLM with the shipped
question adapter), ``minilm-base`` (MiniLM as published) or a path to another adapter file.

Only ``qqp_dev`` and ``gptcache`` may be used to pick features, thresholds or hyperparameters;
``qqp_test`` and ``sts2016`` are held out (evaluated and reported only).
"""

from __future__ import annotations

import csv
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcache.semantic.adapter import adapter_digest

# The datasets live beside the repository (../shared/data/semantic), never inside it.
_BESIDE_REPO = Path(__file__).resolve().parents[4] / "shared" / "data" / "semantic"
DATA_DIR = Path(os.environ.get("LLMCACHE_SEMANTIC_DATA", str(_BESIDE_REPO)))
# Vectors of the datasets, kept between runs (never inside the repository).
EMBED_CACHE = Path(os.environ.get("LLMCACHE_EMBED_CACHE", "/tmp/llmcache_embed_cache"))  # noqa: S108
TUNING_SETS = ("qqp_dev", "gptcache")
HELD_OUT_SETS = ("qqp_test", "sts2016")
# STS2016 scores pairs 0-5; 4 ("mostly equivalent") and 5 count as the same question, anything
# lower differs in something that matters to the answer.
STS_DUPLICATE_MIN = 4


@dataclass(frozen=True)
class PairSet:
    """Pairs (cached question, asked question, is the same question)."""

    name: str
    cached: list[str]
    asked: list[str]
    duplicate: list[bool]


def _read_qqp(path: Path, name: str) -> PairSet:
    cached: list[str] = []
    asked: list[str] = []
    dup: list[bool] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cached.append(row["question1"])
            asked.append(row["question2"])
            dup.append(row["is_duplicate"].strip() == "1")
    return PairSet(name, cached, asked, dup)


def _read_gptcache(path: Path) -> PairSet:
    items = json.loads(path.read_text(encoding="utf-8"))
    return PairSet(
        "gptcache",
        [str(x["origin"]) for x in items],
        [str(x["similar"]) for x in items],
        [True] * len(items),
    )


def _read_sts(path: Path) -> PairSet:
    cached: list[str] = []
    asked: list[str] = []
    dup: list[bool] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            dup.append(float(parts[0]) >= STS_DUPLICATE_MIN)
            cached.append(parts[1])
            asked.append(parts[2])
    return PairSet("sts2016", cached, asked, dup)


def select(pairs: PairSet, keep: Any, name: str | None = None) -> PairSet:
    """The pairs where ``keep`` (a boolean mask) is true."""
    import numpy as np

    idx = np.flatnonzero(keep)
    return PairSet(
        pairs.name if name is None else name,
        [pairs.cached[i] for i in idx],
        [pairs.asked[i] for i in idx],
        [pairs.duplicate[i] for i in idx],
    )


def load(name: str) -> PairSet:
    """One dataset by name: qqp_dev, qqp_test, gptcache or sts2016."""
    if name == "qqp_dev":
        return _read_qqp(DATA_DIR / "qqp_dev_pairs.csv", name)
    if name == "qqp_test":
        return _read_qqp(DATA_DIR / "qqp_test_pairs.csv", name)
    if name == "gptcache":
        return _read_gptcache(DATA_DIR / "gptcache_mock_pairs.json")
    if name == "sts2016":
        return _read_sts(DATA_DIR / "sts2016_question_question.tsv")
    raise ValueError(f"unknown dataset {name!r}; expected one of {TUNING_SETS + HELD_OUT_SETS}")


DEFAULT_EMBEDDER = "minilm"


@functools.cache
def _embedder(spec: str) -> Any:
    """The runtime embedder behind ``spec`` (a MiniLMEmbedder), one per spec and process."""
    from llmcache.semantic.embedders import MiniLMEmbedder, as_embedder

    if spec in ("minilm", "minilm-base"):
        return as_embedder(spec)
    return MiniLMEmbedder(adapter=Path(spec))


def _model(spec: str = DEFAULT_EMBEDDER) -> Any:
    """The SentenceTransformer behind ``spec``, loaded as the semantic tier loads it."""
    return _embedder(spec).model


@functools.cache
def _store_dir(spec: str) -> Path:
    """One vector store per embedder; an adapter's is named by its file's digest, so vectors
    of a retrained adapter are never mixed with the old one's."""
    adapter = _embedder(spec).adapter_path
    if adapter is None:
        return EMBED_CACHE
    return EMBED_CACHE / f"adapter-{adapter_digest(adapter)}"


def _store_paths(store: Path) -> tuple[Path, Path]:
    return store / "vectors.npy", store / "texts.json"


def _load_store(store: Path) -> tuple[list[str], Any]:
    import numpy as np

    vec_path, text_path = _store_paths(store)
    if not vec_path.exists() or not text_path.exists():
        return [], np.zeros((0, 384), dtype=np.float32)
    texts = list(json.loads(text_path.read_text(encoding="utf-8")))
    # Append-only store, vectors replaced before texts: extra rows belong to a newer write.
    return texts, np.load(vec_path)[: len(texts)]


def embed(texts: list[str], embedder: str = DEFAULT_EMBEDDER) -> Any:
    """Normalized vectors of ``embedder`` (float32, one row per text). Every text is embedded
    once across runs: vectors are kept in a store under ``EMBED_CACHE`` (JSON texts + .npy),
    merged under a file lock so concurrent runs add to it instead of overwriting it."""
    import fcntl

    import numpy as np

    store = _store_dir(embedder)
    known, vecs = _load_store(store)
    index = {t: i for i, t in enumerate(known)}
    missing = sorted({t for t in texts if t not in index})
    if missing:
        new = (
            _model(embedder)
            .encode(missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            .astype(np.float32)
        )
        store.mkdir(parents=True, exist_ok=True)
        with (store / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known, vecs = _load_store(store)
            have = set(known)
            add = [i for i, t in enumerate(missing) if t not in have]
            known = known + [missing[i] for i in add]
            vecs = np.vstack([vecs, new[add]])
            vec_path, text_path = _store_paths(store)
            # Atomic replaces (vectors first) so a reader never sees a torn file.
            np.save(store / "vectors.tmp.npy", vecs)
            os.replace(store / "vectors.tmp.npy", vec_path)
            (store / "texts.tmp").write_text(json.dumps(known), encoding="utf-8")
            os.replace(store / "texts.tmp", text_path)
        index = {t: i for i, t in enumerate(known)}
    return vecs[[index[t] for t in texts]]
