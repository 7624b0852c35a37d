"""``llmcache inspect``: what the cache holds, entry by entry, from the shell.

``llmcache inspect --url URL [--tag T] [--user U --tenant T | --scope ...] [--model M]`` lists
entries (key prefix, model, tags, created, expires, size, usage), read a page at a time from
one tier (``--tier``, by default the last ``--url``); ``llmcache inspect --url URL KEY`` shows
one entry in full, its value pretty-printed (KEY: its digest in hex, or enough of its start).
``--json`` prints the same as JSON for scripts.

Everything shown passes through ``llmcache.redact`` (fields named like secrets and key-shaped
tokens hidden): an API key that reached a stored value never reaches the terminal. Table cells
are plain text (a tag like ``[red]`` is shown, not interpreted as markup).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import islice
from typing import Any

import click
from rich.console import Console, Group
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from llmcache.cache import Cache
from llmcache.cli.existing import open_existing
from llmcache.cli.selection import Selection, selection_options
from llmcache.errors import ConfigError, LLMCacheError
from llmcache.redact import redact, redact_value
from llmcache.stored import StoredEntry

_HEX = re.compile(r"[0-9a-f]{4,64}")
KEY_SHOWN = 12  # hex characters of a key the table shows


@click.command("inspect")
@click.option("--url", "urls", multiple=True, required=True, help="A tier URL (repeatable).")
@click.option("--tier", default=None, help="The tier to read (a name; default: the last --url).")
@selection_options
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="Entries listed at most.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("key", required=False)
def inspect(
    urls: tuple[str, ...],
    tier: str | None,
    selection: Selection,
    limit: int,
    as_json: bool,
    key: str | None,
) -> None:
    """List stored entries, or show the entry KEY in full."""
    from llmcache.cli.app import _one_line_errors  # app imports this module: import late

    with _one_line_errors():
        if key is not None and not _HEX.fullmatch(key.lower()):
            raise ConfigError("KEY is an entry's digest in hex (at least its first 4 digits)")
        cache = open_existing(urls)
        try:
            if key is not None:
                found = _find(cache, selection, tier, key.lower())
            else:
                listed = list(islice(_entries(cache, selection, tier), limit + 1))
        finally:
            cache.close()
    console = Console()
    if not console.is_terminal:  # a file or a pipe: the whole table, not 80 columns of it
        console.width = max(console.width, 132)
    if key is not None:
        shown = describe(found, full=True)
        if as_json:
            click.echo(json.dumps(shown, indent=2, sort_keys=True))
        else:
            console.print(_panel(shown))
        return
    more = len(listed) > limit
    rows = [describe(stored, full=False) for stored in listed[:limit]]
    if as_json:
        click.echo(json.dumps({"entries": rows, "more": more}, indent=2, sort_keys=True))
    else:
        console.print(_table(rows))
        if more:
            console.print(Text(f"(more entries than --limit {limit}; narrow with the filters)"))


def _entries(cache: Cache, selection: Selection, tier: str | None) -> Iterator[StoredEntry]:
    return cache.entries(
        **selection.filters(),
        tier=tier,
    )


def _find(cache: Cache, selection: Selection, tier: str | None, prefix: str) -> StoredEntry:
    found = (s for s in _entries(cache, selection, tier) if s.key.hex.startswith(prefix))
    matches = list(islice(found, 2))  # a second one is enough to refuse
    if not matches:
        raise LLMCacheError(f"no entry whose key starts with {prefix} (in the tier read)")
    if len(matches) > 1:
        raise ConfigError(f"several entries have keys starting with {prefix}; give more")
    return matches[0]


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")


def describe(stored: StoredEntry, *, full: bool) -> dict[str, Any]:
    """What is shown of an entry, secrets redacted (``full``: its value and digests too)."""
    entry = stored.entry
    shown: dict[str, Any] = {
        "key": stored.key.hex,
        "tier": stored.tier,
        "size": stored.size,
        "expires": _when(stored.expires_at),
        "unreadable": stored.unreadable,
    }
    if entry is not None:
        shown.update(
            model=redact_value(entry.model),
            tags=[redact_value(t) for t in entry.tags],
            created=_when(entry.created_at),
            usage={"input_tokens": entry.usage[0], "output_tokens": entry.usage[1]},
        )
    if full:
        shown.update(scope=stored.key.scope.hex(), namespace=stored.key.namespace.hex())
        if entry is not None:
            shown["value"] = redact_value(entry.value)
    return shown


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"llmcache: {len(rows)} entries")
    # The key prefix (what `inspect KEY` takes) and the times are never cut or wrapped: a
    # narrow table squeezes model and tags instead (an expiry was shown as "2026-12-08…").
    table.add_column("key", no_wrap=True, min_width=KEY_SHOWN)
    table.add_column("model")
    table.add_column("tags")
    table.add_column("created (UTC)", no_wrap=True, min_width=16)
    table.add_column("expires (UTC)", no_wrap=True, min_width=16)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("usage", no_wrap=True)
    for row in rows:
        usage = row.get("usage")
        table.add_row(
            Text(row["key"][:KEY_SHOWN]),
            Text(row.get("model") or "?"),
            Text(", ".join(row.get("tags", ()))),
            Text(_minute(row.get("created")) or "?"),
            Text(_minute(row["expires"]) or "never"),
            Text(f"{row['size']:,}"),
            Text(f"{usage['input_tokens']}/{usage['output_tokens']}" if usage else redact(
                row["unreadable"] or ""
            )),
        )  # fmt: skip
    return table


def _minute(when: str | None) -> str | None:
    """``2026-12-08T01:38:24+00:00`` -> ``2026-12-08 01:38`` (the table's columns say UTC)."""
    return None if when is None else when[:16].replace("T", " ")


def _panel(shown: dict[str, Any]) -> Panel:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    for name in ("key", "tier", "scope", "namespace", "model", "tags", "created", "expires"):
        value = shown.get(name)
        text = ", ".join(value) if isinstance(value, list) else str(value or "-")
        facts.add_row(name, Text(text))
    facts.add_row("size", Text(f"{shown['size']:,} bytes"))
    if "usage" in shown:
        facts.add_row("usage", Text(f"{shown['usage']['input_tokens']} in, "
                                    f"{shown['usage']['output_tokens']} out"))  # fmt: skip
    if shown.get("unreadable"):
        facts.add_row("unreadable", Text(str(shown["unreadable"])))
    parts: list[Any] = [facts]
    if "value" in shown:
        parts.append(Panel(JSON(json.dumps(shown["value"])), title="value"))
    return Panel(Group(*parts), title=f"entry {shown['key'][:KEY_SHOWN]}")
