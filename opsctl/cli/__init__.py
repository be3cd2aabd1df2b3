"""The ``opsctl`` command: one Typer sub-app per noun, global options in the callback.

Heavy modules (pydantic models, SQLAlchemy, psutil, rich tables) are imported inside the
commands that need them, never here: ``opsctl --help`` must start as fast as a bare Typer app.
"""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl import __version__
from opsctl.cli import (
    alert,
    backup,
    check,
    db,
    duty,
    fleet,
    incident,
    inventory,
    maintenance,
    notify,
    schedule,
    server,
    ssh,
    status,
    token,
)
from opsctl.cli.common import Options

app = typer.Typer(
    name="opsctl",
    help="Inspection, monitoring and reporting for hospital and public-health information systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(alert.app, name="alert")
app.add_typer(backup.app, name="backup")
app.add_typer(check.app, name="check")
app.add_typer(db.app, name="db")
app.add_typer(duty.app, name="duty")
app.add_typer(fleet.app, name="fleet")
app.add_typer(incident.app, name="incident")
app.add_typer(inventory.app, name="inventory")
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(notify.app, name="notify")
app.add_typer(schedule.app, name="schedule")
app.add_typer(ssh.app, name="ssh")
app.add_typer(token.app, name="token")
app.command("server")(server.server)
app.command("status")(status.status)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="OPSCTL_DB",
            help="Store: a SQLAlchemy URL or a SQLite file path (default: the inventory's store.url, "
            "else a file in the user's data directory).",
            show_envvar=True,
        ),
    ] = None,
    tz: Annotated[
        str,
        typer.Option(
            "--tz", envvar="OPSCTL_TZ", help="Time zone for times shown when no site gives one."
        ),
    ] = "Asia/Shanghai",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Inspection, monitoring and reporting for hospital and public-health information systems."""
    ctx.obj = Options(db=db, tz=tz)


def main() -> None:
    """Entry point of the ``opsctl`` console script."""
    app()
