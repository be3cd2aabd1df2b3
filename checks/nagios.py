"""The ``nagios`` check kind: run a Nagios/Monitoring Plugins plugin and take its verdict.

The command is an argv list run without a shell; ``{address}`` and ``{name}`` in its arguments
become the target's address and name. The plugin's exit code is the state, its first line the
summary and its perfdata the metrics (see ``opsctl.nagios``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from opsctl.contract import Check, CheckConfig, CheckError, CheckResult, Item
from opsctl.nagios import parse_plugin_output

#: Where plugins live when they are not on PATH, searched in this order.
PLUGIN_DIRECTORIES = (
    "/usr/lib/nagios/plugins",
    "/usr/lib64/nagios/plugins",
    "/usr/local/nagios/libexec",
)

# Plugins print a few lines; more than this is a runaway plugin, not a result.
_MAX_OUTPUT_BYTES = 64 * 1024

# After the kill, how long to wait for the last of the output before giving up on it.
_DRAIN_SECONDS = 2.0

_MACRO = re.compile(r"\{(address|name)\}")


class NagiosConfig(CheckConfig):
    """Configuration of the ``nagios`` check kind."""

    command: list[str] = Field(
        min_length=1,
        description=(
            "the plugin and its arguments as a list, run without a shell, e.g. "
            '["check_load", "-w", "5,4,3", "-c", "10,8,6"]; {address} and {name} are replaced '
            "by the target's address and name; a bare plugin name is looked up in PATH and "
            "then in " + ", ".join(PLUGIN_DIRECTORIES)
        ),
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment variables added to opsctl's own for the plugin",
    )

    @field_validator("command")
    @classmethod
    def _plugin_named(cls, command: list[str]) -> list[str]:
        if not command[0].strip():
            raise ValueError("the first element of command must name the plugin")
        return command


def expand_macros(arguments: list[str], target: Any) -> list[str]:
    """Given command arguments and a target, return them with ``{address}`` and ``{name}``
    replaced by the target's. Raise CheckError if an argument uses one the target lacks.
    """
    values = {"address": _target_address(target), "name": getattr(target, "name", None)}

    def substitute(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if not value:
            who = getattr(target, "name", None) or "the target"
            raise CheckError(f"the command uses {match.group(0)} but {who} has no {match.group(1)}")
        return str(value)

    return [_MACRO.sub(substitute, argument) for argument in arguments]


def _target_address(target: Any) -> str | None:
    address = getattr(target, "address", None) or getattr(target, "host", None)
    if address:
        return str(address)
    url = getattr(target, "url", None)
    return urlsplit(url).hostname if url else None


def find_plugin(name: str, path: str | None = None) -> str | None:
    """Given a plugin name and a PATH (default: the process's), return the executable to run:
    a name with a ``/`` as it is if it exists, else the first match in PATH and then in
    PLUGIN_DIRECTORIES. Return None if there is none.
    """
    if "/" in name:
        return name if os.path.exists(name) else None
    if path is None:
        path = os.environ.get("PATH", "")
    for search_path in (path, *PLUGIN_DIRECTORIES):
        found = _which(name, search_path)
        if found:
            return found
    return None


def _which(name: str, search_path: str) -> str | None:
    for directory in search_path.split(os.pathsep):
        if not directory:
            continue  # an empty PATH entry means the working directory: never run plugins from it
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _decode(output: bytes | None) -> tuple[str, bool]:
    output = output or b""
    truncated = len(output) > _MAX_OUTPUT_BYTES
    return output[:_MAX_OUTPUT_BYTES].decode("utf-8", errors="replace"), truncated


class NagiosCheck(Check):
    """Run a Nagios plugin (argv list, no shell) and report its state, output and perfdata.

    Works with any plugin following the Monitoring Plugins guidelines: check_disk, check_load,
    check_procs, vendor plugins for databases and storage, or a site's own scripts.
    """

    kind = "nagios"
    Config = NagiosConfig
    targets = frozenset({"host", "database", "log", "endpoint"})

    def run(self, target: Any) -> CheckResult:
        """Given the target, run the plugin with the target's macros and return its result.

        A plugin that is missing, cannot start or outlives the timeout is UNKNOWN with the
        reason. Raise CheckError if the command uses a macro the target lacks.
        """
        config: NagiosConfig = self.config  # type: ignore[assignment]
        argv = expand_macros(config.command, target)
        environment = {**os.environ, **config.env}
        plugin = os.path.basename(argv[0])
        executable = find_plugin(argv[0], environment.get("PATH", ""))
        if executable is None:
            reason = f"plugin not found: {argv[0]}"
            if "/" not in argv[0]:
                reason += f" (searched PATH, {', '.join(PLUGIN_DIRECTORIES)})"
            return _with_item(CheckResult.unknown(reason), plugin)

        try:
            process = subprocess.Popen(
                [executable, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment,
                start_new_session=True,
            )
        except OSError as error:
            reason = f"plugin {plugin} cannot be run: {error.strerror or error}"
            return _with_item(CheckResult.unknown(reason, plugin=executable), plugin)

        with process:
            try:
                stdout, stderr = process.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                output, _ = _kill_session(process)
                reason = f"plugin {plugin} timed out after {self.timeout:g} s"
                partial = _decode(output)[0]
                result = CheckResult.unknown(reason, plugin=executable, partial_output=partial)
                return _with_item(result, plugin)

        text, truncated = _decode(stdout)
        error_text, _ = _decode(stderr)
        # Scripts that fail before printing (exit 127 from a missing command) say why on stderr.
        result = parse_plugin_output(text if text.strip() else error_text, process.returncode)
        # The arguments are left out of the details on purpose: they often carry passwords.
        details = dict(result.details, plugin=executable)
        if error_text.strip():
            details["stderr"] = error_text
        if truncated:
            details["output_truncated_at_bytes"] = _MAX_OUTPUT_BYTES
        return _with_item(replace(result, details=details), plugin)


def _with_item(result: CheckResult, plugin: str) -> CheckResult:
    """Add the one report row that sums up the plugin's result."""
    item = Item(key="nagios.result", item=plugin, value=result.summary, verdict=result.state)
    return replace(result, items=(*result.items, item))


def _kill_session(process: subprocess.Popen[bytes]) -> tuple[bytes | None, bytes | None]:
    """Kill the plugin and everything it started, and return what output there was."""
    # The plugin leads its own session, so its process group id is its pid; killing the group
    # also stops children (a shell script's sleep) that would otherwise keep the pipes open.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        return process.communicate(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        # A grandchild that left the session still holds the pipes; give up on its output.
        process.kill()
        return None, None
