"""Model name and sampling parameters read from LangChain's ``llm_string``, without eval.

LangChain builds ``llm_string`` in one of two shapes (langchain_core.language_models):

* serializable chat models: ``json.dumps(serialized, sort_keys=True) + "---" + repr_tail``, where
  the JSON holds the constructor kwargs (``model_name``, ``temperature`` ...) and ``repr_tail`` is
  ``str(sorted(call_kwargs.items()))`` (``stop``, anything bound at invoke time);
* everything else (and every ``BaseLLM``): ``str(sorted(params.items()))`` alone, where params
  include ``_type`` and the model's fields.

The whole ``llm_string`` is keyed (it is ``CacheRequest.model``), so this parse only feeds stats
(``model_name``) and the cache policy (``params``). The Python-repr part is read by a small
literal reader, never ``eval``/``literal_eval``: a value it cannot read (an object's repr) is
skipped, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

#: Where the model's name may be, in order of preference (constructor or call kwargs).
MODEL_NAME_FIELDS = ("model", "model_name", "model_id", "deployment_name")

#: Parameters that change what a model samples; the strict policy reads temperature, n,
#: best_of, top_p, top_k and seed.
SAMPLING_PARAMS = frozenset(
    {
        "temperature",
        "n",
        "best_of",
        "top_p",
        "top_k",
        "seed",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
    }
)


class LLMString(NamedTuple):
    """What an ``llm_string`` says about the model: its name and its sampling parameters.

    ``class_named``: no model field named it, so ``model_name`` is the class's name or
    ``_type`` (a fake or custom model); the model an answer reports is then a better name
    (as it is when ``model_name`` is empty).
    """

    model_name: str
    params: Mapping[str, Any]
    class_named: bool = False


@lru_cache(maxsize=512)
def parse_llm_string(llm_string: str) -> LLMString:
    """Read the model name and sampling params; unknown shapes give ``LLMString("", {})``.

    Cached: one model produces the same ``llm_string`` on every call.
    """
    head, tail = _split(llm_string)
    kwargs: dict[str, Any] = {}
    fallback_name = ""
    if head is not None:
        raw = head.get("kwargs")
        if isinstance(raw, dict):
            kwargs.update(raw)
            _take_model_kwargs(kwargs)
        ident = head.get("id")
        name = head.get("name")
        if isinstance(name, str):
            fallback_name = name
        elif isinstance(ident, list) and ident and isinstance(ident[-1], str):
            fallback_name = ident[-1]
    call = read_repr_pairs(tail)
    kwargs.update(call)  # call-time kwargs override the constructor's
    _take_model_kwargs(kwargs)
    if not fallback_name and isinstance(call.get("_type"), str):
        fallback_name = call["_type"]
    model_name = next(
        (kwargs[f] for f in MODEL_NAME_FIELDS if isinstance(kwargs.get(f), str) and kwargs[f]),
        None,
    )
    params = {
        k: v
        for k, v in kwargs.items()
        if k in SAMPLING_PARAMS and (v is None or isinstance(v, (bool, int, float, str)))
    }
    if model_name is None:
        return LLMString(fallback_name, params, class_named=bool(fallback_name))
    return LLMString(model_name, params)


def _take_model_kwargs(kwargs: dict[str, Any]) -> None:
    """Sampling settings given through ``model_kwargs`` (Bedrock's usual form, any model's
    escape hatch) are the model's: integrations merge them into the request over their own
    fields, so they are read as such (strict mode cached ``model_kwargs={"top_p": 0.5}``)."""
    extra = kwargs.pop("model_kwargs", None)
    if isinstance(extra, dict):
        kwargs.update((k, v) for k, v in extra.items() if k in SAMPLING_PARAMS)


def _split(llm_string: str) -> tuple[dict[str, Any] | None, str]:
    """(parsed JSON head or None, Python-repr tail) of an llm_string."""
    if not llm_string.startswith("{"):
        return None, llm_string
    # The JSON may itself contain "---" inside a string: try each "}---" until the head parses.
    start = 0
    while (cut := llm_string.find("}---", start)) != -1:
        try:
            head = orjson.loads(llm_string[: cut + 1])
        except orjson.JSONDecodeError:
            start = cut + 1
            continue
        if isinstance(head, dict):
            return head, llm_string[cut + 4 :]
        break
    return None, ""


# ---------------------------------------------------------------------------- repr reader
class _Unreadable(Exception):
    """A value that is not a plain Python literal (an object's repr, a set, bytes ...)."""


_NUMBER = re.compile(r"-?(?:inf|nan|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
_WORDS: dict[str, Any] = {"None": None, "True": True, "False": False}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def read_repr_pairs(text: str) -> dict[str, Any]:
    """Read ``str(sorted(d.items()))`` back into a dict, keeping the pairs it can read.

    Reads strings, numbers, None/True/False, lists, tuples and dicts of those. A value it
    cannot read is left out; a malformed text ends the read with the pairs read so far.
    """
    reader = _ReprReader(text)
    pairs: dict[str, Any] = {}
    try:
        reader.expect("[")
        if reader.peek() == "]":
            return pairs
        while True:
            reader.expect("(")
            key = reader.string()
            reader.expect(",")
            start = reader.pos
            try:
                pairs[key] = reader.value()
            except _Unreadable:
                reader.pos = start
                reader.skip_value()
            reader.expect(")")
            if reader.next_char() == "]":
                return pairs
            reader.pos -= 1
            reader.expect(",")
    except _Unreadable:
        return pairs


class _ReprReader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self) -> str:
        self._skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next_char(self) -> str:
        char = self.peek()
        if not char:
            raise _Unreadable("unexpected end")
        self.pos += 1
        return char

    def expect(self, char: str) -> None:
        if self.next_char() != char:
            raise _Unreadable(f"expected {char!r} at {self.pos - 1}")

    def value(self) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.string()
        if char in ("[", "("):
            items = self._sequence(_CLOSERS[char])
            return items  # tuples become lists, as they would in JSON
        if char == "{":
            return self._dict()
        match = _NUMBER.match(self.text, self.pos)
        if match and not self._word_continues(match.end()):
            self.pos = match.end()
            token = match.group()
            return float(token) if any(c in token for c in ".eEna") else int(token)
        for word, result in _WORDS.items():
            if self.text.startswith(word, self.pos) and not self._word_continues(
                self.pos + len(word)
            ):
                self.pos += len(word)
                return result
        raise _Unreadable(f"not a literal at {self.pos}")

    def _word_continues(self, end: int) -> bool:
        return end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_.(")

    def _sequence(self, closer: str) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while self.peek() != closer:
            items.append(self.value())
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != closer:
                raise _Unreadable(f"expected ',' or {closer!r} at {self.pos}")
        self.pos += 1
        return items

    def _dict(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        while self.peek() != "}":
            key = self.value()
            if not isinstance(key, str):
                raise _Unreadable("only string keys are read")
            self.expect(":")
            result[key] = self.value()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise _Unreadable(f"expected ',' or '}}' at {self.pos}")
        self.pos += 1
        return result

    def string(self) -> str:
        quote = self.next_char()
        if quote not in ("'", '"'):
            raise _Unreadable(f"expected a string at {self.pos - 1}")
        text, pos = self.text, self.pos
        out: list[str] = []
        while pos < len(text):
            char = text[pos]
            if char == quote:
                self.pos = pos + 1
                return "".join(out)
            if char != "\\":
                out.append(char)
                pos += 1
                continue
            code = text[pos + 1 : pos + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                pos += 2
            elif code in _HEX_ESCAPES:
                width = _HEX_ESCAPES[code]
                digits = text[pos + 2 : pos + 2 + width]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    raise _Unreadable(f"bad escape at {pos}") from None
                pos += 2 + width
            else:
                raise _Unreadable(f"unknown escape at {pos}")
        raise _Unreadable("unterminated string")

    def skip_value(self) -> None:
        """Move past one value of unknown form: to the next ',' or closer at this depth."""
        depth, text = 0, self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in ("'", '"'):
                self.string()
                continue
            if char in "([{":
                depth += 1
            elif char in ")]}":
                if depth == 0:
                    return
                depth -= 1
            elif char == "," and depth == 0:
                return
            self.pos += 1
        raise _Unreadable("unexpected end")
