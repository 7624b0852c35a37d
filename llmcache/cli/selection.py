"""The options that select entries (``invalidate``, ``export``, ``inspect``): one definition.

A scope is given as ``--user``/``--tenant``/``--acl`` (repeatable) or in one option,
``--scope user=alice,tenant=acme,acl=kb-7,acl=kb-9``; either selects exactly that scope.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast

import click

from llmcache.errors import ConfigError
from llmcache.request import Scope

F = TypeVar("F", bound=Callable[..., Any])


class Selection(NamedTuple):
    tags: tuple[str, ...] | None
    scope: Scope | None
    model: str | None
    namespace: str | None

    @property
    def empty(self) -> bool:
        return (
            self.tags is None
            and self.scope is None
            and self.model is None
            and (self.namespace is None)
        )

    def filters(self) -> dict[str, Any]:
        """As keyword arguments of ``Cache.entries``/``invalidate``/``export_entries``."""
        return {
            "tags": self.tags,
            "scope": self.scope,
            "model": self.model,
            "namespace": self.namespace,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "tags": None if self.tags is None else list(self.tags),
            "scope": None if self.scope is None else self.scope.describe(),
            "model": self.model,
            "namespace": self.namespace,
        }


_OPTION_NAMES = ("tags", "user", "tenant", "acl", "scope_spec", "model", "namespace")


def selection_options(command: F) -> F:
    """Add --tag, --user, --tenant, --acl, --scope, --model and --namespace to a command,
    which receives them as one ``selection: Selection`` (a bad scope: one line, exit 2)."""
    options = [
        click.option(
            "--tag", "tags", multiple=True, help="Entries carrying this tag (repeatable: any)."
        ),
        click.option("--user", help="Entries of exactly this scope: its user ..."),
        click.option("--tenant", help="... its tenant ..."),
        click.option("--acl", "acl", multiple=True, help="... and its ACL groups (repeatable)."),
        click.option(
            "--scope",
            "scope_spec",
            metavar="user=U,tenant=T,acl=G",
            help="The same scope in one option (acl= repeatable).",
        ),
        click.option("--model", help="Entries of this model name (e.g. gpt-4o-mini)."),
        click.option(
            "--namespace", help="Entries of this namespace (e.g. a prompt-template version)."
        ),
    ]

    @functools.wraps(command)
    def with_selection(*args: Any, **kwargs: Any) -> Any:
        from llmcache.cli.app import _one_line_errors  # app imports the commands: import late

        given = {name: kwargs.pop(name) for name in _OPTION_NAMES}
        with _one_line_errors():
            selection = selection_from(**given)
        return command(*args, selection=selection, **kwargs)

    wrapped: Any = with_selection
    for option in reversed(options):
        wrapped = option(wrapped)
    return cast(F, wrapped)


def selection_from(
    tags: tuple[str, ...],
    user: str | None,
    tenant: str | None,
    acl: tuple[str, ...],
    scope_spec: str | None,
    model: str | None,
    namespace: str | None,
) -> Selection:
    """The options' values as a Selection (ConfigError for a malformed --scope: exit 2)."""
    scoped = user is not None or tenant is not None or bool(acl)
    if scope_spec is not None:
        if scoped:
            raise ConfigError("give the scope with --scope or with --user/--tenant/--acl")
        user, tenant, acl = parse_scope(scope_spec)
        scoped = True
    scope = Scope.of(user=user, tenant=tenant, acl=acl) if scoped else None
    return Selection(tags or None, scope, model, namespace)


def parse_scope(spec: str) -> tuple[str | None, str | None, tuple[str, ...]]:
    """``user=alice,tenant=acme,acl=kb-7,acl=kb-9`` -> (user, tenant, acl)."""
    user: str | None = None
    tenant: str | None = None
    acl: list[str] = []
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in ("user", "tenant", "acl"):
            raise ConfigError(
                f"--scope takes user=..., tenant=..., acl=... separated by commas, got {part!r}"
            )
        if name == "acl":
            acl.append(value)
        elif (user if name == "user" else tenant) is not None:
            raise ConfigError(f"--scope gives {name}= twice")
        elif name == "user":
            user = value
        else:
            tenant = value
    return user, tenant, tuple(acl)
