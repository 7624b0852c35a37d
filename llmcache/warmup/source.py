"""Reading warm-up files: UTF-8 lines with their numbers, and the row fields FAQ files and
call logs share (scope parts, tags, texts), each checked with a reason a person can act on.

A file is read whole and checked row by row before anything is stored: a bad row either stops
the warm-up with its file and line (nothing written), or, with ``skip_bad``, is left out and
reported. Nothing in a file is evaluated: JSON is parsed by orjson, CSV by the csv module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from llmcache.errors import ConfigError
from llmcache.request import Scope, check_tags

#: Largest row (FAQ) or log line accepted, in bytes of UTF-8: a bigger one is a bad row.
MAX_ROW_BYTES = 64 * 1024

_BOM = b"\xef\xbb\xbf"


class WarmupFileError(ConfigError):
    """A warm-up file that cannot be used as it is; the message names the file and line."""


class BadRow(NamedTuple):
    """A row left out of a warm-up: its first line in the file and why."""

    line: int
    reason: str


class RowError(ValueError):
    """What is wrong with one row (the reader turns it into a ``BadRow``)."""


class Line(NamedTuple):
    number: int  # 1-based, in the file
    text: str  # with its line ending


def read_lines(path: str | os.PathLike[str]) -> tuple[list[Line], list[BadRow]]:
    """The file's lines, decoded as UTF-8 (a leading BOM is dropped); a line that is not
    UTF-8 is a bad row, never guessed in another encoding."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise WarmupFileError(f"{os.fspath(path)}: cannot read it ({exc.strerror})") from None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    lines: list[Line] = []
    bad: list[BadRow] = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append(Line(number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            bad.append(
                BadRow(number, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8")
            )
    return lines, bad


def refuse_bad_rows(path: str | os.PathLike[str], bad: Sequence[BadRow]) -> None:
    """Raise for the first bad row (by line), counting the others."""
    if not bad:
        return
    first = min(bad)
    more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
    raise WarmupFileError(
        f"{os.fspath(path)} line {first.line}: {first.reason}{more}; nothing was stored: "
        "fix the file, or skip bad rows (--skip-bad)"
    )


def check_size(text: str, limit: int) -> None:
    size = len(text.encode("utf-8"))
    if size > limit:
        raise RowError(f"row is {size} bytes, more than the {limit} allowed")


def text_field(row: Mapping[str, Any], name: str) -> str:
    """A required text (surrounding whitespace removed), non-empty and valid Unicode."""
    value = row.get(name)
    if value is None:
        raise RowError(f"no {name}")
    if not isinstance(value, str):
        raise RowError(f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise RowError(f"empty {name}")
    return value


def optional_part(row: Mapping[str, Any], name: str) -> str | None:
    """An optional scope part: absent, null or blank is "not given"."""
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(f"{name} must be a string, got {type(value).__name__}")
    return value.strip() or None


def list_field(row: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """An optional list of strings (JSON); absent or null is empty."""
    value = row.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowError(f"{name} must be a list of strings, got {value!r:.60}")
    return tuple(value)


def split_list(cell: str | None) -> tuple[str, ...]:
    """A CSV cell holding a list: ``kb-7;kb-9`` (blank parts are not allowed)."""
    if cell is None or not cell.strip():
        return ()
    parts = tuple(part.strip() for part in cell.split(";"))
    if not all(parts):
        raise RowError(f"empty item in the list {cell!r:.60} (items are separated by ';')")
    return parts


def scope_of(user: str | None, tenant: str | None, acl: Sequence[str]) -> Scope:
    try:
        return Scope.of(user=user, tenant=tenant, acl=acl)
    except ConfigError as exc:
        raise RowError(str(exc)) from None


def tags_of(tags: Sequence[str]) -> tuple[str, ...]:
    try:
        return check_tags(tags)
    except ConfigError as exc:
        raise RowError(str(exc)) from None


def json_object(text: str, max_row_bytes: int) -> dict[str, Any]:
    """One JSONL line as an object (raises RowError)."""
    check_size(text, max_row_bytes)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RowError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RowError(f"expected a JSON object, got {type(value).__name__}")
    return value
