"""``llmcache export`` and ``llmcache import``: a cache's entries as JSON Lines, between backends.

``llmcache export --url sqlite:///./llmcache.db -o backup.jsonl`` then
``llmcache import --url redis://host:6379/0 backup.jsonl`` moves a cache from SQLite to Redis
(the format and its rules: ``llmcache.transfer``). Export reads one tier (``--tier``, by default
the last ``--url``); import writes to every ``--url``. With ``--semantic URL`` an export carries
the embedded texts, and an import embeds them with that semantic tier's model and indexes them.

Exit codes: 0 done; 1 the store could not be read or written, the file is not an export,
(export) some entries could not be read: the others are written, or (import) some lines were
invalid: they are listed, the valid ones are imported; 2 usage.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

import click

from llmcache.cache import Cache
from llmcache.cli.existing import open_existing
from llmcache.cli.selection import Selection, selection_options
from llmcache.redact import redact

#: Invalid lines an import prints (the JSON report lists up to transfer.MAX_LISTED_PROBLEMS).
SHOWN_PROBLEMS = 10


def _open_cache(urls: tuple[str, ...], semantic: str | None) -> Cache:
    # An operator's one-off run (an import may create the cache it writes to).
    return Cache.from_urls(urls, semantic=semantic, single_flight_timeout=None, fleet_stats=False)


def _echo_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, sort_keys=True))


@contextmanager
def _output_file(path: str) -> Iterator[IO[bytes]]:
    """The export's file, written beside it and renamed into place once the export ended.

    A failed or interrupted export (a server down, Ctrl-C) then leaves an earlier file of that
    name as it was, never a header-only file that an import would take for an empty backup.
    Anything but a regular file (a device, a FIFO, a symbolic link: ``/dev/stdout``) is
    written in place.
    """
    try:
        regular = stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        regular = True
    if not regular:
        with open(path, "wb") as out:
            yield out
        return
    folder, name = os.path.split(os.path.abspath(path))
    partial = os.path.join(folder, f".{name}.{os.getpid()}.part")
    try:
        with open(partial, "wb") as out:
            yield out
        os.replace(partial, path)
    except OSError as exc:
        if exc.filename != partial:
            raise
        # Named as the user named it, not as the hidden partial file.
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        if os.path.lexists(partial):
            os.unlink(partial)


@click.command("export")
@click.option("--url", "urls", multiple=True, required=True, help="A tier URL (repeatable).")
@click.option("--semantic", default=None, help="The semantic tier's URL: export its texts too.")
@click.option("--tier", default=None, help="The tier to read (a name; default: the last --url).")
@selection_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    required=True,
    help="The file to write (- for stdout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export(
    urls: tuple[str, ...],
    semantic: str | None,
    tier: str | None,
    selection: Selection,
    output: str,
    as_json: bool,
) -> None:
    """Write the cache's entries (all, or those the filters select) as JSON Lines.

    The file holds the answers in the clear (also from an encrypted cache, when this process
    has its keys): keep it as safe as the cache itself. Entries that cannot be read here are
    left out and counted, with exit code 1.
    """
    from llmcache.cli.app import _one_line_errors  # app imports this module: import late

    with _one_line_errors(), ExitStack() as stack:
        cache = open_existing(urls, semantic=semantic)
        stack.callback(cache.close)
        out: IO[bytes] = (
            sys.stdout.buffer if output == "-" else stack.enter_context(_output_file(output))
        )
        report = cache.export_entries(
            out,
            **selection.filters(),
            tier=tier,
        )
        out.flush()
    summary = {
        "exported": report.exported,
        "with_semantic": report.with_semantic,
        "unreadable": report.unreadable,
        "file": output,
    }
    if as_json and output != "-":
        _echo_json(summary)
    else:
        click.echo(
            f"exported {report.exported} entries ({report.with_semantic} with semantic texts) "
            f"to {'stdout' if output == '-' else output}",
            err=True,
        )
    if report.unreadable:
        # An incomplete backup must not pass for a complete one in a script: the file holds
        # what could be read, and the exit code says that something is missing from it.
        click.echo(
            f"llmcache: error: {report.unreadable} of {report.exported + report.unreadable} "
            "entries could not be read here and are not in the file (sealed under encryption "
            "keys this process does not have: set LLMCACHE_ENCRYPTION_KEYS; or undecodable)",
            err=True,
        )
        sys.exit(1)


@click.command("import")
@click.option(
    "--url", "urls", multiple=True, required=True, help="A tier URL (repeatable): all written."
)
@click.option("--semantic", default=None, help="The semantic tier's URL: index the texts there.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_(urls: tuple[str, ...], semantic: str | None, file: str, as_json: bool) -> None:
    """Store the entries of an export FILE in every tier given (- reads stdin).

    Invalid lines are listed with their number and skipped; expired entries are skipped;
    an entry whose key is already stored is replaced.
    """
    from llmcache.cli.app import _one_line_errors

    with _one_line_errors(), ExitStack() as stack:
        cache = _open_cache(urls, semantic)
        stack.callback(cache.close)
        source: IO[bytes] = (
            sys.stdin.buffer if file == "-" else stack.enter_context(open(file, "rb"))
        )
        report = cache.import_entries(source)
    problems = [(line, redact(reason)) for line, reason in report.problems]
    if as_json:
        _echo_json(
            {
                "imported": report.imported,
                "expired": report.expired,
                "rejected": report.rejected,
                "problems": [{"line": line, "reason": reason} for line, reason in problems],
                "embedding_model": report.embedding_model,
            }
        )
    else:
        click.echo(
            f"imported {report.imported} entries; skipped {report.expired} expired and "
            f"{report.rejected} invalid lines"
        )
        for line, reason in problems[:SHOWN_PROBLEMS]:
            click.echo(f"llmcache: line {line}: {reason}", err=True)
        if report.rejected > SHOWN_PROBLEMS:
            click.echo(f"llmcache: ... and {report.rejected - SHOWN_PROBLEMS} more", err=True)
    if report.rejected:
        sys.exit(1)
