"""FAQ files: questions and their answers, to store without calling a model.

CSV: a header row naming at least ``question`` and ``answer``; optional columns ``user``,
``tenant``, ``acl`` and ``tags`` (lists separated by ``;``, e.g. ``kb-7;kb-9``); other columns
are ignored. JSONL: one object per line with the same fields (``acl`` and ``tags`` as JSON
lists); blank lines are skipped. Questions and answers lose surrounding whitespace.

Every row is checked before anything is stored (see ``source``): missing or empty fields,
rows over ``MAX_ROW_BYTES``, text that is not UTF-8, bad scope parts or tags, and a question
repeated for the same scope.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from llmcache.keys import canonical_json
from llmcache.request import ANONYMOUS, Scope
from llmcache.warmup.source import (
    MAX_ROW_BYTES,
    BadRow,
    Line,
    RowError,
    WarmupFileError,
    check_size,
    json_object,
    list_field,
    optional_part,
    read_lines,
    refuse_bad_rows,
    scope_of,
    split_list,
    tags_of,
    text_field,
)

FORMATS = ("csv", "jsonl")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
REQUIRED_COLUMNS = ("question", "answer")


@dataclass(frozen=True, slots=True)
class FaqRow:
    """One question and its answer, for ``scope`` (anonymous when the row names none)."""

    line: int
    question: str
    answer: str
    scope: Scope = ANONYMOUS
    tags: tuple[str, ...] = ()


class FaqFile(NamedTuple):
    """The rows to store, and the rows left out (only with ``skip_bad``)."""

    rows: tuple[FaqRow, ...]
    bad: tuple[BadRow, ...]


def faq_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``format`` if given, else the one the file's suffix names."""
    if format is not None:
        if format not in FORMATS:
            raise WarmupFileError(f"unknown FAQ format {format!r}; use one of {', '.join(FORMATS)}")
        return format
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in _SUFFIXES:
        raise WarmupFileError(
            f"{os.fspath(path)}: cannot tell its format from the name; "
            "name it .csv or .jsonl, or pass the format (--format csv|jsonl)"
        )
    return _SUFFIXES[suffix]


def read_faq(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    skip_bad: bool = False,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> FaqFile:
    """Read and check a whole FAQ file.

    Raises WarmupFileError naming the file and the first bad line (and how many more) unless
    ``skip_bad``; and when the file holds no row at all.
    """
    kind = faq_format(path, format)
    lines, bad = read_lines(path)
    if kind == "csv":
        parsed = _csv_rows(os.fspath(path), lines, max_row_bytes)
    else:
        parsed = _jsonl_rows(lines, max_row_bytes)
    rows: list[FaqRow] = []
    first_seen: dict[bytes, int] = {}
    for item in parsed:
        if isinstance(item, BadRow):
            bad.append(item)
            continue
        same = _identity(item)
        if same in first_seen:
            reason = f"repeats the question of line {first_seen[same]} for the same scope"
            bad.append(BadRow(item.line, reason))
            continue
        first_seen[same] = item.line
        rows.append(item)
    if not skip_bad:
        refuse_bad_rows(path, bad)
    if not rows:
        raise WarmupFileError(
            f"{os.fspath(path)}: no FAQ rows to store"
            + (f" ({len(bad)} bad rows left out)" if bad else "")
        )
    return FaqFile(tuple(rows), tuple(sorted(bad)))


def _identity(row: FaqRow) -> bytes:
    """Rows with equal identities would write the same entry."""
    scope = row.scope
    return canonical_json([row.question, scope.user, scope.tenant, sorted(scope.acl)])


def _row(line: int, fields: Mapping[str, Any], lists: Mapping[str, tuple[str, ...]]) -> FaqRow:
    return FaqRow(
        line=line,
        question=text_field(fields, "question"),
        answer=text_field(fields, "answer"),
        scope=scope_of(
            optional_part(fields, "user"), optional_part(fields, "tenant"), lists["acl"]
        ),
        tags=tags_of(lists["tags"]),
    )


# ---------------------------------------------------------------------------- CSV
def _csv_rows(path: str, lines: list[Line], max_row_bytes: int) -> Iterator[FaqRow | BadRow]:
    numbers = [line.number for line in lines]
    reader = csv.reader((line.text for line in lines), strict=True)
    header: list[str] | None = None
    while True:
        start = numbers[reader.line_num] if reader.line_num < len(numbers) else 0
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield BadRow(start, f"not valid CSV ({exc})")
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            _check_header(path, header, start)
            continue
        try:
            if len(cells) != len(header):
                raise RowError(f"has {len(cells)} fields; the header has {len(header)}")
            check_size("".join(cells), max_row_bytes)
            fields = dict(zip(header, cells, strict=True))
            lists = {name: split_list(fields.get(name)) for name in ("acl", "tags")}
            yield _row(start, fields, lists)
        except RowError as exc:
            yield BadRow(start, str(exc))
    if header is None:
        yield BadRow(1, "no header row (question,answer)")


def _check_header(path: str, header: list[str], line: int) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing or len(set(header)) != len(header):
        problem = f"no column {' or '.join(missing)}" if missing else "a column is named twice"
        raise WarmupFileError(
            f"{path} line {line}: the header {','.join(header)[:80]!r} has {problem}; the first "
            "row must name the columns: question,answer[,user,tenant,acl,tags]"
        )


# ---------------------------------------------------------------------------- JSONL
def _jsonl_rows(lines: list[Line], max_row_bytes: int) -> Iterator[FaqRow | BadRow]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            fields = json_object(text, max_row_bytes)
            yield _row(number, fields, {n: list_field(fields, n) for n in ("acl", "tags")})
        except RowError as exc:
            yield BadRow(number, str(exc))
