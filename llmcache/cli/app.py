"""The click group of the ``llmcache`` command and its ``demo`` subcommand.

Exit codes: 0 done; 1 the cache could not be set up or used (unreachable server, newer
schema...); 2 a usage error (click's own, or a bad tier URL or option); 130 interrupted.
Errors are one line on stderr, never a traceback: the message already names the fix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

import llmcache
from llmcache.cli.demo import PROVIDERS, DemoConfig, no_progress, run_demo
from llmcache.cli.inspect_entries import inspect
from llmcache.cli.invalidate import invalidate
from llmcache.cli.params import Seconds
from llmcache.cli.reindex import reindex
from llmcache.cli.render import as_dict, progress_bar, show
from llmcache.cli.transfer import export, import_
from llmcache.cli.warmup import warmup
from llmcache.cli.workload import USERS
from llmcache.errors import ConfigError, LLMCacheError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(llmcache.__version__, prog_name="llmcache")
def cli() -> None:
    """llmcache: one shared, scoped, tiered LLM-response cache for LangChain and LiteLLM."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        _fail(str(exc), code=2)
    except LLMCacheError as exc:
        _fail(str(exc), code=1)
    except OSError as exc:  # a file to read or write (export/import): its name and the cause
        _fail(f"{exc.filename or 'file'}: {exc.strerror or exc}", code=1)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)


def _fail(message: str, code: int) -> None:
    click.echo(f"llmcache: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


@cli.command()
@click.option(
    "--calls", type=click.IntRange(min=1), default=200, show_default=True, help="LLM calls per run."
)
@click.option(
    "--users",
    type=click.IntRange(1, len(USERS)),
    default=4,
    show_default=True,
    help="Distinct users (each has its own llmcache.scope).",
)
@click.option(
    "--latency",
    type=Seconds(min=0.0),
    default=0.05,
    show_default=True,
    help="Mean simulated latency of the fake model, in seconds (0.4x to 1.6x).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="SQLite file of the default tiers  [default: a temporary file]",
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="URL",
    help="A tier URL, top tier first; repeat for a chain (replaces memory + SQLite).",
)
@click.option(
    "--memory-size",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Entries the memory tier of the default tiers holds.",
)
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default="fake",
    show_default=True,
    help="fake: simulated model. openai: needs OPENAI_API_KEY and langchain-openai. "
    "auto: openai when both are there.",
)
@click.option("--model", default="gpt-4o-mini", show_default=True, help="Model of a real provider.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the workload.")
@click.option(
    "--warm", is_flag=True, help="Keep the demo's entries from earlier runs (with --db or --url)."
)
@click.option(
    "--semantic",
    metavar="URL",
    is_flag=False,
    flag_value="faiss://:memory:?threshold=0.9",
    default=None,
    help="Add the semantic tier (MiniLM + FAISS); alone: an in-memory FAISS index, or give its "
    "URL, e.g. faiss://./llmcache.faiss?threshold=0.9.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def demo(
    calls: int,
    users: int,
    latency: float,
    db: str | None,
    urls: tuple[str, ...],
    memory_size: int,
    provider: str,
    model: str,
    seed: int,
    warm: bool,
    semantic: str | None,
    as_json: bool,
) -> None:
    """Run a LangChain workload without, then with, llmcache and compare.

    A few users of one tenant ask a Zipf-like mix of repeated support questions; the
    second run goes through set_llm_cache(LangChainCache(cache)).
    """
    if db is not None and urls:
        raise click.UsageError("use --db (the default tiers' SQLite file) or --url, not both")
    config = DemoConfig(
        calls=calls,
        users=users,
        latency=latency,
        seed=seed,
        urls=tuple(urls),
        db=db,
        memory_size=memory_size,
        provider=provider,
        model=model,
        warm=warm,
        semantic=semantic,
    )
    console = Console()
    with _one_line_errors():
        if as_json:
            result = run_demo(config, no_progress)
        else:
            with progress_bar(Console(stderr=True)) as track:
                result = run_demo(config, track)
    if as_json:
        click.echo(json.dumps(as_dict(result), indent=2))
    else:
        show(result, console)


def _urls_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--url`` (repeatable, required): the tier URLs of the cache a command reads."""
    return click.option("--url", "urls", multiple=True, required=True, help=help)


@cli.command()
@_urls_option("A tier URL of the cache (repeatable); its Redis tier holds the fleet's counters.")
@click.option("--json", "as_json", is_flag=True, help="Print the counters as JSON.")
def stats(urls: tuple[str, ...], as_json: bool) -> None:
    """Fleet-wide hits, misses and savings of every process sharing a Redis tier."""
    from llmcache.cli.stats import read_fleet_stats, show_fleet_stats

    with _one_line_errors():
        view = read_fleet_stats(urls)
    if as_json:
        click.echo(json.dumps(view, indent=2, sort_keys=True))
    else:
        show_fleet_stats(view, Console())


@cli.command()
@_urls_option(
    "A tier URL of the cache (repeatable); its first SQL or Redis tier keeps the history."
)
@click.option(
    "--since",
    default=None,
    metavar="AGE",
    help="Only savings of this recent window: 30m, 12h, 7d, 2w  [default: all kept, 31 days]",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write a PNG of the cumulative dollars saved (needs llmcache[report]).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report(urls: tuple[str, ...], since: str | None, chart: Path | None, as_json: bool) -> None:
    """Dollars saved per model: by llmcache's hits and by the provider's prompt cache.

    Priced with LiteLLM's price table (models it does not price are shown as unpriced).
    """
    from llmcache.cli.report import parse_since, read_report, show_report, write_chart

    with _one_line_errors():
        window = None if since is None else parse_since(since)
        savings = read_report(urls, window)
        if chart is not None:
            write_chart(savings, chart)
    if as_json:
        click.echo(json.dumps(savings.as_dict(), indent=2, sort_keys=True))
    else:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: the whole table, not 80 columns of it
            console.width = max(console.width, 132)
        show_report(savings, console)
        if chart is not None:
            click.echo(f"chart written to {chart}")


@cli.command()
@_urls_option("A tier URL of the cache (repeatable).")
@click.option("--semantic", default=None, help="The semantic tier's URL, if any.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(urls: tuple[str, ...], semantic: str | None, as_json: bool) -> None:
    """Check each tier: reachable, latency, schema version, Redis modules.

    Exits 0 when every tier is reachable and sound, 1 otherwise.
    """
    from llmcache.cli.doctor import run_doctor, show_doctor

    with _one_line_errors():
        report = run_doctor(urls, semantic)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        show_doctor(report, Console())
    if not report["ok"]:
        sys.exit(1)


cli.add_command(invalidate)
cli.add_command(warmup)
cli.add_command(export)
cli.add_command(import_)
cli.add_command(inspect)
cli.add_command(reindex)
