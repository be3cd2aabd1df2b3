"""The ``opsctl-agent`` command.

``opsctl-agent --config /etc/opsctl-agent/agent.yaml`` collects every interval and pushes
until stopped (SIGTERM or SIGINT: the current step is finished, the spool stays intact).
``--once`` collects and delivers once (exit 0 when everything was delivered, 1 when data
remains spooled); ``--print`` prints one collected batch as JSON and sends nothing. A wrong
setting is named with its file and line (or flag, or variable) and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from agents import __version__
from agents.config import SERVER_VARIABLE, TOKEN_VARIABLE, AgentConfig, ConfigError, load

log = logging.getLogger("opsctl-agent")

EXIT_OK = 0
EXIT_SPOOLED = 1
EXIT_CONFIG = 2


def parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parse = argparse.ArgumentParser(
        prog="opsctl-agent",
        description="Collect this host's metrics and push them to an opsctl server, "
        "through an on-disk spool that keeps them while the server is unreachable.",
        epilog=f"Environment: {SERVER_VARIABLE} (the server), {TOKEN_VARIABLE} (the token); "
        "they override the config file, and flags override them.",
    )
    parse.add_argument("--config", metavar="PATH", help="YAML config file")
    parse.add_argument(
        "--server", metavar="URL", help="the server, e.g. https://opsctl.example.org"
    )
    parse.add_argument("--token-file", metavar="PATH", help="file holding the push token")
    parse.add_argument("--name", help="this agent's name (default: the host name)")
    parse.add_argument("--interval", metavar="SECONDS", help="seconds between collections")
    parse.add_argument("--spool", metavar="PATH", help="the spool file")
    mode = parse.add_mutually_exclusive_group()
    mode.add_argument(
        "--once",
        action="store_true",
        help="collect and deliver once, then exit (1 if data remains spooled)",
    )
    mode.add_argument(
        "--print", action="store_true", help="print one collected batch as JSON; send nothing"
    )
    parse.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe messages logged to stderr (default: info)",
    )
    parse.add_argument("--version", action="version", version=f"opsctl-agent {__version__}")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: the process's arguments); return the exit
    code: 0 done, 1 data remains spooled after ``--once``, 2 wrong settings or spool."""
    options = parser().parse_args(argv)
    _setup_logging(options.log_level)
    flags = {
        "server": options.server,
        "token_file": options.token_file,
        "name": options.name,
        "interval": options.interval,
        "spool": options.spool,
    }
    try:
        config = load(options.config, flags)
    except ConfigError as error:
        return _fail(str(error))
    if options.print:
        return _print(config)
    try:
        _check_ready(config)
    except ConfigError as error:
        return _fail(str(error))
    return _run(config, once=options.once)


def _fail(message: str) -> int:
    print(f"opsctl-agent: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _setup_logging(level: str) -> None:
    # Under systemd the journal stamps every line itself.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format=f"{stamp}%(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def _check_ready(config: AgentConfig) -> None:
    """Raise ConfigError unless a server and a readable token are set."""
    if config.server is None:
        raise ConfigError(f"no server: set server: in the config, --server or {SERVER_VARIABLE}")
    if config.token is None:
        raise ConfigError(
            f"no token: set token: (env:NAME or file:/path) in the config, --token-file "
            f"or {TOKEN_VARIABLE}"
        )
    config.token.read()


def _print(config: AgentConfig) -> int:
    from agents.collect import Collector
    from agents.loop import build_batch

    batch = build_batch(config, Collector())
    stamped = {
        "sent_at": datetime.now(UTC).isoformat(),
        "spool": {"queued_batches": 0, "dropped_batches": 0, "dropped_samples": 0},
        **batch,
    }
    json.dump(stamped, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK


def _run(config: AgentConfig, once: bool) -> int:
    from agents.collect import Collector
    from agents.loop import Agent
    from agents.push import Pusher
    from agents.spool import Spool, SpoolError

    assert config.server is not None and config.token is not None  # by _check_ready
    try:
        spool = Spool(config.spool, config.spool_max_bytes, config.spool_max_age)
    except SpoolError as error:
        return _fail(str(error))
    pusher = Pusher(config.server, config.token, config.timeout, config.ca_bundle)
    try:
        agent = Agent(config, spool, Collector(), pusher)
        counters = spool.counters()
        log.info(
            "opsctl-agent %s: %s pushes to %s every %gs; spool %s (%d batches queued, "
            "%d dropped so far)",
            __version__,
            config.name,
            config.server,
            config.interval,
            config.spool,
            counters["queued_batches"],
            counters["dropped_batches"],
        )
        if config.server.startswith("http://") and not _loopback(config.server):
            log.warning("the server address is http://: the token and the data travel unencrypted")
        if once:
            return EXIT_OK if agent.once() else EXIT_SPOOLED

        def stop(number: int, frame: FrameType | None) -> None:
            if agent.stopped.is_set():
                raise SystemExit(128 + number)
            log.info("%s: stopping", signal.Signals(number).name)
            agent.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        agent.run()
        log.info("stopped; %d batches spooled", spool.queued)
        return EXIT_OK
    finally:
        pusher.close()
        spool.close()


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


if __name__ == "__main__":
    sys.exit(main())
