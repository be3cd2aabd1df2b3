"""``opsctl check``: run checks, list the installed kinds, show a target's history."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, get_origin

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    Format,
    InventoryOption,
    JsonOption,
    OptionalInventoryOption,
    emit_json,
    fail,
    load_inventory,
    local_time,
    open_store,
    open_store_for,
    options,
    print_table,
)

if TYPE_CHECKING:
    from opsctl.contract import CheckResult
    from opsctl.engine import Outcome, Status

app = typer.Typer(help="Run checks, list check kinds, show history.", no_args_is_help=True)


@app.command("run")
def run(
    ctx: typer.Context,
    inventory: InventoryOption = "inventory.yaml",  # type: ignore[assignment]
    site: Annotated[
        list[str] | None, typer.Option("--site", "-s", help="Only this site (repeatable).")
    ] = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Only this check kind (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only targets with this tag (repeatable).")
    ] = None,
    output: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    as_json: JsonOption = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=512, help="Checks run at the same time.")
    ] = 16,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Record results in the store.")
    ] = True,
    retry: Annotated[
        bool,
        typer.Option("--retry/--no-retry", help="Re-check soft problem states within this run."),
    ] = True,
) -> None:
    """Run the inventory's checks now and show the results.

    The exit code is the worst state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    from opsctl.contract import worst
    from opsctl.engine import Engine

    output = Format.json if as_json else output
    loaded = load_inventory(inventory, as_json=output == Format.json)
    chosen = loaded.select(sites=site or (), targets=target or (), kinds=kind or (), tags=tag or ())
    if not chosen:
        raise fail(f"{inventory}: no enabled check matches the filters", EXIT_BAD_INPUT)

    sink = None
    previous: dict[str, Status] = {}
    previous_results: dict[str, CheckResult] = {}
    database = None
    if store:
        from opsctl.runner import StoreSink, previous_of

        database = open_store(ctx, loaded)
        sink = StoreSink(database)
        previous, previous_results = previous_of(database, chosen)

    engine = Engine(concurrency=concurrency, sink=sink, retry=retry, store=database)
    try:
        if output == Format.table and sys.stderr.isatty():
            outcomes = _run_with_progress(engine, chosen, previous, previous_results)
        else:
            outcomes = engine.run(chosen, previous, previous_results=previous_results)
    finally:
        if database is not None:
            database.close()
        # SSH and database connections are pooled for the length of the run; end them.
        if "opsctl.ssh" in sys.modules:
            sys.modules["opsctl.ssh"].default_pool().close_all()
        if "opsctl.databases" in sys.modules:
            sys.modules["opsctl.databases"].default_pool().close_all()

    _show(outcomes, output)
    raise typer.Exit(int(worst(o.result.state for o in outcomes)))


def _run_with_progress(
    engine: Any, chosen: list[Any], previous: dict[str, Any], previous_results: dict[str, Any]
) -> list[Outcome]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("checks"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=_stderr_console(),
    ) as progress:
        task = progress.add_task("checks", total=len(chosen))
        seen: set[str] = set()

        def advance(outcome: Outcome) -> None:
            # A soft problem will be checked again; only a final outcome completes a check.
            if outcome.status.state_type == "hard" or not engine.retry:
                seen.add(outcome.check.id)
                progress.update(task, completed=len(seen))

        return engine.run(chosen, previous, on_outcome=advance, previous_results=previous_results)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _show(outcomes: list[Outcome], output: Format) -> None:
    from opsctl.contract import worst

    if output == Format.json:
        emit_json(
            {
                "worst": int(worst(o.result.state for o in outcomes)),
                "results": [
                    {
                        "id": o.check.id,
                        "site": o.check.site.name,
                        "target": o.check.target.name,
                        "kind": o.check.kind,
                        "name": o.check.name,
                        "state_type": o.status.state_type,
                        "attempt": o.status.attempt,
                        "since": o.status.since.isoformat(),
                        **o.result.to_dict(),
                    }
                    for o in outcomes
                ],
            }
        )
        return
    if output == Format.nagios:
        from opsctl.nagios import format_results

        typer.echo(format_results([(o.check.id, o.result) for o in outcomes]))
        return
    rows = []
    for o in sorted(outcomes, key=lambda o: (-int(o.result.state), o.check.id)):
        state = o.result.state.name + (" (soft)" if o.status.state_type == "soft" else "")
        duration = "-" if o.result.duration is None else f"{o.result.duration * 1000:.0f}ms"
        rows.append([state, o.check.id, duration, o.result.summary])
    print_table("opsctl check run", ["STATE", "CHECK", "TIME", "SUMMARY"], rows, state_column=0)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result.state.name] = counts.get(o.result.state.name, 0) + 1
    order = ["CRITICAL", "UNKNOWN", "WARNING", "OK"]
    typer.echo(
        f"{len(outcomes)} checks: "
        + ", ".join(f"{counts[s]} {s.lower()}" for s in order if s in counts)
    )


@app.command("list")
def list_kinds(as_json: JsonOption = False) -> None:
    """List the installed check kinds and their configuration fields."""
    from opsctl import registry
    from opsctl.inventory import CheckSpec

    kinds: list[dict[str, Any]] = []
    for kind in registry.kinds():
        try:
            check_class = registry.load(kind)
        except registry.RegistryError as error:
            kinds.append({"kind": kind, "error": str(error), "targets": [], "fields": []})
            continue
        doc = (check_class.__doc__ or "").strip().splitlines()
        kinds.append(
            {
                "kind": kind,
                "description": doc[0] if doc else "",
                "targets": sorted(check_class.targets),
                "fields": [
                    _field(name, info) for name, info in check_class.Config.model_fields.items()
                ],
            }
        )
    common = [_field(name, info) for name, info in CheckSpec.model_fields.items() if name != "kind"]
    if as_json:
        emit_json({"kinds": kinds, "common_fields": common})
        return
    for entry in kinds:
        typer.echo(f"{entry['kind']}  ({', '.join(entry['targets'])})")
        if "error" in entry:
            typer.echo(f"    error: {entry['error']}")
            continue
        if entry["description"]:
            typer.echo(f"    {entry['description']}")
        for field in entry["fields"]:
            typer.echo(_field_line(field))
        typer.echo("")
    typer.echo("every kind also takes:")
    for field in common:
        typer.echo(_field_line(field))


def _field(name: str, info: Any) -> dict[str, Any]:
    annotation = info.annotation
    if get_origin(annotation) is None and hasattr(annotation, "__name__"):
        type_name = annotation.__name__
    else:
        type_name = str(annotation).replace("typing.", "")
    if "Range" in str(annotation):
        type_name = "range"
    elif "timedelta" in str(annotation):
        type_name = "duration"
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if default is not None and not isinstance(default, str | int | float | bool | list | dict):
        default = _default_text(default)
    return {
        "name": name,
        "type": type_name,
        "required": info.is_required(),
        "default": default,
        "description": info.description or "",
    }


def _default_text(value: Any) -> str:
    from opsctl.duration import format_duration

    if isinstance(value, timedelta):
        return format_duration(value)
    text = str(value)
    unit = getattr(value, "unit", "")
    return f"{text}{unit}" if text and unit else text


def _field_line(field: dict[str, Any]) -> str:
    default = "required" if field["required"] else f"default {field['default']!r}"
    line = f"    {field['name']}: {field['type']} ({default})"
    return f"{line}  {field['description']}" if field["description"] else line


@app.command("history")
def history(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="Target name (host, database, log source or endpoint).")
    ],
    since: Annotated[str, typer.Option(help="How far back: 30m, 12h, 7d...")] = "7d",
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Only this check kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many results.")] = 200,
    as_json: JsonOption = False,
    inventory: OptionalInventoryOption = None,
) -> None:
    """Show the stored results of one target, newest first."""
    from opsctl.contract import utc_now
    from opsctl.duration import parse_duration

    try:
        window = parse_duration(since)
    except ValueError as error:
        raise fail(f"--since: {error}") from None
    database, zones = open_store_for(ctx, inventory)
    try:
        rows = database.history(target, utc_now() - window, site=site, kind=kind, limit=limit)
    finally:
        database.close()
    if as_json:
        emit_json(
            {
                "target": target,
                "since": (utc_now() - window).isoformat(),
                "results": [
                    {
                        "check_id": r.check_id,
                        "kind": r.kind,
                        "state": r.state.name,
                        "state_type": r.state_type,
                        "attempt": r.attempt,
                        "summary": r.summary,
                        "started": r.started.isoformat(),
                        "duration": r.duration,
                    }
                    for r in rows
                ],
            }
        )
        return
    if not rows:
        typer.echo(f"no results for {target} in the last {since}")
        return
    default_tz = options(ctx).tz
    table = [
        [
            local_time(r.started, zones.get(r.site, default_tz)),
            r.state.name + (" (soft)" if r.state_type == "soft" else ""),
            r.check_id,
            r.summary,
        ]
        for r in rows
    ]
    print_table(
        f"history of {target} since {since}",
        ["TIME", "STATE", "CHECK", "SUMMARY"],
        table,
        state_column=1,
    )
