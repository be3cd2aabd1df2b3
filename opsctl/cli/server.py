"""``opsctl server``: the HTTP intake, /metrics and the scheduler, in one process."""

from __future__ import annotations

import gc
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from opsctl.cli.common import (
    EXIT_BAD_INPUT,
    InventoryOption,
    fail,
    load_inventory,
    open_store,
)


def server(
    ctx: typer.Context,
    inventory: InventoryOption = Path("inventory.yaml"),
    listen: Annotated[
        str, typer.Option("--listen", "-l", help="Address and port to listen on.")
    ] = "127.0.0.1:8080",
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Take part in running the schedules and checks (one server at a time does).",
        ),
    ] = True,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its private key.")] = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            min=1.0,
            help="Seconds the scheduler's lease lasts unrenewed; a standby server takes over "
            "within 4/3 of it after the holder dies.",
        ),
    ] = 45.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning.")] = "info",
    openapi: Annotated[
        Path | None,
        typer.Option("--openapi", help="Write the OpenAPI document to this file and exit."),
    ] = None,
) -> None:
    """Serve the agent and dispenser intake, /metrics and /healthz, and run the scheduler."""
    import uvicorn

    from opsctl.server.app import create_app, dump_openapi

    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise fail(f"--listen: expected HOST:PORT like 127.0.0.1:8080, got {listen!r}")
    if (tls_cert is None) != (tls_key is None):
        raise fail("give both --tls-cert and --tls-key, or neither")
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise fail(f"--log-level: expected debug, info, warning or error, got {log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    loaded = load_inventory(inventory)
    store = open_store(ctx, loaded)
    if openapi is None:
        _load_registries(store, loaded)
    service = None
    if scheduler and openapi is None:
        from opsctl.cli.common import store_url
        from opsctl.server.lease import default_holder
        from opsctl.server.scheduler import SchedulerService

        service = SchedulerService(
            store_url(ctx, loaded), loaded, default_holder(), ttl=timedelta(seconds=lease_ttl)
        )
    app = create_app(store, loaded, scheduler=service)
    if openapi is not None:
        openapi.write_text(dump_openapi(app) + "\n", encoding="utf-8")
        store.close()
        return
    # Everything loaded so far lives as long as the process: keep the collector from walking
    # it again at every full collection, which otherwise shows as intake latency spikes.
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(
            app,
            host=host.strip("[]"),
            port=int(port_text),
            log_level=log_level.lower(),
            access_log=level == "DEBUG",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            timeout_graceful_shutdown=10,
        )
    except (OSError, SystemExit) as error:
        raise fail(f"cannot serve on {listen}: {error}", EXIT_BAD_INPUT) from None
    finally:
        store.close()


def _load_registries(store: Any, loaded: Any) -> None:
    """Register the devices of every fleet's ``registry:`` CSV files (paths relative to the
    inventory file) before serving; a missing or broken file stops the server with its name,
    line and field."""
    from opsctl.fleet import Rules
    from opsctl.store.fleet import RegistryInvalid, load_registry

    rules = Rules.from_inventory(loaded.inventory)
    for site_index, site in enumerate(loaded.inventory.sites):
        for fleet_index, fleet in enumerate(site.fleets):
            for entry_index, entry in enumerate(fleet.registry):
                where = f"sites[{site_index}].fleets[{fleet_index}].registry[{entry_index}]"
                path = Path(entry).expanduser()
                if not path.is_absolute():
                    path = loaded.path.parent / path
                if not path.is_file():
                    store.close()
                    raise fail(f"{loaded.path} {where}: no such file {path}")
                try:
                    count = load_registry(store, path, rules)
                except RegistryInvalid as invalid:
                    store.close()
                    for error in invalid.errors:
                        typer.echo(f"{path.parent}/{error}", err=True)
                    raise fail(f"{loaded.path} {where}: {path} is not a valid registry") from None
                logging.getLogger("opsctl.server").info(
                    "%s: %d devices registered for fleet %s/%s", path, count, site.name, fleet.name
                )
