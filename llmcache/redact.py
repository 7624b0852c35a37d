"""Turning errors and URLs into log text that never carries secrets or stored data."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.I)
_SECRET_PARAM = re.compile(
    r"(?P<k>(?:api[_-]?key|password|passwd|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&)]+", re.I
)
_MAX_CHARS = 300


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
