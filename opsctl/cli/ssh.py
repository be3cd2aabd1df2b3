"""``opsctl ssh``: check that opsctl can reach and log in to a host over SSH."""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    InventoryOption,
    JsonOption,
    emit_json,
    fail,
    load_inventory,
)

app = typer.Typer(help="Test SSH access to inventory hosts.", no_args_is_help=True)

#: Exit code when a step fails: the host cannot be inspected, which is CRITICAL.
EXIT_FAILED = 2


@app.command("test")
def test(
    host: Annotated[str, typer.Argument(help="Host name in the inventory.")],
    inventory: InventoryOption = "inventory.yaml",  # type: ignore[assignment]
    site: Annotated[
        str | None, typer.Option("--site", "-s", help="The host's site, if the name is in several.")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds allowed for each step.")] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Say, one line each, whether DNS, TCP, the host key, authentication and a command work."""
    from opsctl.inventory import Host
    from opsctl.ssh import default_pool, diagnose

    loaded = load_inventory(inventory, as_json=as_json)
    found = [
        (each_site.name, each)
        for each_site in loaded.inventory.sites
        for each in each_site.hosts
        if each.name == host and (site is None or each_site.name == site)
    ]
    if not found:
        raise fail(
            f"{inventory}: no host named {host!r}" + (f" in site {site!r}" if site else ""),
            EXIT_BAD_INPUT,
        )
    if len(found) > 1:
        sites = ", ".join(name for name, _ in found)
        raise fail(
            f"host {host!r} is in several sites ({sites}); choose one with --site", EXIT_BAD_INPUT
        )
    site_name, target = found[0]
    assert isinstance(target, Host)
    if target.transport != "ssh":
        raise fail(
            f"{site_name}/{host} uses transport {target.transport!r}, not ssh", EXIT_BAD_INPUT
        )

    pool = default_pool()
    try:
        steps = diagnose(target, pool, timeout=timeout)
    finally:
        pool.close_all()
    failed = any(step.ok is False for step in steps)
    if as_json:
        emit_json(
            {
                "host": f"{site_name}/{host}",
                "ok": not failed,
                "steps": [{"name": s.name, "ok": s.ok, "message": s.message} for s in steps],
            }
        )
    else:
        width = max(len(step.name) for step in steps)
        for step in steps:
            verdict = {True: "OK", False: "FAILED", None: "SKIPPED"}[step.ok]
            typer.echo(f"{step.name.ljust(width)}  {verdict.ljust(7)}  {step.message}")
    raise typer.Exit(EXIT_FAILED if failed else 0)
