"""``opsctl token``: the server's API tokens — one per agent, one per dispenser vendor."""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    fail,
    load_inventory,
    local_time,
    open_store,
    options,
    print_table,
)

app = typer.Typer(
    help="API tokens of opsctl server: one per agent, one per dispenser vendor.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    ctx: typer.Context,
    agent: Annotated[
        str | None, typer.Option("--agent", help="An agent token: the agent's (host's) name.")
    ] = None,
    vendor: Annotated[
        str | None, typer.Option("--vendor", help="A vendor token: the dispenser vendor's name.")
    ] = None,
    site: Annotated[
        str | None,
        typer.Option("--site", "-s", help="The agent's site (default: the inventory's host's)."),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="A note shown in `token list`.")] = "",
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Create a token and print it once: only its hash is kept."""
    from opsctl.store.tokens import create_token

    if (agent is None) == (vendor is None):
        raise fail("give exactly one of --agent NAME or --vendor NAME")
    loaded = load_inventory(inventory, as_json=as_json) if inventory is not None else None
    scope, subject = ("agent", agent) if agent is not None else ("vendor", vendor)
    assert subject is not None
    if loaded is not None and site is None and scope == "agent":
        sites = sorted(
            {s.name for s in loaded.inventory.sites for h in s.hosts if h.name == subject}
        )
        if len(sites) > 1:
            raise fail(f"host {subject!r} is in several sites ({', '.join(sites)}): give --site")
        if not sites:
            raise fail(
                f"{inventory}: no host named {subject!r}; add it (transport: agent) or give --site"
            )
        site = sites[0]
    if loaded is not None and site is not None:
        if site not in {s.name for s in loaded.inventory.sites}:
            raise fail(f"{inventory}: no site named {site!r}")
    database = open_store(ctx, loaded)
    try:
        try:
            token, row = create_token(database, scope, subject, site=site, note=note)
        except ValueError as error:
            raise fail(str(error), EXIT_BAD_INPUT) from None
    finally:
        database.close()
    if as_json:
        emit_json({"id": row.id, "scope": scope, "subject": subject, "site": site, "token": token})
        return
    typer.echo(token)
    typer.echo(
        f"{scope} token {row.id} for {subject}{f' (site {site})' if site else ''}: "
        "store it now, it is not shown again",
        err=True,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    show_revoked: Annotated[
        bool, typer.Option("--revoked", help="Show revoked tokens too.")
    ] = False,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """List the tokens (never their secrets)."""
    from opsctl.store.tokens import list_tokens

    loaded = load_inventory(inventory, as_json=as_json) if inventory is not None else None
    database = open_store(ctx, loaded)
    try:
        rows = list_tokens(database, include_revoked=show_revoked)
    finally:
        database.close()
    if as_json:
        emit_json(
            [
                {
                    "id": r.id,
                    "prefix": r.prefix,
                    "scope": r.scope,
                    "subject": r.subject,
                    "site": r.site,
                    "note": r.note,
                    "created": r.created.isoformat(),
                    "last_used": r.last_used.isoformat() if r.last_used else None,
                    "revoked": r.revoked.isoformat() if r.revoked else None,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        typer.echo("no tokens")
        return
    tz = options(ctx).tz
    print_table(
        "opsctl tokens",
        ["ID", "PREFIX", "SCOPE", "FOR", "SITE", "CREATED", "LAST USED", "REVOKED", "NOTE"],
        [
            [
                str(r.id),
                r.prefix + "…",
                r.scope,
                r.subject,
                r.site or "-",
                local_time(r.created, tz),
                local_time(r.last_used, tz),
                local_time(r.revoked, tz),
                r.note,
            ]
            for r in rows
        ],
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    ident: Annotated[
        str, typer.Argument(help="Token id, its prefix, or agent:NAME / vendor:NAME (all of them).")
    ],
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Revoke tokens: the server refuses them from now on."""
    from opsctl.store.tokens import revoke_token

    loaded = load_inventory(inventory, as_json=as_json) if inventory is not None else None
    database = open_store(ctx, loaded)
    try:
        rows = revoke_token(database, ident.rstrip("…"))
    finally:
        database.close()
    if as_json:
        emit_json({"revoked": [r.id for r in rows]})
    if not rows:
        raise fail(f"no active token matches {ident!r}")
    if not as_json:
        for r in rows:
            typer.echo(f"revoked {r.scope} token {r.id} ({r.prefix}…) for {r.subject}")
