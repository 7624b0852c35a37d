"""``llmcache warmup``: fill a cache from a FAQ file (no model called) or by replaying the most
frequent calls of a log through a model.

    llmcache warmup --url sqlite:///./llmcache.db --faq faq.csv --model myapp.llm:chat
    llmcache warmup --url redis://127.0.0.1:6379/0 --from-log calls.jsonl --top 100 \\
        --adapter litellm --model gpt-4o-mini --concurrency 8

For ``--adapter langchain``, ``--model`` is ``module:attribute`` naming the app's chat model,
or a function or class that builds it when called with no arguments (the current directory is
importable, as for ``uvicorn``). For ``--adapter litellm`` it is the model name the app passes.
The files' formats are in ``llmcache.warmup.faq`` and ``llmcache.warmup.log`` (and the README).

Exit codes: 0 done (failed rows or calls are counted in the summary), 1 the cache could not be
used, or nothing could be warmed because every row or call failed; 2 a usage error or a bad file.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmcache._optional import require
from llmcache._sentinel import UNSET
from llmcache.cache import Cache
from llmcache.cli.demo import check_tiers
from llmcache.cli.params import Seconds
from llmcache.errors import ConfigError
from llmcache.redact import describe_error, redact_url, redact_value
from llmcache.warmup import (
    DEFAULT_CONCURRENCY,
    FAQ_TAGS,
    CallLog,
    WarmupReport,
    WarmupTarget,
    read_faq,
    read_log,
    replay_calls,
    warm_faq,
)
from llmcache.warmup.faq import FORMATS

ADAPTERS = ("langchain", "litellm")
#: Bad rows and failures listed under the summary table (``--json`` has them all).
SHOWN = 10


@click.command()
@click.option(
    "--url", "urls", multiple=True, required=True, help="A tier URL, top tier first (repeatable)."
)
@click.option("--semantic", metavar="URL", default=None, help="The semantic tier's URL, if any.")
@click.option(
    "--faq", "faq_path", metavar="FILE", help="CSV or JSONL of questions and answers to store."
)
@click.option("--from-log", "log_path", metavar="FILE", help="JSONL log of calls to replay.")
@click.option(
    "--top", type=click.IntRange(min=1), help="With --from-log: replay the N most frequent calls."
)
@click.option(
    "--adapter", type=click.Choice(ADAPTERS), default="langchain", show_default=True,
    help="Which front door the app uses: the entries are keyed as it keys them.",
)  # fmt: skip
@click.option(
    "--model",
    "model_spec",
    required=True,
    help="langchain: module:attribute of the chat model (or of a zero-argument factory); "
    "litellm: the model name.",
)
@click.option("--mock-response", help="litellm: answer with this text instead of calling a model.")
@click.option("--system", "system_prompt", help="The system message the app sends, if any.")
@click.option("--namespace", help="The adapter's namespace, if the app sets one.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="With --from-log: calls in flight at once.",
)
@click.option(
    "--tag", "tags", multiple=True, help="Tag the entries (repeatable)  [default: faq for --faq]"
)
@click.option(
    "--ttl",
    type=Seconds(min=0, min_open=True),  # 0 means "store nothing": no use for a warm-up
    help="Seconds to keep each entry [default: policy's].",
)
@click.option("--format", "faq_format", type=click.Choice(FORMATS), help="--faq file's format.")
@click.option("--log-model", help="With --from-log: count only the calls made to this model.")
@click.option("--skip-bad", is_flag=True, help="Leave bad rows out (listed) instead of stopping.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def warmup(
    urls: tuple[str, ...],
    semantic: str | None,
    faq_path: str | None,
    log_path: str | None,
    top: int | None,
    adapter: str,
    model_spec: str,
    mock_response: str | None,
    system_prompt: str | None,
    namespace: str | None,
    concurrency: int,
    tags: tuple[str, ...],
    ttl: float | None,
    faq_format: str | None,
    log_model: str | None,
    skip_bad: bool,
    as_json: bool,
) -> None:
    """Store FAQ answers (--faq FILE), or replay the --top N calls of a log (--from-log FILE)
    through the model, into the cache at --url."""
    from llmcache.cli.app import _one_line_errors  # app imports this module: import late

    if (faq_path is None) == (log_path is None):
        raise click.UsageError("give one of --faq FILE or --from-log FILE")
    if log_path is not None and top is None:
        raise click.UsageError("--from-log needs --top N (how many of the most frequent calls)")
    if faq_path is not None and (top is not None or log_model is not None):
        raise click.UsageError("--top and --log-model go with --from-log, not --faq")
    if log_path is not None and system_prompt is not None:
        # A log holds each call as it was sent, its system message included: adding one
        # would warm keys the app never asks for.
        raise click.UsageError(
            "--system goes with --faq; a log's calls are replayed as logged (put the system "
            'message in the line: "messages": [{"role": "system", ...}, ...])'
        )
    if mock_response is not None and adapter != "litellm":
        raise click.UsageError("--mock-response is for --adapter litellm")
    with _one_line_errors():
        # The file first: a bad one stops here, before any server is contacted.
        faq = None if faq_path is None else read_faq(faq_path, format=faq_format, skip_bad=skip_bad)
        log = None if log_path is None else read_log(log_path, model=log_model, skip_bad=skip_bad)
        calls = () if log is None else log.top(top or 0)
        total = len(calls) if faq is None else len(faq.rows)
        with _cache(urls, semantic) as cache, _target(
            adapter, cache, model_spec, system_prompt, namespace, mock_response
        ) as target, _progress(total, as_json) as advance:  # fmt: skip
            if faq is not None:
                lifetime = UNSET if ttl is None else ttl
                report = warm_faq(
                    target, faq, tags=tags or FAQ_TAGS, ttl=lifetime, progress=advance
                )
            else:
                replay = replay_calls(
                    target, calls, concurrency=concurrency, tags=tags, progress=advance
                )
                report = asyncio.run(replay)
                report.left_out(log.bad if log is not None else ())
    summary = _summary(report, log, top, faq_path or log_path, adapter, model_spec, urls)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _show(summary, Console())
    if report.failed and not (report.stored or report.already_cached):
        sys.exit(1)


@contextmanager
def _cache(urls: tuple[str, ...], semantic: str | None) -> Iterator[Cache]:
    # A warm-up is not traffic: its stores are not published as the fleet's counters.
    cache = Cache.from_urls(urls, semantic=semantic, fleet_stats=False)
    try:
        check_tiers(cache, urls)
        yield cache
    finally:
        cache.close()


@contextmanager
def _target(
    adapter: str,
    cache: Cache,
    model_spec: str,
    system_prompt: str | None,
    namespace: str | None,
    mock_response: str | None,
) -> Iterator[WarmupTarget]:
    if adapter == "langchain":
        require("langchain_core", extra="langchain", feature="llmcache warmup --adapter langchain")
        from langchain_llmcache import LangChainCache
        from langchain_llmcache.cache import NAMESPACE as LC_NAMESPACE
        from langchain_llmcache.warmup import LangChainWarmup

        model = load_model(model_spec)
        front = LangChainCache(cache, namespace=LC_NAMESPACE if namespace is None else namespace)
        yield LangChainWarmup(front, model, system_prompt=system_prompt)
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download
    require("litellm", extra="litellm", feature="llmcache warmup --adapter litellm")
    import litellm

    from litellm_llmcache import LiteLLMCache
    from litellm_llmcache.request import NAMESPACE as LL_NAMESPACE
    from litellm_llmcache.warmup import LiteLLMWarmup

    front_door = LiteLLMCache(cache, namespace=LL_NAMESPACE if namespace is None else namespace)
    # Replays go through litellm.cache; LiteLLM's banners on a model error would mix into
    # the summary on stdout (the error itself is in the summary).
    before = litellm.cache, litellm.suppress_debug_info
    litellm.cache, litellm.suppress_debug_info = front_door, True
    try:
        yield LiteLLMWarmup(
            front_door, model_spec, system_prompt=system_prompt, mock_response=mock_response
        )
    finally:
        litellm.cache, litellm.suppress_debug_info = before


def load_model(spec: str) -> Any:
    """The object ``module:attribute`` names; called with no arguments when it is a factory
    (a function, or a class) rather than a model."""
    module_name, _, path = spec.partition(":")
    if not module_name or not path:
        raise ConfigError(
            f"--model {spec!r}: expected module:attribute, e.g. myapp.llm:chat_model "
            "(or a zero-argument factory such as myapp.llm:make_chat_model)"
        )
    if os.getcwd() not in sys.path:  # the app's own modules, as `python -m` would find them
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--model {spec!r}: cannot import {module_name} ({exc})") from None
    except (Exception, SystemExit) as exc:
        # The app's own module failed as it ran (a SyntaxError, a missing setting, a script
        # that parses its argv and exits): a bad --model, said in one line, not a traceback.
        raise ConfigError(
            f"--model {spec!r}: importing {module_name} failed ({describe_error(exc)})"
        ) from None
    for name in path.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise ConfigError(f"--model {spec!r}: {module_name} has no attribute {path}") from None
        except Exception as exc:  # a module __getattr__ or a property that raises
            raise ConfigError(
                f"--model {spec!r}: reading {path} failed ({describe_error(exc)})"
            ) from None
    from langchain_core.language_models import BaseLanguageModel

    if not isinstance(found, BaseLanguageModel) and callable(found):
        try:
            found = found()
        except Exception as exc:
            raise ConfigError(
                f"--model {spec!r}: calling it failed ({describe_error(exc)})"
            ) from None
    return found


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[], None] | None]:
    if quiet:
        yield None
        return
    columns = (TextColumn("warming"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("warmup", total=total)
        yield lambda: progress.advance(task)


def _summary(
    report: WarmupReport,
    log: CallLog | None,
    top: int | None,
    path: str | None,
    adapter: str,
    model_spec: str,
    urls: tuple[str, ...],
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "source": "faq" if log is None else "log",
        "file": path,
        "adapter": adapter,
        "model": model_spec,
        "tiers": [redact_url(u) for u in urls],
        **report.as_dict(),
    }
    # A model's error can quote a credential (an API key in its message): key-shaped tokens
    # are hidden here, as everything else the CLI shows of a model or a stored value.
    summary["errors"] = [redact_value(error) for error in summary["errors"]]
    if log is not None:
        summary["log"] = {
            "records": log.records,
            "distinct_calls": len(log.calls),
            "other_models": log.other_models,
            "top": top,
        }
    return summary


def _show(summary: dict[str, Any], console: Console) -> None:
    source = "FAQ" if summary["source"] == "faq" else "log"
    # The file, model and URLs are the user's text, shown as given: never read as markup
    # (a file faq[v2].csv was shown as faq.csv, and a [/b] in a path raised a traceback).
    console.print(
        f"[bold]llmcache warmup[/]: {source} {escape(str(summary['file']))} through "
        f"{summary['adapter']} ({escape(summary['model'])}) into "
        f"{escape(' -> '.join(summary['tiers']))}",
        soft_wrap=True,
    )
    table = Table(title="warm-up")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("stored", str(summary["stored"]))
    table.add_row("skipped", str(summary["skipped"]))
    table.add_row("failed", str(summary["failed"]))
    table.add_row("elapsed", f"{summary['elapsed_seconds']:.2f} s")
    if "log" in summary:
        log = summary["log"]
        table.add_row("calls in the log", str(log["records"]))
        table.add_row("distinct calls", str(log["distinct_calls"]))
        table.add_row("model calls made", str(summary["model_calls"]))
        table.add_row("already cached", str(summary["already_cached"]))
    console.print(table)
    for bad in summary["bad_rows"][:SHOWN]:
        console.print(f"skipped line {bad['line']}: {bad['reason']}", soft_wrap=True, markup=False)
    for error in summary["errors"][:SHOWN]:
        console.print(f"failed {error}", soft_wrap=True, markup=False)
