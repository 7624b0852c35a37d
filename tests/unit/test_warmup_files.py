"""Reading warm-up files: what a FAQ file and a call log become, and the one-line error each
bad file gets (file and line named, nothing returned to store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmcache import Scope
from llmcache.warmup import WarmupFileError, read_faq, read_log


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def faq_error(path: Path, **options: Any) -> str:
    with pytest.raises(WarmupFileError) as caught:
        read_faq(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------- FAQ: CSV
def test_csv_rows_with_scope_tags_and_ignored_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faq.csv",
        "\ufeffQuestion , Answer,source,acl,tenant,user,tags\n"
        ' How do I reset my password? ,"Open Settings,\nthen Security.",wiki,,,,\n'
        "\n"
        "Refunds?,30 days.,handbook,kb-7; kb-9,acme,alice,billing;policy\n",
    )
    faq = read_faq(path)
    assert faq.bad == ()
    first, second = faq.rows
    assert (first.line, first.question, first.answer) == (
        2, "How do I reset my password?", "Open Settings,\nthen Security."
    )  # fmt: skip
    assert first.scope == Scope() and first.tags == ()
    assert second.line == 5  # its own first line, after a two-line row and a blank line
    assert second.scope == Scope.of(user="alice", tenant="acme", acl=["kb-9", "kb-7"])
    assert second.tags == ("billing", "policy")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("q,a\nx,y\n", "faq.csv line 1: the header 'q,a' has no column question or answer"),
        ("question,answer,answer\nx,y,z\n", "line 1: the header"),
        ("question,answer\nx\n", "faq.csv line 2: has 1 fields; the header has 2"),
        ("question,answer\n   ,y\n", "faq.csv line 2: empty question"),
        ("question,answer\nx,\n", "faq.csv line 2: empty answer"),
        ("question,answer,acl\nx,y,kb-7;;kb-9\n", "line 2: empty item in the list"),
        ('question,answer\nx,"never closed\n', "faq.csv line 2: not valid CSV"),
        ("question,answer\nx,y\n\nx,z\n", "faq.csv line 4: repeats the question of line 2"),
        ("", "faq.csv line 1: no header row"),
    ],
)
def test_a_bad_csv_names_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in faq_error(write(tmp_path, "faq.csv", text))


def test_the_same_question_in_another_scope_is_another_row(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "question,answer,user\nx,for all,\nx,for alice,alice\n")
    assert [row.answer for row in read_faq(path).rows] == ["for all", "for alice"]


def test_bytes_that_are_not_utf8_are_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", b"question,answer\nx,caf\xe9\ny,fine\n")
    assert "faq.csv line 2: not valid UTF-8 (byte 0xe9)" in faq_error(path)
    faq = read_faq(path, skip_bad=True)
    assert [row.question for row in faq.rows] == ["y"]
    assert [bad.line for bad in faq.bad] == [2]


def test_an_oversized_row_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "question,answer\nx," + "y" * 200 + "\nz,short\n")
    assert "line 2: row is 201 bytes, more than the 100 allowed" in faq_error(
        path, max_row_bytes=100
    )


def test_the_first_error_is_shown_and_the_others_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.csv", "question,answer\nx,\ny,\nz,ok\nw,\n")
    message = faq_error(path)
    assert "faq.csv line 2: empty answer (and 2 more bad rows)" in message
    assert "nothing was stored" in message and "--skip-bad" in message
    faq = read_faq(path, skip_bad=True)
    assert [row.question for row in faq.rows] == ["z"]
    assert [bad.line for bad in faq.bad] == [2, 3, 5]


def test_a_file_with_no_row_is_refused_even_when_skipping(tmp_path: Path) -> None:
    assert "no FAQ rows to store" in faq_error(write(tmp_path, "faq.csv", "question,answer\n"))
    path = write(tmp_path, "bad.csv", "question,answer\nx,\n")
    assert "no FAQ rows to store (1 bad rows left out)" in faq_error(path, skip_bad=True)


def test_format_comes_from_the_name_or_the_caller(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.txt", jsonl({"question": "x", "answer": "y"}))
    assert "cannot tell its format from the name" in faq_error(path)
    assert read_faq(path, format="jsonl").rows[0].answer == "y"
    assert "unknown FAQ format 'xml'" in faq_error(path, format="xml")
    assert "cannot read it" in faq_error(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------- FAQ: JSONL
def test_jsonl_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "faq.jsonl",
        jsonl(
            {"question": "x", "answer": "y", "id": 7},
            "",
            {"question": "x", "answer": "z", "user": "bob", "acl": ["kb-7"], "tags": ["t"]},
        ),
    )
    first, second = read_faq(path).rows
    assert (first.line, first.scope) == (1, Scope())
    assert (second.line, second.scope, second.tags) == (3, Scope.of("bob", acl=["kb-7"]), ("t",))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("{not json", "faq.jsonl line 1: not valid JSON"),
        ('["x", "y"]', "faq.jsonl line 1: expected a JSON object, got list"),
        ({"answer": "y"}, "faq.jsonl line 1: no question"),
        ({"question": 7, "answer": "y"}, "question must be a string, got int"),
        ({"question": "x", "answer": "y", "acl": "kb-7"}, "acl must be a list of strings"),
        ({"question": "x", "answer": "y", "tags": [""]}, "every tag must be a non-empty string"),
        ({"question": "x", "answer": "y", "user": 5}, "user must be a string, got int"),
        ('{"question": "\\ud800", "answer": "y"}', "line 1: not valid JSON (no low surrogate"),
    ],
)
def test_a_bad_jsonl_row_names_the_file_and_line(tmp_path: Path, row: Any, expected: str) -> None:
    assert expected in faq_error(write(tmp_path, "faq.jsonl", jsonl(row)))


# ---------------------------------------------------------------------------- call logs
def test_identical_calls_are_counted_together(tmp_path: Path) -> None:
    ask = {"role": "user", "content": "a?"}
    path = write(
        tmp_path,
        "calls.jsonl",
        jsonl(
            {"prompt": "b?"},
            {"prompt": "a?", "ts": 1},
            {"messages": [ask], "answer": "ignored"},
            {"prompt": "a?", "user": "alice"},
            {"messages": [{"role": "system", "content": "be brief"}, ask]},
            {"prompt": "b?"},
            {"prompt": "a?"},
        ),
    )
    log = read_log(path)
    assert log.records == 7
    counted = [
        (c.messages[-1]["content"], len(c.messages), c.scope.user, c.count) for c in log.calls
    ]
    assert counted == [
        ("a?", 1, None, 3), ("b?", 1, None, 2), ("a?", 1, "alice", 1), ("a?", 2, None, 1)
    ]  # fmt: skip
    assert log.calls[0].line == 2  # where the call first appears
    assert [c.count for c in log.top(2)] == [3, 2]


def test_only_the_chosen_models_calls_are_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "calls.jsonl",
        jsonl(
            {"prompt": "a?", "model": "gpt-4o"}, {"prompt": "b?", "model": "x"}, {"prompt": "c?"}
        ),
    )
    log = read_log(path, model="gpt-4o")
    assert [c.messages[0]["content"] for c in log.calls] == ["a?", "c?"]
    assert log.other_models == 1
    with pytest.raises(WarmupFileError, match="no calls to replay; 1 name another model"):
        read_log(write(tmp_path, "other.jsonl", jsonl({"prompt": "a", "model": "x"})), model="y")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"text": "a?"}, "line 1: give either prompt or messages"),
        ({"prompt": "a?", "messages": []}, "give either prompt or messages, not both"),
        ({"prompt": "  "}, "line 1: empty prompt"),
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": [{"content": "a?"}]}, "messages[0] is not a {role, content} object"),
        ({"messages": [{"role": "user"}]}, "messages[0] has no content"),
        ({"prompt": "a?", "acl": "kb-7"}, "acl must be a list of strings"),
    ],
)
def test_a_bad_log_line_names_the_file_and_line(tmp_path: Path, row: Any, expected: str) -> None:
    path = write(tmp_path, "calls.jsonl", jsonl(row, {"prompt": "fine"}))
    with pytest.raises(WarmupFileError) as caught:
        read_log(path)
    assert expected in str(caught.value)
    assert "calls.jsonl line 1: " in str(caught.value)
    assert [c.messages[0]["content"] for c in read_log(path, skip_bad=True).calls] == ["fine"]
