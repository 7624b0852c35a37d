"""Turning errors and URLs into log text that never carries secrets or stored data."""

from __future__ import annotations

import re
from typing import Any

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.I)
_SECRET_PARAM = re.compile(
    r"(?P<k>(?:api[_-]?key|password|passwd|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&)]+", re.I
)
_MAX_CHARS = 300
#: A field whose name says it holds a secret: its whole value is hidden.
_SECRET_NAME = re.compile(
    r"(?:.*[_-])?(?:api[_-]?key|password|passwd|token|secret|authorization)", re.I
)
#: API keys by their usual shapes, wherever they appear in a text (sk-..., sk-proj-..., ...).
_KEY_SHAPED = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}")


def redact_url(url: str) -> str:
    """``mysql://root:s3cret@h/db`` -> ``mysql://root:***@h/db``."""
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", url)


def redact(text: str) -> str:
    return _SECRET_PARAM.sub(r"\g<k>***", redact_url(text))


def describe_error(exc: BaseException) -> str:
    """One line naming what failed, without SQL parameters, stored values or passwords.

    SQLAlchemy errors embed the statement and its parameters (our keys and payloads: user
    prompts) in ``str(exc)``; the driver's own error in ``exc.orig`` has just the cause.
    """
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).splitlines()[0] if str(cause) else ""
    text = redact(text)
    if len(text) > _MAX_CHARS:
        text = text[:_MAX_CHARS] + "..."
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def redact_value(value: Any) -> Any:
    """A JSON-like value fit to show: fields named like secrets hidden (``"api_key": "***"``),
    and every string passed through ``redact`` and stripped of key-shaped tokens. (Redacting
    the value's JSON text instead would miss secrets inside escaped, nested strings.)"""
    if isinstance(value, str):
        return _KEY_SHAPED.sub("***", redact(value))
    if isinstance(value, dict):
        return {
            redact_value(str(k)): "***" if _SECRET_NAME.fullmatch(str(k)) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
