"""Call logs: past LLM calls, one JSON object per line, counted to find what to warm first.

Each line holds the call's prompt, as either

* ``"prompt": "How do I reset my password?"`` (one user message), or
* ``"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}]``
  (OpenAI-style messages: ``role`` and ``content``, other fields kept as they are),

and optionally ``"model"`` (the model it was sent to; see ``read_log(model=...)``) and the
scope it was asked in: ``"user"``, ``"tenant"``, ``"acl"`` (a list). Other fields (timestamps,
the answer, latency ...) are ignored; blank lines are skipped. Identical calls (same messages,
same scope) are counted together; a bare ``prompt`` and the same text as a single user message
are the same call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from llmcache.keys import canonical_json
from llmcache.request import Scope
from llmcache.warmup.source import (
    BadRow,
    RowError,
    WarmupFileError,
    json_object,
    list_field,
    optional_part,
    read_lines,
    refuse_bad_rows,
    scope_of,
    text_field,
)

#: A log line may be longer than a FAQ row (whole conversations): 1 MiB.
MAX_LOG_LINE_BYTES = 1024 * 1024

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One distinct call of the log: its messages, scope, how often it was made, and the
    line where it first appears."""

    messages: tuple[Message, ...]
    scope: Scope
    count: int
    line: int


class CallLog(NamedTuple):
    """The distinct calls of a log, most frequent first (ties: first seen first)."""

    calls: tuple[LoggedCall, ...]
    records: int  # calls read (lines that were counted)
    other_models: int  # lines left out because they name another model
    bad: tuple[BadRow, ...]

    def top(self, n: int) -> tuple[LoggedCall, ...]:
        return self.calls[:n]


def read_log(
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    skip_bad: bool = False,
    max_line_bytes: int = MAX_LOG_LINE_BYTES,
) -> CallLog:
    """Read, check and count a JSONL call log.

    ``model``: count only lines whose ``model`` is this one (lines without ``model`` count).
    Raises WarmupFileError naming the file and the first bad line unless ``skip_bad``; and
    when no call is left to count.
    """
    lines, bad = read_lines(path)
    counted: dict[bytes, LoggedCall] = {}
    records = other_models = 0
    for number, text in lines:
        if not text.strip():
            continue
        try:
            fields = json_object(text, max_line_bytes)
            named = optional_part(fields, "model")
            call = LoggedCall(_messages(fields), _scope(fields), 1, number)
        except RowError as exc:
            bad.append(BadRow(number, str(exc)))
            continue
        if model is not None and named is not None and named != model:
            other_models += 1
            continue
        records += 1
        identity = canonical_json([call.messages, _scope_parts(call.scope)])
        seen = counted.get(identity)
        counted[identity] = call if seen is None else _once_more(seen)
    if not skip_bad:
        refuse_bad_rows(path, bad)
    if not counted:
        left_out = f"; {other_models} name another model than {model!r}" if other_models else ""
        raise WarmupFileError(f"{os.fspath(path)}: no calls to replay{left_out}")
    # sorted() is stable: among equal counts, the call seen first stays first.
    calls = sorted(counted.values(), key=lambda c: c.count, reverse=True)
    return CallLog(tuple(calls), records, other_models, tuple(sorted(bad)))


def _once_more(call: LoggedCall) -> LoggedCall:
    return LoggedCall(call.messages, call.scope, call.count + 1, call.line)


def _scope_parts(scope: Scope) -> list[Any]:
    return [scope.user, scope.tenant, sorted(scope.acl)]


def _scope(fields: Mapping[str, Any]) -> Scope:
    return scope_of(
        optional_part(fields, "user"), optional_part(fields, "tenant"), list_field(fields, "acl")
    )


def _messages(fields: Mapping[str, Any]) -> tuple[Message, ...]:
    has_prompt, has_messages = "prompt" in fields, "messages" in fields
    if has_prompt == has_messages:
        raise RowError("give either prompt or messages" + (", not both" if has_prompt else ""))
    if has_prompt:
        # As sent: a prompt is not stripped (it is the key of a call that was made).
        text = fields["prompt"]
        text_field(fields, "prompt")
        return ({"role": "user", "content": text},)
    messages = fields["messages"]
    if not isinstance(messages, list) or not messages:
        raise RowError("messages must be a non-empty list of {role, content} objects")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RowError(f"messages[{index}] is not a {{role, content}} object")
        content = message.get("content")
        if not isinstance(content, (str, list)) and not (
            content is None and message.get("tool_calls")
        ):
            raise RowError(f"messages[{index}] has no content (a string or a list of parts)")
    return tuple(messages)
