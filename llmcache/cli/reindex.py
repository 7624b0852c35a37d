"""``llmcache reindex --semantic URL``: re-embed a semantic index with the embedder its URL names.

An index holds one embedder's vectors and names it (``VectorIndex.bind_embedder``); a semantic
tier with another embedder refuses it, since a cosine between two embedders' vectors means
nothing. After changing embedder (``embedder=`` in the URL, or an upgrade whose default
embedder differs), this command embeds every text the index holds with the new one, replaces
the vectors in place and names the new embedder; the entries themselves (in the exact tiers)
are untouched. Stop the apps that write to the index first: a vector they store meanwhile
with the old embedder would be re-embedded only if the scan has not passed it yet.

An encrypted cache's index holds its texts sealed (encryption at rest): they are opened with
the keys of ``LLMCACHE_ENCRYPTION_KEYS`` (the apps' keys) and the opened text is embedded,
never the sealed one. Without the keys the command stops at the first sealed text (before
writing anything when a sample of the index shows sealed texts); a text that does not open
with them (tampered, moved) could never be served, and its vector goes.

Exit codes: 0 done; 1 the index could not be read or written; 2 usage (a bad URL, an unknown
embedder, an embedder of another width than the index).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from llmcache.redact import redact_url

DEFAULT_BATCH = 256
#: Texts checked before re-embedding starts (sealed texts need the keys).
SAMPLE = 200


@click.command("reindex")
@click.option("--semantic", "url", required=True, help="The semantic tier's URL.")
@click.option(
    "--embedder",
    default=None,
    help="Re-embed with this embedder (minilm, minilm-base, litellm:<model>); "
    "default: the URL's embedder= option, else minilm.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Texts embedded at a time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def reindex(url: str, embedder: str | None, batch: int, as_json: bool) -> None:
    """Re-embed every text of a semantic index with the embedder its URL names."""
    from llmcache.cli.app import _one_line_errors
    from llmcache.cli.existing import check_exists
    from llmcache.semantic.embedders import identity_of
    from llmcache.semantic.url import open_index

    with _one_line_errors():
        check_exists((), url)
        index, chosen = open_index(url, embedder=embedder)
        try:
            read = _opener(redact_url(url))
            sample = index.texts([key.digest for key in index.sample_keys(SAMPLE)])
            for digest, (_, text) in sample.items():  # sealed texts without keys: stop here
                read(digest, text)
            identity = identity_of(chosen)
            with Progress(
                SpinnerColumn(),
                TextColumn("re-embedded {task.completed} texts"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=as_json,
                transient=True,
            ) as progress:
                task = progress.add_task("reindex", total=None)
                done = index.reembed(
                    chosen.embed,
                    identity,
                    batch=batch,
                    progress=lambda n: progress.advance(task, n),
                    read=read,
                )
        finally:
            index.close()
    if as_json:
        summary = {"reembedded": done, "embedder": identity, "index": redact_url(url)}
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo(f"re-embedded {done} texts with {identity}; the index now names it")


def _opener(shown: str) -> Callable[[bytes, str], str | None]:
    """``read`` for ``reembed``: a sealed text opened with ``LLMCACHE_ENCRYPTION_KEYS`` (as
    ``Cache._open_text`` does), a plain one as it is; None for a sealed text that does not
    open (no cache would serve it). Raises ConfigError when sealed texts meet no keys, or a
    key id that is not configured: embedding the sealed bytes would ruin every vector."""
    from llmcache.cache import SEALED_TEXT
    from llmcache.crypto import Sealer, UnknownKeyError
    from llmcache.errors import CodecError, ConfigError

    sealer = Sealer.from_env()

    def read(digest: bytes, text: str) -> str | None:
        if not text.startswith(SEALED_TEXT):
            return text
        if sealer is None:
            raise ConfigError(
                f"the semantic index {shown} holds texts sealed by encryption at rest; set "
                "LLMCACHE_ENCRYPTION_KEYS to the apps' keys to re-embed them"
            )
        try:
            raw = base64.b64decode(text[len(SEALED_TEXT) :], validate=True)
            plain = sealer.open(raw, digest + b"/text")
        except UnknownKeyError as exc:
            raise ConfigError(
                f"the semantic index {shown} holds a text {exc}; add that key to "
                "LLMCACHE_ENCRYPTION_KEYS (the apps' keys) and run it again"
            ) from None
        except (CodecError, ValueError):
            return None
        return plain.decode("utf-8", "replace")

    return read
