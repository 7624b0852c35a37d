"""``llmcache invalidate``: remove entries by tag, scope, model, namespace or age, from the shell.

The same call as ``Cache.invalidate``, on the tiers given with ``--url`` (every tier the apps
use, so none keeps a stale answer). Only llmcache's own rows and keys are touched.
"""

from __future__ import annotations

import json
from typing import Any

import click

from llmcache.cli.existing import open_existing
from llmcache.cli.params import Seconds
from llmcache.cli.selection import Selection, selection_options


@click.command()
@click.option(
    "--url",
    "urls",
    multiple=True,
    required=True,
    help="A tier URL of the cache (repeatable): give every tier the apps use.",
)
@selection_options
@click.option(
    "--older-than",
    "older_than",
    type=Seconds(min=0),
    help="Entries created at least this many seconds ago.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def invalidate(
    urls: tuple[str, ...],
    selection: Selection,
    older_than: float | None,
    as_json: bool,
) -> None:
    """Remove the entries that match every criterion given; prints how many.

    The count is per tier, as in Cache.clear(): an entry held by two tiers counts twice.
    --user/--tenant/--acl (or --scope user=..,tenant=..,acl=..) select one exact scope
    (--user alice alone is alice with no tenant and no ACL).
    """
    from llmcache.cli.app import _one_line_errors  # app imports this module: import late

    if selection.empty and older_than is None:
        raise click.UsageError(
            "give at least one of --tag, --user/--tenant/--acl (or --scope), --model, "
            "--namespace, --older-than (removing everything is Cache.clear())"
        )
    with _one_line_errors():
        # Only invalidating: no single-flight, and this process publishes no counters.
        cache = open_existing(urls)
        try:
            removed = cache.invalidate(
                **selection.filters(),
                older_than=older_than,
            )
        finally:
            cache.close()
    if as_json:
        criteria: dict[str, Any] = {**selection.describe(), "older_than": older_than}
        click.echo(json.dumps({"removed": removed, "criteria": criteria}, sort_keys=True))
    else:
        click.echo(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")
