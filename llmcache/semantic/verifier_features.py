"""Features of a (query, candidate) pair for the pair verifier: pure string work, no model.

Each feature measures one way two close questions can differ while their embeddings stay
close: overlap of words and characters, numbers and capitalised names that appear on one side
only, negation, the question word, length, the order of shared words and single-word
substitutions. The trained model (``verifier_model``) weighs them together with the cosine
similarity and the margin to the runner-up. ``FEATURE_NAMES`` is the order the shipped model
was trained on; changing it means retraining (``scripts/train_verifier.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from math import log

FEATURE_NAMES: tuple[str, ...] = (
    "cosine",
    "margin",
    "word_jaccard",
    "content_jaccard",
    "char3_jaccard",
    "word_sequence_ratio",
    "log_length_ratio",
    "min_words",
    "numbers_only_query",
    "numbers_only_candidate",
    "entities_only_query",
    "entities_only_candidate",
    "negation_differs",
    "question_word_differs",
    "order_agreement",
    "content_only_query",
    "content_only_candidate",
    "single_substitutions",
    "same_words_reordered",
    "prefix_antonym",
    "symmetric_marker",
)

# No runner-up (a partition with one entry): treat as a clear winner. Margins are clipped to
# this value in training too, so "no competitor" and "far ahead" look the same to the model.
MARGIN_CAP = 0.3

#: Words of any script's letters: "désactiver" is one word, not "d" and "sactiver" (which hid
#: its antonym, "activer", from the prefix rule).
_WORD = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|[^\W_]+(?:[.'][^\W_]+)*")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words: general English, not tuned to any dataset. Used to tell content words
# (whose change alters the question) from wording (whose change usually does not).
STOPWORDS = _words(
    "a an the is are was were be been being am do does did doing have has had having i me my "
    "we our you your he she it its they them their this that these those of in on at by for "
    "with about as into to from up down out over under again then once here there all any "
    "both each few more most other some such only own same so too very can could will would "
    "shall should may might must just what which who whom whose when where why how if or and "
    "but because until while than also get got s t i'm it's what's how's there's don't "
    "doesn't can't"
)
NEGATIONS = _words(
    "not no never none nobody nothing neither nor cannot without n't isn't aren't wasn't "
    "weren't don't doesn't didn't can't couldn't won't wouldn't shouldn't hasn't haven't "
    "hadn't mustn't"
)
QUESTION_WORDS = _words("what which who whom whose when where why how")
# Constructions whose two sides may be swapped without changing the question ("A vs B",
# "difference between A and B"): QQP labels such swaps as duplicates.
SYMMETRIC_MARKERS = _words("vs versus between and or compare compared difference")
#: Negating prefixes: English's, then those of other Latin-script languages MiniLM reads,
#: whose opposite verbs it puts as close ("désactiver"/"activer" at 0.985, Spanish
#: "desactivo"/"activo", Swedish "avbokar"/"bokar", German "entsperren"/"sperren"). On QQP's
#: dev and test pairs the later ones change no pair.
_ANTONYM_PREFIXES = (
    *("un", "in", "im", "il", "ir", "dis", "non", "anti", "de"),
    *("des", "dés", "av", "ent"),
)


@dataclass(frozen=True)
class Parsed:
    """One text, tokenised once (cached: the cached side of a pair is parsed again and again)."""

    words: tuple[str, ...]
    lower: tuple[str, ...]
    content: tuple[str, ...]
    numbers: frozenset[str]
    entities: frozenset[str]
    negations: int
    question_word: str | None
    char3: frozenset[str]


def _entities(words: tuple[str, ...]) -> frozenset[str]:
    # A capitalised word that is not the first word, or a word with an inner capital or two
    # capitals (iPhone, NASA, GPT): names whose change makes a different question.
    found = set()
    for i, w in enumerate(words):
        if not w[0].isalpha():
            continue
        inner = w[1:] != w[1:].lower()  # a capital after the first letter (ASCII words)
        if inner or (i > 0 and w[0].isupper() and w.lower() not in STOPWORDS):
            found.add(w.lower())
    return frozenset(found)


@lru_cache(maxsize=4096)
def parse(text: str) -> Parsed:
    words = tuple(_WORD.findall(text))
    lower = tuple(w.lower() for w in words)
    content = tuple(w for w in lower if w not in STOPWORDS)
    numbers = frozenset(w.replace(",", "") for w in lower if _NUMBER.match(w))
    negs = sum(1 for w in lower if w in NEGATIONS or w.endswith("n't"))
    qword = next((w for w in lower[:4] if w in QUESTION_WORDS), None)
    squashed = " ".join(lower)
    char3 = frozenset(squashed[i : i + 3] for i in range(max(1, len(squashed) - 2)))
    return Parsed(words, lower, content, numbers, _entities(words), negs, qword, char3)


def _jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def order_agreement(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Fraction of pairs of shared words that appear in the same order on both sides (1.0
    when fewer than two words are shared). Low when arguments were swapped."""
    pos_b: dict[str, int] = {}
    for i, w in enumerate(b):
        pos_b.setdefault(w, i)
    seen: set[str] = set()
    seq: list[int] = []
    for w in a:
        if w in pos_b and w not in seen:
            seen.add(w)
            seq.append(pos_b[w])
    n = len(seq)
    if n < 2:
        return 1.0
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if seq[i] < seq[j])
    return concordant / (n * (n - 1) / 2)


def _single_substitutions(
    matcher: SequenceMatcher[str], a: tuple[str, ...], b: tuple[str, ...]
) -> tuple[int, bool]:
    """Count aligned one-for-one replacements of a content word by another content word, and
    whether one of them is a prefix antonym (possible/impossible, like/dislike)."""
    count = 0
    antonym = False
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace" or i2 - i1 != 1 or j2 - j1 != 1:
            continue
        x, y = a[i1], b[j1]
        if x in STOPWORDS or y in STOPWORDS:
            continue
        count += 1
        antonym = antonym or is_prefix_antonym(x, y)
    return count, antonym


def is_prefix_antonym(x: str, y: str) -> bool:
    """True when one word is the other with a negating prefix (legal/illegal)."""
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    return any(long_ == p + short for p in _ANTONYM_PREFIXES) and len(short) >= 3


def pair_features(
    query: str, candidate: str, similarity: float, runner_up: float | None = None
) -> list[float]:
    """The feature vector, in ``FEATURE_NAMES`` order."""
    q = parse(query)
    c = parse(candidate)
    margin = MARGIN_CAP if runner_up is None else min(max(similarity - runner_up, 0.0), MARGIN_CAP)
    qset, cset = frozenset(q.lower), frozenset(c.lower)
    qcont, ccont = frozenset(q.content), frozenset(c.content)
    nq, nc = max(len(q.lower), 1), max(len(c.lower), 1)
    # One alignment of the two word sequences serves the ratio and the substitutions.
    matcher = SequenceMatcher(a=q.lower, b=c.lower, autojunk=False)
    subs, antonym = _single_substitutions(matcher, q.lower, c.lower)
    reordered = qcont == ccont and len(qcont) >= 2 and q.content != c.content
    symmetric = bool((qset | cset) & SYMMETRIC_MARKERS)
    return [
        similarity,
        margin,
        _jaccard(qset, cset),
        _jaccard(qcont, ccont),
        _jaccard(q.char3, c.char3),
        matcher.ratio(),
        abs(log(nq / nc)),
        float(min(nq, nc)),
        float(len(q.numbers - c.numbers)),
        float(len(c.numbers - q.numbers)),
        float(len(q.entities - cset)),
        float(len(c.entities - qset)),
        float((q.negations % 2) != (c.negations % 2)),
        float(q.question_word != c.question_word),
        order_agreement(q.content, c.content),
        float(len(qcont - ccont)),
        float(len(ccont - qcont)),
        float(subs),
        float(reordered),
        float(antonym),
        float(symmetric),
    ]
