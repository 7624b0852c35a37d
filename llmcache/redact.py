"""Turning errors and URLs into log text that never carries secrets or stored data."""

from __future__ import annotations

import re
from typing import Any

#: The scheme is matched from its first character only: tried at every letter of a long word,
#: the scan was quadratic (a stored value of 64 KiB without a space took minutes to show).
#: The password runs to the last ``@`` of the authority, as ``urllib`` reads it (``p@ss``), and
#: may hold a ``/`` (a base64 password), which SQLAlchemy's URL parser accepts unescaped; both
#: were shown in part or whole. Bounded lengths keep every attempt short.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*)"
    r":[^@?#\s]{0,256}@(?:[^@/?#\s]{0,256}@)*",
    re.I,
)
#: What names a secret: a name holding one of these words anywhere (``aws_secret_access_key``,
#: ``secretKey``, ``client_secret``, ``x-api-key``, ``set-cookie``), or ending in ``token``
#: (``access_token``, ``sessionToken``). Not ``tokens`` or ``token_...``: ``max_tokens``,
#: ``prompt_tokens``, ``stop_token_ids`` and ``token_count`` are counts and ids, shown.
_HIDDEN_NAME_WORDS = (
    r"secret|passw(?:or)?d|passphrase|private[_-]?key|credential|cookie|authorization"
    r"|api[_-]?key|access[_-]?key"
)
#: ``name=value`` or ``"name": "value"`` in a text, for a secret's name: the value is hidden,
#: a quoted one up to its closing quote (``passphrase = 'open sesame'``). The name is matched
#: from its first character only, so the scan stays linear in the text (a stored value can be
#: megabytes).
_SECRET_PARAM = re.compile(
    rf"(?P<k>(?<![\w.-])(?=[\w.-]*?(?:{_HIDDEN_NAME_WORDS})|[\w.-]*?token(?![\w.-]))[\w.-]+"
    r"\\?[\"']?\s*[:=]\s*)"
    r"(?:(?P<dq>\\?\")[^\"\\\n]*|(?P<sq>')[^'\n]*"
    # An Authorization header's scheme is not the secret: the credential after it is.
    r"|(?P<scheme>(?:bearer|basic|digest)\s+)?[^\s\"',&)]+)",
    re.I,
)
#: A bearer credential wherever it appears in a text, named or not.
_BEARER = re.compile(r"\b(?P<k>bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I)
_MAX_CHARS = 300
#: A field whose name says it holds a secret: its whole value is hidden.
_SECRET_NAME = re.compile(rf"{_HIDDEN_NAME_WORDS}|token\Z", re.I)
#: API keys by their usual shapes, wherever they appear in a text (sk-..., sk-proj-..., ...).
_KEY_SHAPED = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}")


def redact_url(url: str) -> str:
    """``mysql://root:s3cret@h/db`` -> ``mysql://root:***@h/db``; a query's secrets too
    (``?sentinel_password=s3cret`` -> ``?sentinel_password=***``)."""
    url = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", url)
    head, mark, query = url.partition("?")
    return head + mark + _SECRET_PARAM.sub(_hide_value, query) if mark else url


def _hide_value(found: re.Match[str]) -> str:
    return found["k"] + (found["dq"] or found["sq"] or found["scheme"] or "") + "***"


def redact(text: str) -> str:
    text = _SECRET_PARAM.sub(_hide_value, redact_url(text))
    return _BEARER.sub(r"\g<k>***", text)


def describe_error(exc: BaseException) -> str:
    """One line naming what failed, without SQL parameters, stored values or passwords.

    SQLAlchemy errors embed the statement and its parameters (our keys and payloads: user
    prompts) in ``str(exc)``; the driver's own error in ``exc.orig`` has just the cause.
    """
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).splitlines()[0] if str(cause) else ""
    # A provider's error can quote the key it refused ("Incorrect API key provided: sk-...").
    text = _KEY_SHAPED.sub("***", redact(text))
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
            redact_value(str(k)): "***" if _SECRET_NAME.search(str(k)) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
