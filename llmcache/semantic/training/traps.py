"""Near-duplicate traps and surface paraphrases, made by code from real questions.

A trap changes what a question asks while keeping almost every word: swapped arguments of an
asymmetric relation or of two names, a changed number, a replaced name, an added or removed
negation, a word replaced by its antonym. A paraphrase changes the wording but not the
question (contractions, "How do I" / "How can I", case and punctuation, a polite preamble).

The mechanisms are general; the only lexicon is a list of common English antonym pairs, split
in two disjoint halves: ``"train"`` makes the synthetic negatives the model is trained on,
``"eval"`` makes the trap set that tests and the benchmark measure (so a trap's antonym was
never seen in training). Questions are split the same way by a stable hash.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from llmcache.semantic.verifier_features import STOPWORDS, SYMMETRIC_MARKERS

Half = Literal["train", "eval"]

# Common English antonym pairs (general vocabulary, not taken from the datasets). Even
# positions train, odd positions evaluate.
ANTONYMS: tuple[tuple[str, str], ...] = (
    ("before", "after"),
    ("ascending", "descending"),
    ("increase", "decrease"),
    ("buy", "sell"),
    ("best", "worst"),
    ("maximum", "minimum"),
    ("more", "less"),
    ("cheap", "expensive"),
    ("good", "bad"),
    ("advantages", "disadvantages"),
    ("start", "stop"),
    ("win", "lose"),
    ("up", "down"),
    ("easy", "hard"),
    ("fast", "slow"),
    ("high", "low"),
    ("old", "new"),
    ("love", "hate"),
    ("rich", "poor"),
    ("import", "export"),
    ("true", "false"),
    ("inside", "outside"),
    ("first", "last"),
    ("open", "close"),
    ("positive", "negative"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("gain", "lose"),
    ("long", "short"),
    ("large", "small"),
    ("happy", "sad"),
    ("strong", "weak"),
    ("add", "remove"),
    ("upload", "download"),
    ("encrypt", "decrypt"),
    ("male", "female"),
    ("online", "offline"),
    ("safe", "dangerous"),
    ("early", "late"),
    ("right", "wrong"),
    ("young", "older"),
    ("north", "south"),
    ("east", "west"),
    ("hot", "cold"),
    ("light", "dark"),
    ("enable", "disable"),
    ("accept", "reject"),
    ("private", "public"),
)

_AUX = frozenset(
    (
        "is",
        "are",
        "was",
        "were",
        "can",
        "could",
        "should",
        "will",
        "would",
        "does",
        "do",
        "did",
        "has",
        "have",
        "may",
        "might",
        "must",
    )
)
_NEGATED_AUX = {
    "isn't": "is",
    "aren't": "are",
    "wasn't": "was",
    "weren't": "were",
    "can't": "can",
    "cannot": "can",
    "couldn't": "could",
    "shouldn't": "should",
    "won't": "will",
    "wouldn't": "would",
    "doesn't": "does",
    "don't": "do",
    "didn't": "did",
}
_SUBJECTS = frozenset(["i", "you", "we", "they", "he", "she", "it", "people", "one", "someone"])
_ASYMMETRIC = ("than", "into", "over", "before", "after", "to")
_TOKEN = re.compile(r"\S+")
_CORE = re.compile(r"^([^A-Za-z0-9]*)(.*?)([^A-Za-z0-9]*)$")


@dataclass(frozen=True)
class Variant:
    """A rewritten question: ``kind`` names the mechanism, ``same`` whether it still asks
    the same question (paraphrase) or not (trap)."""

    original: str
    text: str
    kind: str
    same: bool


def half_of(question: str) -> Half:
    """Stable split of questions into a training half and an evaluation half."""
    return "train" if hashlib.sha256(question.encode()).digest()[0] % 2 == 0 else "eval"


def antonyms(half: Half) -> dict[str, str]:
    pairs = ANTONYMS[0::2] if half == "train" else ANTONYMS[1::2]
    table: dict[str, str] = {}
    for a, b in pairs:
        table.setdefault(a, b)
        table.setdefault(b, a)
    return table


def _split(text: str) -> list[tuple[str, str, str]]:
    out = []
    for tok in _TOKEN.findall(text):
        m = _CORE.match(tok)
        assert m is not None
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def _join(parts: list[tuple[str, str, str]]) -> str:
    return " ".join(a + b + c for a, b, c in parts)


def _match_case(word: str, like: str) -> str:
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _is_content(word: str) -> bool:
    return bool(word) and word.lower() not in STOPWORDS and word[:1].isalnum()


def swap_arguments(text: str, rng: random.Random) -> str | None:
    """Swap the words on both sides of an asymmetric marker ("A than B", "from A to B"), or two
    names or numbers of the question when there is no marker."""
    parts = _split(text)
    low = [p[1].lower() for p in parts]
    for marker in _ASYMMETRIC:
        if marker not in low:
            continue
        idx = low.index(marker)
        # "to" is a relation only in "from A to B"; elsewhere it is mostly an infinitive.
        if marker == "to" and "from" not in low[max(0, idx - 4) : idx]:
            continue
        if marker == "to":
            idx = low.index("from", max(0, idx - 4))
            marker = "from"
            # swap what lies between "from" and "to" with what follows "to"
            to_at = low.index("to", idx)
            a = parts[idx + 1 : to_at]
            b_end = to_at + 1
            while b_end < len(parts) and _is_content(parts[b_end][1]) and b_end - to_at <= 3:
                b_end += 1
            b = parts[to_at + 1 : b_end]
            if not a or not b or [p[1].lower() for p in a] == [p[1].lower() for p in b]:
                continue
            strip = [("", p[1], "") for p in b] + [parts[to_at]] + [("", p[1], "") for p in a]
            strip[-1] = ("", strip[-1][1], b[-1][2])
            return _join(parts[: idx + 1] + strip + parts[b_end:])
        left_end = idx
        left_start = left_end
        while (
            left_start > 0 and _is_content(parts[left_start - 1][1]) and left_end - left_start < 3
        ):
            left_start -= 1
        right_start = idx + 1
        right_end = right_start
        while (
            right_end < len(parts)
            and _is_content(parts[right_end][1])
            and right_end - right_start < 3
        ):
            right_end += 1
        if left_start == left_end or right_start == right_end:
            continue
        if any(p[2] for p in parts[left_start : right_end - 1]):
            continue  # punctuation inside: the two sides are not one clause
        left = [p[1] for p in parts[left_start:left_end]]
        right = [p[1] for p in parts[right_start:right_end]]
        if [w.lower() for w in left] == [w.lower() for w in right]:
            continue
        new = list(parts)
        words = [*right, marker, *left]
        span = parts[left_start:right_end]
        # Keep the punctuation around the span where it was.
        new[left_start:right_end] = [("", w, "") for w in words]
        new[left_start] = (span[0][0], new[left_start][1], new[left_start][2])
        new[right_end - 1] = (new[right_end - 1][0], new[right_end - 1][1], span[-1][2])
        return _join(new)
    names = [i for i, p in enumerate(parts) if i > 0 and (p[1][:1].isupper() or p[1].isdigit())]
    names = [i for i in names if parts[i][1].lower() not in STOPWORDS]
    if set(low) & SYMMETRIC_MARKERS:
        return None  # "between A and B": swapping them would not change the question
    distinct = {parts[i][1].lower() for i in names}
    if len(distinct) < 2:
        return None
    # Adjacent names are one name ("Puerto Rico"): swap two names apart from each other.
    options = [
        (i, j)
        for i in names
        for j in names
        if j > i + 1 and parts[i][1].lower() != parts[j][1].lower()
    ]
    if not options:
        return None
    i, j = rng.choice(options)
    new = list(parts)
    new[i] = (parts[i][0], parts[j][1], parts[i][2])
    new[j] = (parts[j][0], parts[i][1], parts[j][2])
    return _join(new)


def change_number(text: str, rng: random.Random) -> str | None:
    parts = _split(text)
    idx = [i for i, p in enumerate(parts) if p[1].isdigit()]
    if not idx:
        return None
    i = rng.choice(idx)
    n = int(parts[i][1])
    if 1900 <= n <= 2100:
        m = n + rng.choice([-3, -2, -1, 1, 2, 3])
    else:
        m = n + rng.randint(1, max(2, n)) if rng.random() < 0.7 else max(0, n - rng.randint(1, 3))
    if m == n:
        m = n + 1
    new = list(parts)
    new[i] = (parts[i][0], str(m), parts[i][2])
    return _join(new)


def _names(parts: list[tuple[str, str, str]]) -> list[int]:
    """Positions of capitalised words inside a sentence (after a word with no punctuation)."""
    return [
        i
        for i, p in enumerate(parts)
        if i > 0
        and not parts[i - 1][2]
        and not p[0]
        and p[1][:1].isupper()
        and p[1].isalpha()
        and p[1].lower() not in STOPWORDS
    ]


def change_entity(text: str, rng: random.Random, pool: list[str]) -> str | None:
    """Replace a capitalised name (not the first word) with another name seen in the pool."""
    parts = _split(text)
    idx = _names(parts)
    if not idx or not pool:
        return None
    i = rng.choice(idx)
    for _ in range(10):
        other = rng.choice(pool)
        if other.lower() != parts[i][1].lower() and other.lower() not in text.lower():
            new = list(parts)
            new[i] = (parts[i][0], other, parts[i][2])
            return _join(new)
    return None


def toggle_negation(text: str, rng: random.Random) -> str | None:
    """Remove a negation if there is one, otherwise negate the first auxiliary verb."""
    parts = _split(text)
    low = [p[1].lower() for p in parts]
    for i, w in enumerate(low):
        if w in _NEGATED_AUX:
            new = list(parts)
            new[i] = (parts[i][0], _match_case(_NEGATED_AUX[w], parts[i][1]), parts[i][2])
            return _join(new)
        if w in ("not", "never"):
            return _join(parts[:i] + parts[i + 1 :])
    for i, w in enumerate(low[:-2]):
        # "How do I learn" -> "How do I not learn", "Why do people hate" -> "Why do people
        # not hate": the negation goes after the auxiliary's subject (a pronoun or one noun).
        if w in _AUX and (low[i + 1] in _SUBJECTS or _is_content(parts[i + 1][1])):
            if parts[i + 1][2]:  # punctuation after the subject: not a clause we can negate
                continue
            new = list(parts)
            new.insert(i + 2, ("", "not", ""))
            return _join(new)
    return None


def replace_antonym(text: str, rng: random.Random, table: dict[str, str]) -> str | None:
    parts = _split(text)
    idx = [i for i, p in enumerate(parts) if p[1].lower() in table]
    if not idx:
        return None
    i = rng.choice(idx)
    word = parts[i][1]
    new = list(parts)
    new[i] = (parts[i][0], _match_case(table[word.lower()], word), parts[i][2])
    return _join(new)


_PARAPHRASE_RULES: tuple[tuple[str, str], ...] = (
    (r"\bHow do I\b", "How can I"),
    (r"\bHow can I\b", "How do I"),
    (r"\bWhat is\b", "What's"),
    (r"\bWhat's\b", "What is"),
    (r"\bWhat are some\b", "What are a few"),
    (r"\bdo not\b", "don't"),
    (r"\bdon't\b", "do not"),
    (r"\bI am\b", "I'm"),
    (r"\bis it\b", "would it be"),
    (r"\bbest way\b", "best method"),
    (r"\bWhich is\b", "What is"),
    (r"\bWhy do\b", "For what reason do"),
    (r"\bcan I\b", "could I"),
)


def paraphrase(text: str, rng: random.Random) -> str | None:
    """A rewording that keeps the question: a rule from the table above if one applies,
    otherwise a change of case, punctuation or a polite preamble."""
    rules = [(p, r) for p, r in _PARAPHRASE_RULES if re.search(p, text)]
    if rules and rng.random() < 0.7:
        pattern, repl = rng.choice(rules)
        return re.sub(pattern, repl, text, count=1)
    choice = rng.randrange(3)
    if choice == 0:
        return text.lower().rstrip("?!. ")
    if choice == 1:
        return "Can you tell me: " + text[:1].lower() + text[1:]
    return text.rstrip("?") + " please?" if text.endswith("?") else text + ", please"


def entity_pool(questions: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for q in questions:
        parts = _split(q)
        found.update(parts[i][1] for i in _names(parts))
    return sorted(found)


TRAP_KINDS = ("swap", "number", "entity", "negation", "antonym")


def variants(questions: Iterable[str], half: Half, seed: int = 0) -> Iterator[Variant]:
    """Every trap mechanism that applies to each question, and one paraphrase of it."""
    qs = [q for q in questions if half_of(q) == half]
    rng = random.Random(seed)
    pool = entity_pool(qs)
    table = antonyms(half)
    for q in qs:
        made = {
            "swap": swap_arguments(q, rng),
            "number": change_number(q, rng),
            "entity": change_entity(q, rng, pool),
            "negation": toggle_negation(q, rng),
            "antonym": replace_antonym(q, rng, table),
        }
        for kind, text in made.items():
            if text is not None and text.strip() != q.strip():
                yield Variant(q, text, kind, False)
        para = paraphrase(q, rng)
        if para is not None and para != q:
            yield Variant(q, para, "paraphrase", True)
