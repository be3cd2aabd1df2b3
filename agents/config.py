"""The agent's settings: a YAML file, overridden by the environment, overridden by flags.

Every mistake becomes a ``ConfigError`` whose message names where the value came from (the
file and line, the flag or the variable), the key, what was expected and what was given,
e.g. ``agent.yaml:3: interval: expected seconds > 0 (got 'fast')``. PyYAML is imported only
when a file is given.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variables that override the file (flags override them in turn).
SERVER_VARIABLE = "OPSCTL_AGENT_SERVER"
TOKEN_VARIABLE = "OPSCTL_AGENT_TOKEN"

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_CHECK_TIMEOUT = 10.0
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_SPOOL_MAX_AGE = 7 * 86400.0
#: The server refuses intervals beyond a day and more check results than this per push.
MAX_INTERVAL = 86400.0
MAX_CHECKS = 200

KEYS = (
    "server",
    "token",
    "name",
    "interval",
    "spool",
    "spool_max_bytes",
    "spool_max_age",
    "ca_bundle",
    "timeout",
    "checks",
)
CHECK_KEYS = ("name", "command", "timeout")

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_.:\-]+")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h|d)?\s*$")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


class ConfigError(Exception):
    """The settings are wrong; the message says where, which key, and what was expected."""


@dataclass(frozen=True, slots=True)
class Token:
    """Where the push token comes from: an environment variable (read once, at start) or a
    file (read at every push, so that an operator's fix is picked up without a restart)."""

    kind: str  # "env" or "file"
    where: str  # the variable's name or the file's path
    origin: str  # where this setting was made, for messages

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """Return the token, stripped of surrounding whitespace.

        Raise ConfigError if the variable is unset or empty, or the file cannot be read or
        is empty.
        """
        if self.kind == "env":
            value = (os.environ if environ is None else environ).get(self.where, "").strip()
            if not value:
                raise ConfigError(f"{self.origin}: environment variable {self.where} is not set")
            return value
        try:
            value = Path(self.where).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"{self.origin}: cannot read token file {self.where}: {error.strerror or error}"
            ) from None
        if not value:
            raise ConfigError(f"{self.origin}: token file {self.where} is empty")
        return value


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One local check: a Nagios plugin run without a shell, killed after ``timeout`` s."""

    name: str
    command: tuple[str, ...]
    timeout: float = DEFAULT_CHECK_TIMEOUT


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent runs with. ``server`` and ``token`` are None when not set (only
    ``--print`` works without them)."""

    name: str
    spool: Path
    server: str | None = None
    token: Token | None = None
    interval: float = DEFAULT_INTERVAL
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    spool_max_age: float = DEFAULT_SPOOL_MAX_AGE
    ca_bundle: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    checks: tuple[CheckSpec, ...] = field(default=())


def default_name(hostname: str | None = None) -> str:
    """Given a host name (default: this host's), return it as an agent name: characters
    outside ``[A-Za-z0-9_.:-]`` become ``-``, a leading non-alphanumeric is dropped, at most
    64 characters; ``agent`` if nothing is left."""
    name = _NOT_IDENTIFIER.sub("-", hostname if hostname is not None else socket.gethostname())
    name = name.lstrip("_.:-")[:64]
    return name or "agent"


def default_spool(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Return the default spool file: ``$STATE_DIRECTORY/spool.db`` under systemd (the first
    directory when it lists several), else ``~/.local/state/opsctl-agent/spool.db``."""
    environ = os.environ if environ is None else environ
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "spool.db"
    return (home or Path.home()) / ".local" / "state" / "opsctl-agent" / "spool.db"


def parse_duration(value: Any) -> float | None:
    """Given seconds (a number) or text like ``30``, ``30s``, ``5m``, ``12h``, ``7d``,
    return the seconds, or None if it is not a duration greater than 0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or ""]
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def parse_size(value: Any) -> int | None:
    """Given bytes (an integer) or text like ``64MiB``, ``500MB``, ``1GiB``, return the
    bytes, or None if it is not a size greater than 0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
    else:
        return None
    return size if size > 0 else None


def load(
    path: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Given the config file's path (or None), the flags that were given (``server``,
    ``token_file``, ``name``, ``interval``, ``spool``; None values are ignored) and the
    environment (default ``os.environ``), return the settings.

    Raise ConfigError naming the file and line (or flag, or variable), the key and what was
    expected, if anything is wrong.
    """
    environ = os.environ if environ is None else environ
    settings: dict[str, tuple[Any, str]] = {}
    if path is not None:
        for key, (value, origin) in _read_file(Path(path)).items():
            settings[key] = (value, origin)
    if environ.get(SERVER_VARIABLE):
        settings["server"] = (environ[SERVER_VARIABLE], SERVER_VARIABLE)
    if environ.get(TOKEN_VARIABLE):
        settings["token"] = (f"env:{TOKEN_VARIABLE}", TOKEN_VARIABLE)
    for key, value in (flags or {}).items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "token_file":
            settings["token"] = (f"file:{value}", flag)
        else:
            settings[key] = (value, flag)
    return _build(settings, environ)


def _read_file(path: Path) -> dict[str, tuple[Any, str]]:
    """Return each top-level key of the YAML file with its value and ``file:line``."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}: expected a mapping of settings (server: ..., token: ...)")
    lines = {
        key_node.value: (key_node.start_mark.line + 1, value_node)
        for key_node, value_node in node.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    result: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        line, value_node = lines.get(str(key), (1, None))
        origin = f"{path}:{line}"
        if key not in KEYS:
            raise ConfigError(f"{origin}: unknown key {key!r} (expected one of {', '.join(KEYS)})")
        if key == "checks" and isinstance(value_node, yaml.SequenceNode):
            # Each check's own line, so that a mistake in the fifth check is found at once.
            value = [
                (item, f"{path}:{item_node.start_mark.line + 1}")
                for item, item_node in zip(value or [], value_node.value, strict=False)
            ]
        result[key] = (value, origin)
    return result


def _build(settings: dict[str, tuple[Any, str]], environ: Mapping[str, str]) -> AgentConfig:
    values: dict[str, Any] = {}

    def fail(key: str, expected: str) -> ConfigError:
        value, origin = settings[key]
        by_file = not origin.startswith("--") and origin not in (SERVER_VARIABLE, TOKEN_VARIABLE)
        shown = f"{origin}: {key}" if by_file else origin
        return ConfigError(f"{shown}: expected {expected} (got {value!r})")

    if "server" in settings:
        server = settings["server"][0]
        if not isinstance(server, str) or not re.match(r"^https?://[^/\s]+(/\S*)?$", server):
            raise fail("server", "the server's address, e.g. https://opsctl.example.org")
        values["server"] = server.rstrip("/")
    if "token" in settings:
        token, origin = settings["token"]
        kind, _, where = token.partition(":") if isinstance(token, str) else ("", "", "")
        if kind not in ("env", "file") or not where.strip():
            raise fail(
                "token",
                "env:NAME or file:/path (the token itself is never written in the config)",
            )
        by_file = not origin.startswith("--") and origin != TOKEN_VARIABLE
        values["token"] = Token(kind, where.strip(), f"{origin}: token" if by_file else origin)
    if "name" in settings:
        name = settings["name"][0]
        if not isinstance(name, str) or len(name) > 64 or not IDENTIFIER.match(name):
            raise fail("name", "a name of letters, digits and _ . : - (at most 64)")
        values["name"] = name
    if "interval" in settings:
        interval = parse_duration(settings["interval"][0])
        if interval is None or interval > MAX_INTERVAL:
            raise fail("interval", "seconds > 0 (at most a day)")
        values["interval"] = interval
    if "timeout" in settings:
        timeout = parse_duration(settings["timeout"][0])
        if timeout is None:
            raise fail("timeout", "seconds > 0")
        values["timeout"] = timeout
    if "spool_max_age" in settings:
        age = parse_duration(settings["spool_max_age"][0])
        if age is None:
            raise fail("spool_max_age", "a duration like 7d, 12h or seconds > 0")
        values["spool_max_age"] = age
    if "spool_max_bytes" in settings:
        size = parse_size(settings["spool_max_bytes"][0])
        if size is None:
            raise fail("spool_max_bytes", "bytes > 0 or a size like 64MiB")
        values["spool_max_bytes"] = size
    if "spool" in settings:
        spool = settings["spool"][0]
        if not isinstance(spool, str | Path) or not str(spool).strip():
            raise fail("spool", "the path of the spool file")
        values["spool"] = Path(str(spool)).expanduser()
    if "ca_bundle" in settings:
        bundle = settings["ca_bundle"][0]
        if not isinstance(bundle, str) or not Path(bundle).expanduser().is_file():
            raise fail("ca_bundle", "the path of a PEM file of CA certificates that exists")
        values["ca_bundle"] = str(Path(bundle).expanduser())
    if "checks" in settings:
        values["checks"] = _checks(*settings["checks"])
    values.setdefault("name", default_name())
    values.setdefault("spool", default_spool(environ))
    return AgentConfig(**values)


def _checks(value: Any, origin: str) -> tuple[CheckSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(
            f"{origin}: checks: expected a list of {{name, command, timeout}} (got {value!r})"
        )
    if len(value) > MAX_CHECKS:
        raise ConfigError(f"{origin}: checks: expected at most {MAX_CHECKS} (got {len(value)})")
    specs: list[CheckSpec] = []
    for index, entry in enumerate(value):
        item, where = entry if isinstance(entry, tuple) else (entry, origin)
        label = f"{where}: checks[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{label}: expected a mapping with name and command (got {item!r})")
        unknown = sorted(str(key) for key in item if key not in CHECK_KEYS)
        if unknown:
            raise ConfigError(
                f"{label}: unknown key {unknown[0]!r} (expected {', '.join(CHECK_KEYS)})"
            )
        name = item.get("name")
        if not isinstance(name, str) or len(name) > 64 or not IDENTIFIER.match(name):
            raise ConfigError(
                f"{label}.name: expected a name of letters, digits and _ . : - (got {name!r})"
            )
        if any(spec.name == name for spec in specs):
            raise ConfigError(f"{label}.name: {name!r} is used by an earlier check")
        command = item.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(part, str | int | float) for part in command)
            or isinstance(command[0], bool)
            or not str(command[0]).strip()
        ):
            raise ConfigError(
                f"{label}.command: expected a list of arguments, program first, run without "
                f"a shell, e.g. [/usr/lib/nagios/plugins/check_load, -w, '5,4,3'] "
                f"(got {command!r})"
            )
        timeout = DEFAULT_CHECK_TIMEOUT
        if "timeout" in item:
            timeout = parse_duration(item["timeout"])
            if timeout is None:
                raise ConfigError(
                    f"{label}.timeout: expected seconds > 0 (got {item['timeout']!r})"
                )
        specs.append(CheckSpec(name, tuple(str(part) for part in command), timeout))
    return tuple(specs)
