"""``opsctl db``: what a database administrator needs to set up monitoring."""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl.cli.common import EXIT_BAD_INPUT, EXIT_UNKNOWN, JsonOption, emit_json, fail

app = typer.Typer(help="Set up databases for inspection.", no_args_is_help=True)


@app.command("privileges")
def privileges(
    engine: Annotated[
        str, typer.Argument(help="Database engine: postgresql, mysql, mariadb, oracle or dm.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Print the minimum grants of the monitoring user for ENGINE, to give to its DBA."""
    from opsctl.databases import ENGINE_MODULES, DbError, engine_module

    name = engine.strip().lower()
    if name not in ENGINE_MODULES:
        known = ", ".join(ENGINE_MODULES)
        raise fail(f"unknown engine {engine!r} (known: {known})", EXIT_BAD_INPUT)
    try:
        text = str(engine_module(name).PRIVILEGES).strip()
    except (DbError, ImportError, AttributeError) as error:
        raise fail(f"the {name} engine module cannot be loaded: {error}", EXIT_UNKNOWN) from None
    if as_json:
        emit_json({"engine": name, "privileges": text})
    else:
        typer.echo(text)
