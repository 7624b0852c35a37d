"""What a word-piece embedder reads of a text, and what it does not.

An embedding stands for its text only where the model read the text: MiniLM drops what is
past its window, reads other scripts letter by letter or as [UNK], and makes nothing of
punctuation alone. Two different questions are then one vector, and a semantic cache would
serve one the other's answer. An embedder says so with two optional methods, read by the
semantic tier through ``cannot_read_of`` and ``unread_parts_of``:

* ``cannot_read(text) -> reason | None``: its vector would not stand for the text at all (the
  tier neither searches nor indexes it: matched exactly only);
* ``unread_parts(text) -> tuple of str``: the parts it does not read (a candidate is served
  only when its parts are the question's).

``WordPieceReader`` answers both for a BERT word-piece model (MiniLM); ``WindowReader``
answers ``cannot_read`` (``too_long``) for any sentence-transformers model, such as the one
inside a LangChain ``HuggingFaceEmbeddings``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from typing import Any, NamedTuple

from llmcache._optional import require
from llmcache.fork_safety import renew_after_fork

#: BERT's tokenizer makes at most 3 word pieces of one character (a Hangul syllable splits
#: into its 3 jamo; accents are dropped), so a text of at most a third of a window's word
#: pieces, in characters, fits it without being counted.
PIECES_PER_CHAR = 3
#: ...and BERT's tokenizer reads a longer word (a hash, a base64 blob) as one [UNK].
LONGEST_WORD = 100
#: Texts whose reading (``cannot_read``, ``unread_parts``) is remembered: only texts that
#: take work to read (long or not ASCII); hot candidates come back.
READ_MEMO_SIZE = 4096
#: Longest text remembered: a pasted document is rarely asked twice, and 4096 of them would
#: hold gigabytes.
READ_MEMO_CHARS = 16 * 1024
#: Why an embedder cannot stand for a text (``cannot_read``), as counted in stats.
TOO_LONG = "too_long"
UNKNOWN_WORDS = "unknown_words"
NO_WORDS = "no_words"
#: A text that is not valid Unicode (a lone surrogate): no embedder can take it, and
#: sending it would fail the semantic tier for every caller until its breaker closes.
INVALID_UNICODE = "invalid_unicode"
#: A letter or digit (of any script): a text without one says nothing an embedder can compare.
_WORD_CHAR = re.compile(r"[^\W_]")


def invalid_unicode(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (which UTF-8 cannot encode)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def cannot_read_of(embedder: object) -> Callable[[str], str | None] | None:
    """The embedder's ``cannot_read(text) -> reason | None``, if it has one: why its vector
    of a text would not stand for the text (``too_long``: it drops what is past its window;
    ``unknown_words``: most of it is in words it never learned; ``no_words``), None when it
    would. The semantic tier neither searches nor indexes a text its embedder cannot read,
    since two such texts may be one vector whatever they say. An embedder without it is
    trusted with any text."""
    cannot_read = getattr(embedder, "cannot_read", None)
    return cannot_read if callable(cannot_read) else None


def unread_parts_of(embedder: object) -> Callable[[str], tuple[str, ...]] | None:
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


class _Reading(NamedTuple):
    """What the model makes of a text: why it cannot read it ("" = it can) and what it does
    not read (``WordPieceReader.cannot_read``, ``unread_parts``)."""

    problem: str
    unread: tuple[str, ...]


class WordPieceReader:
    """``cannot_read`` and ``unread_parts`` for a sentence-transformers BERT model (MiniLM),
    from a copy of its tokenizer; ``load_model`` returns the model (loaded on first use)."""

    def __init__(self, load_model: Callable[[], Any]) -> None:
        self._load_model = load_model
        self._counter: Any = None  # a tokenizer of our own: _word_pieces
        self._window_size: int | None = None  # the model's, read once it is loaded
        self._read_memo: dict[str, _Reading] = {}

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
        """The model's window in word pieces (read once: loading takes a lock each time)."""
        if self._window_size is None:
            self._window_size = int(self._load_model().max_seq_length)
        return self._window_size

    def _reading(self, text: str) -> _Reading:
        if len(text) > READ_MEMO_CHARS:
            return self._read(text)
        reading = self._read_memo.get(text)
        if reading is None:
            reading = self._read(text)
            if len(self._read_memo) >= READ_MEMO_SIZE:
                self._read_memo.clear()  # a bound, not an LRU: hot texts come back at once
            self._read_memo[text] = reading
        return reading

    def _read(self, text: str) -> _Reading:
        window = self._window()
        if len(text) > window * LONGEST_WORD or len(text.split(None, window)) > window:
            # More words than the window has word pieces (each word is at least one), or
            # more text than it holds but as words too long to read: known without reading
            # a pasted document through (five megabytes took 3 s).
            return _Reading(TOO_LONG, ())
        letters = _word_chars(text)
        if not letters:
            return _Reading(NO_WORDS, ())
        counter = self._word_pieces()
        pieces = counter.encode(text, add_special_tokens=True)
        if len(pieces.ids) > window:
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
        """A copy of the model's tokenizer that never truncates (``untruncated_copy``)."""
        if self._counter is None:
            self._counter = untruncated_copy(self._load_model().tokenizer.backend_tokenizer)
        return self._counter


def untruncated_copy(backend_tokenizer: Any) -> Any:
    """A copy of a Rust ``tokenizers.Tokenizer`` that never truncates nor pads. A copy:
    sentence-transformers sets truncation on the model's own before each batch, and the Rust
    tokenizer refuses ("Already borrowed") a call made from another thread meanwhile."""
    tokenizers = require("tokenizers", extra="local-embeddings", feature="reading checks")
    counter = tokenizers.Tokenizer.from_str(backend_tokenizer.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter


class WindowReader:
    """``cannot_read`` for a sentence-transformers model of any tokenizer: ``too_long`` when
    the text has more tokens than the model's window (``max_seq_length``), whose tail the
    model drops without a word. Two RAG prompts that paste the same long document and then
    ask different questions are one vector to it, at cosine 1.0.

    Only the window: which words a model knows depends on its training (a multilingual model
    reads Chinese), so the other readings are ``WordPieceReader``'s, for MiniLM alone.
    """

    def __init__(self, model: Any) -> None:
        self._model = model  # its window is read on each check: an app may widen it later
        tokenizer = model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)  # a "fast" (Rust) tokenizer
        self._counter = untruncated_copy(backend) if backend is not None else None
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # a Python tokenizer is not known to be thread-safe
        renew_after_fork(self, "_lock")

    def cannot_read(self, text: str) -> str | None:
        """``too_long`` when the model would drop part of ``text``, else None."""
        # Any tokenizer makes at most two tokens of an ASCII character (SentencePiece: a
        # one-letter word may become "▁" and the letter), plus its two special tokens.
        window = int(self._model.max_seq_length)
        if text.isascii() and 2 * len(text) + 2 <= window:
            return None
        return TOO_LONG if self._tokens(text) > window else None

    def _tokens(self, text: str) -> int:
        if self._counter is not None:
            return len(self._counter.encode(text, add_special_tokens=True).ids)
        with self._lock:
            ids = self._tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
        return len(ids)


def window_reader_of(embeddings: object) -> WindowReader | None:
    """A ``WindowReader`` for the sentence-transformers model inside a LangChain embeddings
    object (``HuggingFaceEmbeddings``: ``_client`` in langchain-huggingface, ``client`` in
    langchain-community), or None when it holds no such model."""
    for attribute in ("_client", "client"):
        model = getattr(embeddings, attribute, None)
        window = getattr(model, "max_seq_length", None)
        if isinstance(window, int) and window > 0 and getattr(model, "tokenizer", None):
            return WindowReader(model)
    return None
