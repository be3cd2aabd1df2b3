"""The inventory: the sites a team looks after, their hosts, databases, log sources and
endpoints, the checks attached to each, and the schedules — read from YAML into frozen
pydantic models.

Loading reports every error at once, each with its file, line and path, in two passes (as
borgmatic does): first the schema of every section, then the rules that span fields — unique
names, known check kinds and their configuration, references between targets, secrets.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from opsctl.contract import Check, CheckConfig, CheckResult
from opsctl.duration import Duration
from opsctl.fields import (  # re-exported
    Name,
    Secret as Secret,
    SecretError as SecretError,
    SecretRef,
)
from opsctl.maintenance import Maintenance
from opsctl.policy import AlertPolicy
from opsctl.sla import SlaPolicy


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(Model):
    name: str
    role: str = Field("", description="e.g. A岗 / B岗 / hospital IT / vendor")
    phone: str = ""
    email: str = ""
    wecom: str = ""


class CheckSpec(BaseModel):
    """One check attached to a target: the kind, the scheduling fields common to every kind,
    and the kind's own configuration (every other key, validated against the kind's Config)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str
    name: Name | None = None
    enabled: bool = True
    interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=30)
    max_attempts: int = Field(1, ge=1, le=20)
    retry_interval: Duration = timedelta(minutes=1)

    COMMON: ClassVar[frozenset[str]] = frozenset(
        {"kind", "name", "enabled", "interval", "timeout", "max_attempts", "retry_interval"}
    )

    @property
    def options(self) -> dict[str, Any]:
        """The kind-specific keys as written in the inventory."""
        return dict(self.model_extra or {})


class Target(Model):
    target_type: ClassVar[str] = ""

    name: Name
    enabled: bool = True
    tags: list[str] = []
    checks: list[CheckSpec] = []


class SshSettings(Model):
    """How to log in to a host over SSH."""

    user: str | None = Field(None, description="login name; default: your own, as ssh does")
    port: int = Field(22, ge=1, le=65535)
    key: SecretRef | None = Field(None, description="private key file, as file:/path")
    key_passphrase: SecretRef | None = None
    password: SecretRef | None = None
    via: str | None = Field(None, description="name of the jump host (bastion) to go through")
    accept_new_host_key: bool = Field(
        False, description="trust an unknown host key on first use and record it"
    )
    connect_timeout: Duration = timedelta(seconds=10)


class Host(Target):
    target_type: ClassVar[str] = "host"

    address: str = "127.0.0.1"
    transport: Literal["local", "ssh", "agent"] = "local"
    ssh: SshSettings | None = None

    # The jump hosts to reach this host through, outermost first; set when the inventory is
    # loaded (a name in ``ssh.via`` becomes the Host it names).
    _jump_hosts: tuple[Host, ...] = PrivateAttr(default=())

    @property
    def jump_hosts(self) -> tuple[Host, ...]:
        """The chain of jump hosts to this host, the one to connect to first, first."""
        return self._jump_hosts

    @property
    def ssh_settings(self) -> SshSettings:
        """The SSH settings of this host (the defaults when it has none)."""
        return self.ssh or SshSettings()


#: The database engines opsctl inspects, and their usual ports.
DATABASE_ENGINES = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "oracle": 1521, "dm": 5236}


class Database(Target):
    """A database server (or one database on it) to inspect.

    Give either ``url`` (``postgresql://monitor@10.8.1.30/vaccine``,
    ``oracle://opsmon@10.8.1.21:1521/?service_name=HISDB``) or ``host``/``port``/``database``/
    ``user``; the password is always a separate secret reference.
    """

    target_type: ClassVar[str] = "database"

    engine: Literal["postgresql", "mysql", "mariadb", "oracle", "dm"]
    url: str | None = Field(None, description="connection URL without the password")
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)
    database: str | None = Field(
        None, description="database (PostgreSQL, MySQL) or service name (Oracle)"
    )
    user: str | None = None
    password: SecretRef | None = None
    options: dict[str, str] = Field({}, description="driver options, e.g. sslmode, service_name")

    @model_validator(mode="after")
    def _from_url(self) -> Database:
        if self.url is None:
            return self
        from urllib.parse import parse_qsl, unquote, urlsplit

        try:
            parts = urlsplit(self.url)
            port = parts.port
        except ValueError as error:
            raise PydanticCustomError(
                "url", "not a valid URL: {reason}", {"reason": str(error)}
            ) from None
        if parts.password is not None:
            # Never echo it: the URL holds a password typed in by mistake.
            raise PydanticCustomError(
                "url",
                'the URL must not hold a password; give it as password: "env:NAME" or "file:/path"',
            )
        family = parts.scheme.split("+", 1)[0]
        expected = {
            "postgresql": {"postgresql", "postgres"},
            "mysql": {"mysql", "mariadb"},
            "mariadb": {"mysql", "mariadb"},
            "oracle": {"oracle"},
            "dm": {"dm", "dameng"},
        }
        if family not in expected[self.engine]:
            raise PydanticCustomError(
                "url",
                "a URL for engine {engine} starts with {schemes}://",
                {"engine": self.engine, "schemes": " or ".join(sorted(expected[self.engine]))},
            )
        updates: dict[str, Any] = {}
        if parts.hostname:
            updates["host"] = parts.hostname
        if port:
            updates["port"] = port
        if parts.username:
            updates["user"] = unquote(parts.username)
        if parts.path.strip("/"):
            updates["database"] = unquote(parts.path.strip("/"))
        query = dict(parse_qsl(parts.query))
        if self.engine == "oracle" and "service_name" in query and "database" not in updates:
            updates["database"] = query.pop("service_name")
        if query:
            updates["options"] = {**query, **self.options}
        for name, value in updates.items():
            object.__setattr__(self, name, value)  # the model is frozen; this is its own validation
        return self

    @property
    def address(self) -> str:
        return self.host

    @property
    def effective_port(self) -> int:
        """The port to connect to: the one given, else the engine's usual one."""
        return self.port or DATABASE_ENGINES[self.engine]


class LogSource(Target):
    """Log files (a path or glob) on a host, read incrementally by the log checks."""

    target_type: ClassVar[str] = "log"

    path: str = Field(description="file path or glob, e.g. /var/log/his/upload*.log")
    host: str | None = Field(
        None, description="name of the host the file is on; the local machine if absent"
    )
    encoding: str = Field("utf-8", description="utf-8, gbk, gb18030 ...")

    # The Host named by ``host``, set when the inventory is loaded.
    _host: Host | None = PrivateAttr(default=None)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise PydanticCustomError(
                "encoding", 'unknown encoding; expected one such as "utf-8", "gbk" or "gb18030"'
            ) from None
        return value

    @property
    def on_host(self) -> Host | None:
        """The host the files are on (None: the local machine)."""
        return self._host


class Endpoint(Target):
    target_type: ClassVar[str] = "endpoint"

    url: str | None = None
    address: str | None = None
    port: int | None = Field(None, ge=1, le=65535)

    @model_validator(mode="after")
    def _url_or_address(self) -> Endpoint:
        if not self.url and not self.address:
            raise PydanticCustomError("endpoint", "an endpoint needs a url or an address")
        if self.url and not re.match(r"^[a-z][a-z0-9+.\-]*://", self.url):
            raise PydanticCustomError("endpoint", "url must start with a scheme such as https://")
        return self


class Fleet(Target):
    """A fleet of dispensers that report through the heartbeat interface (``opsctl server``),
    from one or several vendors.

    A device belongs to this fleet when its vendor is listed in ``vendors``. Its status is
    judged on the server's clock: ``late`` once no heartbeat came for its interval plus
    ``grace``, ``offline`` after ``offline_after``.
    """

    target_type: ClassVar[str] = "fleet"

    vendors: list[Name] = Field(min_length=1, description="the vendors whose devices are here")
    interval: Duration = Field(
        timedelta(minutes=1), description="heartbeat interval, unless a heartbeat gives its own"
    )
    grace: Duration = Field(timedelta(seconds=30), description="lateness tolerated before late")
    offline_after: Duration = Field(
        timedelta(minutes=5), description="silence after which a device is offline"
    )
    low_stock: int = Field(10, ge=0, description="stock level at or below which an item is low")
    vendor_silence: Duration = Field(
        timedelta(minutes=10), description="no heartbeat at all from a vendor for this long"
    )
    registry: list[str] = Field(
        [], description="vendor device lists (CSV: id, vendor, region, site, address)"
    )

    @model_validator(mode="after")
    def _offline_after_late(self) -> Fleet:
        if self.offline_after <= self.interval + self.grace:
            raise PydanticCustomError("fleet", "offline_after must be longer than interval + grace")
        return self


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "timezone", 'expected an IANA time zone like "Asia/Shanghai"'
        ) from None
    return value


class Site(Model):
    """A hospital or system under contract."""

    name: Name
    title: str = ""
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Asia/Shanghai"
    enabled: bool = True
    contacts: list[Contact] = []
    sla: SlaPolicy | None = Field(
        None, description="the contract's response and resolution targets per severity"
    )
    alerts: AlertPolicy = AlertPolicy()
    duty: Any = Field(
        None,
        description="the duty roster: a mapping (people, weekly, dates, holidays, ...) or "
        "{file: roster.csv, people: {name: phone}}",
    )
    maintenance: list[Maintenance] = []
    hosts: list[Host] = []
    databases: list[Database] = []
    logs: list[LogSource] = []
    endpoints: list[Endpoint] = []
    fleets: list[Fleet] = []

    @model_validator(mode="before")
    @classmethod
    def _sla_zone(cls, data: Any) -> Any:
        # The SLA is counted in the site's time zone unless it names its own.
        if isinstance(data, dict) and isinstance(data.get("sla"), dict):
            sla = data["sla"]
            if "timezone" not in sla and isinstance(data.get("timezone"), str):
                data = {**data, "sla": {**sla, "timezone": data["timezone"]}}
        return data

    def targets(self) -> Iterator[Target]:
        """Yield every target of the site, hosts first."""
        yield from self.hosts
        yield from self.databases
        yield from self.logs
        yield from self.endpoints
        yield from self.fleets


class Schedule(Model):
    """A cron job the scheduler runs (``opsctl server``)."""

    name: Name
    cron: str
    job: Literal["inspect", "report", "export", "runbook"] = "inspect"
    site: str | None = None
    kinds: list[str] = []
    timezone: Annotated[str, AfterValidator(_check_timezone)] | None = None
    catch_up: Duration = Field(
        timedelta(hours=12),
        description="a run missed while no server was up is made once on start if it is at "
        "most this late",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from opsctl.cron import cron_trigger

        try:
            cron_trigger(value, "UTC")
        except ValueError as error:
            raise PydanticCustomError(
                "cron",
                'expected a cron expression like "0 8 * * *" (minute hour day month weekday): {reason}',
                {"reason": str(error)},
            ) from None
        return value


class StoreSettings(Model):
    url: str | None = Field(None, description="SQLAlchemy URL or SQLite file path of the store")


class Inventory(Model):
    include: list[str] = []
    store: StoreSettings = StoreSettings()
    channels: list[dict[str, Any]] = Field(
        [], description="notification channels (type: wecom, dingtalk, feishu, email, webhook)"
    )
    sites: list[Site] = []
    schedules: list[Schedule] = []


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class InventoryError:
    """One problem found in an inventory, with where it is."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class InventoryInvalid(Exception):
    """Raised with every error found in an inventory."""

    def __init__(self, errors: list[InventoryError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def format_path(loc: Iterable[str | int]) -> str:
    """Given a location tuple, return ``sites[0].hosts[2].checks[1].warn``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --------------------------------------------------------------------------- YAML with lines


@dataclass
class _Document:
    """One parsed YAML file: its data and the line of every path in it."""

    file: str
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, loc: tuple) -> int | None:
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def _read_yaml(path: Path, shown: str, errors: list[InventoryError]) -> _Document | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        errors.append(InventoryError(shown, None, "", f"cannot read: {error.strerror or error}"))
        return None
    except UnicodeDecodeError as error:
        errors.append(
            InventoryError(shown, None, "", f"not UTF-8 text: {error.reason} at byte {error.start}")
        )
        return None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        problem = error.problem or error.context or "invalid YAML"
        errors.append(InventoryError(shown, line, "", f"invalid YAML: {problem}"))
        return None
    except yaml.YAMLError as error:
        errors.append(InventoryError(shown, None, "", f"invalid YAML: {error}"))
        return None
    finally:
        loader.dispose()
    document = _Document(shown, data)
    if node is not None:
        _record_lines(node, (), document, errors)
    if not isinstance(data, dict):
        errors.append(
            InventoryError(shown, 1, "", "expected a mapping with keys such as sites:, schedules:")
        )
        return None
    return document


def _record_lines(
    node: yaml.Node, loc: tuple, document: _Document, errors: list[InventoryError]
) -> None:
    document.lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            if key == "<<":
                continue
            if key in seen:
                errors.append(
                    InventoryError(
                        document.file,
                        key_node.start_mark.line + 1,
                        format_path((*loc, key)),
                        "duplicate key",
                    )
                )
            seen.add(key)
            document.lines.setdefault((*loc, key), key_node.start_mark.line + 1)
            _record_lines(value_node, (*loc, key), document, errors)
            document.lines[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*loc, index), document, errors)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class CheckInstance:
    """A check ready to run: its identity, its target and its validated configuration."""

    id: str
    site: Site
    target: Target
    spec: CheckSpec
    name: str
    config: CheckConfig
    check_class: type[Check]

    @property
    def kind(self) -> str:
        return self.spec.kind

    def build(self, previous: CheckResult | None = None, store: Any = None) -> Check:
        """Return a new Check object for one run, given this check's last stored result and
        the open store (None when the run has none)."""
        return self.check_class(
            self.config, timeout=self.spec.timeout.total_seconds(), previous=previous, store=store
        )


@dataclass(frozen=True)
class LoadedInventory:
    """A valid inventory and its checks."""

    path: Path
    inventory: Inventory
    checks: list[CheckInstance]
    files: list[str]
    #: The notification channels, by name (``opsctl.notify`` models).
    channels: dict[str, Any] = field(default_factory=dict)
    #: Each site's duty roster (``opsctl.roster.Roster``), by site name; sites without one
    #: are absent.
    rosters: dict[str, Any] = field(default_factory=dict)

    def site(self, name: str) -> Site | None:
        """Return the site of that name, or None."""
        return next((site for site in self.inventory.sites if site.name == name), None)

    def select(
        self,
        *,
        sites: Iterable[str] = (),
        targets: Iterable[str] = (),
        kinds: Iterable[str] = (),
        tags: Iterable[str] = (),
        include_disabled: bool = False,
    ) -> list[CheckInstance]:
        """Return the checks that match every given filter (an empty filter matches all);
        kinds may be patterns (``db.*``)."""
        sites, targets, kinds, tags = set(sites), set(targets), set(kinds), set(tags)
        chosen = []
        for check in self.checks:
            if not include_disabled and not (
                check.site.enabled and check.target.enabled and check.spec.enabled
            ):
                continue
            if sites and check.site.name not in sites:
                continue
            if targets and check.target.name not in targets:
                continue
            if kinds and not any(fnmatch.fnmatchcase(check.kind, kind) for kind in kinds):
                continue
            if tags and not tags & set(check.target.tags):
                continue
            chosen.append(check)
        return chosen


@dataclass
class _Origin:
    """Where the n-th element of a merged top-level list came from."""

    document: _Document
    key: str
    index: int


def load(path: str | os.PathLike[str], *, check_secrets: bool = True) -> LoadedInventory:
    """Given the path of an inventory file, return the LoadedInventory.

    ``include:`` entries (paths or glob patterns, relative to the including file) add the
    ``sites`` and ``schedules`` of other files. Raise InventoryInvalid with every error found.
    """
    root = Path(path)
    errors: list[InventoryError] = []
    merged: dict[str, list[Any]] = {"sites": [], "schedules": []}
    origins: dict[str, list[_Origin]] = {"sites": [], "schedules": []}
    top: dict[str, Any] = {}
    documents: list[_Document] = []

    def visit(file: Path, shown: str, stack: tuple[Path, ...]) -> None:
        document = _read_yaml(file, shown, errors)
        if document is None:
            return
        documents.append(document)
        data = document.data
        is_root = not stack
        for key, value in data.items():
            if key in merged:
                if not isinstance(value, list):
                    errors.append(
                        InventoryError(shown, document.line_of((key,)), key, "expected a list")
                    )
                    continue
                for index, element in enumerate(value):
                    merged[key].append(element)
                    origins[key].append(_Origin(document, key, index))
            elif key == "include":
                continue
            elif is_root:
                top[key] = value
            else:
                errors.append(
                    InventoryError(
                        shown,
                        document.line_of((key,)),
                        str(key),
                        "unknown key in an included file; expected sites, schedules or include",
                    )
                )
        includes = data.get("include", [])
        if isinstance(includes, str):
            includes = [includes]
        if not isinstance(includes, list):
            errors.append(
                InventoryError(
                    shown, document.line_of(("include",)), "include", "expected a list of paths"
                )
            )
            return
        for index, pattern in enumerate(includes):
            line = document.line_of(("include", index))
            where = format_path(("include", index))
            if not isinstance(pattern, str):
                errors.append(InventoryError(shown, line, where, "expected a path or glob pattern"))
                continue
            full = str(
                Path(os.path.expanduser(pattern))
                if os.path.isabs(os.path.expanduser(pattern))
                else file.parent / pattern
            )
            matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
            if not matches:
                errors.append(InventoryError(shown, line, where, f"no file matches {pattern!r}"))
            for match in matches:
                resolved = Path(match).resolve()
                if resolved in stack or resolved == file.resolve():
                    errors.append(
                        InventoryError(shown, line, where, f"{pattern!r} includes itself")
                    )
                    continue
                if not resolved.is_file():
                    errors.append(InventoryError(shown, line, where, f"{match} does not exist"))
                    continue
                visit(resolved, os.path.relpath(match), (*stack, file.resolve()))

    visit(root, str(path), ())
    if errors and not documents:
        raise InventoryInvalid(errors)

    root_document = documents[0] if documents else _Document(str(path), {})
    combined = {**top, **merged}

    def place(loc: tuple) -> tuple[_Document, tuple]:
        """Map a location in the merged data to its file and its location in that file."""
        if (
            len(loc) >= 2
            and loc[0] in origins
            and isinstance(loc[1], int)
            and loc[1] < len(origins[loc[0]])
        ):
            origin = origins[loc[0]][loc[1]]
            return origin.document, (origin.key, origin.index, *loc[2:])
        return root_document, loc

    def error_at(loc: tuple, message: str) -> None:
        document, local = place(loc)
        errors.append(
            InventoryError(document.file, document.line_of(local), format_path(local), message)
        )

    def schema_errors(validation: ValidationError, prefix: tuple) -> None:
        for problem in validation.errors(include_url=False):
            loc = (*prefix, *problem["loc"])
            error_at(loc, _describe(problem, loc))

    # Validate piece by piece, so that one broken target does not hide the rule errors
    # (duplicates, secrets, check configuration) of everything else.
    sites: list[Site] = []
    # Where each validated site and target stood in the file, for the rules' messages.
    site_positions: list[int] = []
    target_positions: list[dict[str, list[int]]] = []
    for site_index, raw_site in enumerate(combined.get("sites") or []):
        positions: dict[str, list[int]] = {}
        site = _validate_site(raw_site, ("sites", site_index), schema_errors, error_at, positions)
        if site is not None:
            sites.append(site)
            site_positions.append(site_index)
            target_positions.append(positions)

    def rule_error_at(loc: tuple, message: str) -> None:
        """Report a rule error given a location among validated sites and targets."""
        if loc[0] == "schedules":
            error_at(("schedules", schedule_positions[loc[1]], *loc[2:]), message)
            return
        site_index = site_positions[loc[1]]
        if len(loc) > 3 and loc[2] in _SECTIONS:
            loc = ("sites", site_index, loc[2], target_positions[loc[1]][loc[2]][loc[3]], *loc[4:])
        else:
            loc = ("sites", site_index, *loc[2:])
        error_at(loc, message)

    schedules: list[Schedule] = []
    schedule_positions: list[int] = []
    raw_schedules = combined.get("schedules") or []
    for index, raw in enumerate(raw_schedules if isinstance(raw_schedules, list) else []):
        try:
            schedules.append(Schedule.model_validate(raw))
            schedule_positions.append(index)
        except ValidationError as validation:
            schema_errors(validation, ("schedules", index))
    inventory: Inventory | None = None
    try:
        inventory = Inventory.model_validate({**combined, "sites": sites, "schedules": schedules})
    except ValidationError as validation:
        schema_errors(validation, ())
    if inventory is None:
        raise InventoryInvalid(_sorted(errors))
    checks = _resolve(inventory, rule_error_at, check_secrets=check_secrets)
    channels = _channels(inventory, error_at, check_secrets=check_secrets)
    site_files = [
        Path(origins["sites"][position].document.file) if position < len(origins["sites"]) else root
        for position in site_positions
    ]
    rosters = _alerting(inventory, channels, site_files, rule_error_at)
    if errors:
        raise InventoryInvalid(_sorted(errors))
    return LoadedInventory(
        root, inventory, checks, [d.file for d in documents], channels=channels, rosters=rosters
    )


def _channels(inventory: Inventory, error_at: Any, *, check_secrets: bool) -> dict[str, Any]:
    """Validate the notification channels; return them by name."""
    if not inventory.channels:
        return {}
    from opsctl.notify.channels import parse_channel

    found: dict[str, Any] = {}
    positions: dict[str, int] = {}
    for index, raw in enumerate(inventory.channels):
        loc = ("channels", index)
        try:
            channel = parse_channel(raw)
        except ValidationError as validation:
            for problem in validation.errors(include_url=False):
                # The first part of a union's location is the tag (wecom, email, ...).
                inner = tuple(problem["loc"])
                if inner and isinstance(raw, dict) and inner[0] == raw.get("type"):
                    inner = inner[1:]
                where = (*loc, *inner)
                message = _describe(problem, where)
                if problem["type"] == "extra_forbidden":
                    message = f"unknown key {inner[-1]!r}; expected one of: " + ", ".join(
                        _channel_fields(raw)
                    )
                elif problem["type"] == "union_tag_invalid":
                    where = (*loc, "type")
                    message = (
                        f"unknown type {problem.get('ctx', {}).get('tag')!r}; "
                        "expected wecom, dingtalk, feishu, email or webhook"
                    )
                elif problem["type"] == "union_tag_not_found":
                    where = (*loc, "type")
                    message = "required: type (wecom, dingtalk, feishu, email or webhook)"
                error_at(where, message)
            continue
        if channel.name in positions:
            error_at(
                (*loc, "name"),
                f"duplicate channel name {channel.name!r} (also channels[{positions[channel.name]}])",
            )
            continue
        positions[channel.name] = index
        found[channel.name] = channel
        if check_secrets:
            for name, secret in channel.secrets().items():
                problem_text = secret.problem()
                if problem_text:
                    error_at((*loc, name), f"secret {secret.reference}: {problem_text}")
    return found


def _channel_fields(raw: Any) -> list[str]:
    from opsctl.notify.channels import (
        DingTalkRobot,
        EmailChannel,
        FeishuBot,
        WebhookChannel,
        WeComRobot,
    )

    kinds = {
        "wecom": WeComRobot,
        "dingtalk": DingTalkRobot,
        "feishu": FeishuBot,
        "email": EmailChannel,
        "webhook": WebhookChannel,
    }
    model = kinds.get(raw.get("type") if isinstance(raw, dict) else None)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _alerting(
    inventory: Inventory, channels: dict[str, Any], site_files: list[Path], error_at: Any
) -> dict[str, Any]:
    """Check each site's alert policy against the channels and contacts, and read its duty
    roster (a CSV path is relative to the file the site is in). Return the rosters by site."""
    rosters: dict[str, Any] = {}
    for index, site in enumerate(inventory.sites):
        loc = ("sites", index)
        for position, name in enumerate(site.alerts.channels):
            if name not in channels:
                known = ", ".join(sorted(channels)) or "none; add them under channels:"
                error_at(
                    (*loc, "alerts", "channels", position),
                    f"no channel named {name!r} (channels: {known})",
                )
        contacts = {contact.name for contact in site.contacts}
        for position, name in enumerate(site.alerts.escalate_to):
            if name not in contacts:
                known = ", ".join(sorted(contacts)) or "none"
                error_at(
                    (*loc, "alerts", "escalate_to", position),
                    f"no contact named {name!r} in site {site.name!r} (contacts: {known})",
                )
        if site.duty is None:
            continue
        roster = _roster(site, site_files[index], (*loc, "duty"), error_at)
        if roster is not None:
            rosters[site.name] = roster
    return rosters


def _roster(site: Site, site_file: Path, loc: tuple, error_at: Any) -> Any:
    from opsctl.calendar import parse_time_of_day
    from opsctl.roster import Roster, RosterError

    duty = site.duty
    if isinstance(duty, str):
        duty = {"file": duty}
    if not isinstance(duty, dict):
        error_at(loc, "expected a roster (people:, weekly:, ...) or {file: roster.csv}")
        return None
    try:
        if "file" not in duty:
            data = dict(duty)
            data.setdefault("timezone", site.timezone)
            return Roster.from_mapping(data, "duty")
        extra = sorted(set(duty) - {"file", "people", "shift_start", "timezone"})
        if extra:
            error_at(
                (*loc, extra[0]),
                f"unknown key {extra[0]!r}; a roster file takes file, people, shift_start, "
                "timezone",
            )
            return None
        path = Path(os.path.expanduser(str(duty["file"])))
        if not path.is_absolute():
            path = site_file.parent / path
        people = duty.get("people") or {}
        if not isinstance(people, dict):
            error_at((*loc, "people"), "expected a mapping of name to phone")
            return None
        try:
            shift_start = parse_time_of_day(duty.get("shift_start", "08:30"))
        except ValueError as error:
            error_at((*loc, "shift_start"), str(error))
            return None
        return Roster.from_csv(
            path,
            people={str(k): str(v) for k, v in people.items()},
            shift_start=shift_start,
            timezone=str(duty.get("timezone") or site.timezone),
        )
    except RosterError as error:
        for problem in error.problems:
            where, message = _roster_field(problem)
            error_at((*loc, *where), message)
        return None


def _roster_field(problem: str) -> tuple[tuple[str | int, ...], str]:
    """Given a problem of a roster read from the inventory (``duty weekly.tue: ...``), return
    the location inside ``duty`` it names (``("weekly", "tue")``) and the rest of it, so that
    the error carries the line of that key. A problem of the whole roster, or of a CSV file
    (which names its own file and line), has no location."""
    if not problem.startswith("duty ") or ": " not in problem:
        return (), problem.removeprefix("duty: ")
    field, _, message = problem.removeprefix("duty ").partition(": ")
    parts = re.findall(r"([^.\[\]]+)|\[(\d+)\]", field)
    return tuple(int(index) if index else name for name, index in parts), message


def _sorted(errors: list[InventoryError]) -> list[InventoryError]:
    """Order errors by file, then line, keeping the order found among equals."""
    files = list(dict.fromkeys(e.file for e in errors))
    return sorted(errors, key=lambda e: (files.index(e.file), e.line or 0))


_SECTIONS: dict[str, type[Target]] = {}


def _validate_site(
    raw: Any, loc: tuple, schema_errors: Any, error_at: Any, positions: dict[str, list[int]]
) -> Site | None:
    """Validate one site target by target; return the Site built from its valid targets
    (after reporting any errors), or None if it is not even a mapping."""
    if not isinstance(raw, dict):
        error_at(loc, "expected a mapping (name:, hosts:, ...)")
        return None
    kept = dict(raw)
    for section, model in _SECTIONS.items():
        targets = raw.get(section)
        if not isinstance(targets, list):
            continue
        valid = []
        for index, target in enumerate(targets):
            try:
                valid.append(model.model_validate(target))
                positions.setdefault(section, []).append(index)
            except ValidationError as validation:
                schema_errors(validation, (*loc, section, index))
                # The target is broken, but its checks may still be judged on their own.
                checks = target.get("checks") if isinstance(target, dict) else None
                for check_index, check in enumerate(checks if isinstance(checks, list) else []):
                    _validate_check(
                        check,
                        model.target_type,
                        (*loc, section, index, "checks", check_index),
                        error_at,
                    )
        kept[section] = valid
    try:
        return Site.model_validate(kept)
    except ValidationError as validation:
        schema_errors(validation, loc)
    # The site's own fields are broken; build it from its valid targets anyway so that the
    # rules still judge them. The load fails, so this site is never used for anything else.
    safe = {section: kept[section] for section in _SECTIONS if isinstance(kept.get(section), list)}
    name = raw.get("name")
    return Site.model_construct(name=name if isinstance(name, str) else f"sites[{loc[-1]}]", **safe)


def _describe(problem: dict[str, Any], loc: tuple) -> str:
    """Turn one pydantic error into the words of an inventory message."""
    kind = problem["type"]
    given = problem.get("input")
    if kind == "extra_forbidden":
        expected = _fields_at(Inventory, loc[:-1])
        hint = f"; expected one of: {', '.join(expected)}" if expected else ""
        return f"unknown key {loc[-1]!r}{hint}"
    if kind == "missing":
        return "required, but missing"
    message = problem["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    message = re.sub(r"^Input should be ", "expected ", message)
    message = message.replace("a valid string", "text").replace("a valid integer", "a whole number")
    message = message.replace("a valid boolean", "true or false").replace("a valid list", "a list")
    message = message.replace("a valid dictionary", "a mapping")
    if (
        kind != "secret"
        and isinstance(given, str | int | float | bool)
        and repr(given) not in message
    ):
        shown = given if not isinstance(given, str) or len(given) <= 60 else given[:57] + "..."
        message += f" (got {shown!r})"
    return message


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Return the field names of the model found at ``loc`` inside ``model``, or []."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset, Union, types.UnionType):
        for argument in get_args(annotation):
            inner = _inner_model(argument)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
        return None
    if origin is Annotated:
        return _inner_model(get_args(annotation)[0])
    return annotation


_TARGET_SECTIONS = {
    "hosts": "host",
    "databases": "database",
    "logs": "log",
    "endpoints": "endpoint",
    "fleets": "fleet",
}
_SECTIONS.update(
    {
        "hosts": Host,
        "databases": Database,
        "logs": LogSource,
        "endpoints": Endpoint,
        "fleets": Fleet,
    }
)

#: Checks every target of a type gets when its own list has none of that kind: an agent host
#: is watched for silence (a dead man's switch), a fleet for offline and faulty devices.
IMPLICIT_CHECKS: dict[str, dict[str, Any]] = {
    "agent": {"kind": "agent", "interval": "1m"},
    "fleet": {"kind": "dispenser", "interval": "1m"},
}


def _implicit_kind(target: Target) -> str | None:
    if isinstance(target, Host) and target.transport == "agent":
        return "agent"
    if isinstance(target, Fleet):
        return "fleet"
    return None


def _validate_check(
    raw: Any, target_type: str, loc: tuple, error_at: Any
) -> tuple[type[Check], CheckConfig] | None:
    """Validate one check's kind and kind-specific configuration; report problems via error_at."""
    from opsctl import registry

    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        return None
    kind = raw["kind"]
    try:
        check_class = registry.load(kind)
    except registry.RegistryError as error:
        error_at((*loc, "kind"), str(error))
        return None
    if target_type not in check_class.targets:
        allowed = ", ".join(sorted(check_class.targets))
        article = "an" if target_type[0] in "aeiou" else "a"
        error_at(
            (*loc, "kind"),
            f"a {kind} check cannot be attached to {article} {target_type}; it goes on: {allowed}",
        )
        return None
    shadowed = CheckSpec.COMMON & set(check_class.Config.model_fields)
    if shadowed:
        # The inventory would give these keys to the check instance, never to the kind.
        error_at(
            (*loc, "kind"),
            f"check kind {kind!r} is broken: its configuration reuses the common field(s) "
            f"{', '.join(sorted(shadowed))}",
        )
        return None
    options = {k: v for k, v in raw.items() if k not in CheckSpec.COMMON}
    try:
        return check_class, check_class.Config.model_validate(options)
    except ValidationError as validation:
        for problem in validation.errors(include_url=False):
            sub = tuple(problem["loc"])
            if problem["type"] == "extra_forbidden":
                known = sorted(set(check_class.Config.model_fields) | CheckSpec.COMMON)
                message = f"unknown key {sub[-1]!r} for a {kind} check; expected one of: {', '.join(known)}"
            else:
                message = _describe(problem, sub)
            error_at((*loc, *sub), message)
        return None


def _resolve(inventory: Inventory, error_at: Any, *, check_secrets: bool) -> list[CheckInstance]:
    """The second pass: rules that span fields. Return the check instances."""
    instances: list[CheckInstance] = []
    site_names: dict[str, int] = {}
    for site_index, site in enumerate(inventory.sites):
        site_loc = ("sites", site_index)
        if site.name in site_names:
            error_at(
                (*site_loc, "name"),
                f"duplicate site name {site.name!r} (also sites[{site_names[site.name]}])",
            )
        site_names.setdefault(site.name, site_index)
        target_names: dict[str, str] = {}
        host_names = {host.name for host in site.hosts}
        for section, target_type in _TARGET_SECTIONS.items():
            for target_index, target in enumerate(getattr(site, section)):
                target_loc = (*site_loc, section, target_index)
                where = format_path((section, target_index))
                if target.name in target_names:
                    error_at(
                        (*target_loc, "name"),
                        f"duplicate target name {target.name!r} in site {site.name!r} (also {target_names[target.name]})",
                    )
                target_names.setdefault(target.name, where)
                _check_references(site, target, target_loc, host_names, error_at)
                if check_secrets and site.enabled and target.enabled:
                    for secret_loc, secret in _secrets_of(target):
                        problem = secret.problem()
                        if problem:
                            error_at(
                                (*target_loc, *secret_loc), f"secret {secret.reference}: {problem}"
                            )
                check_names: dict[str, int] = {}
                specs = list(target.checks)
                implicit = _implicit_kind(target)
                if implicit is not None:
                    default = IMPLICIT_CHECKS[implicit]
                    if not any(spec.kind == default["kind"] for spec in specs):
                        specs.append(CheckSpec.model_validate(default))
                for check_index, spec in enumerate(specs):
                    loc = (*target_loc, "checks", check_index)
                    name = spec.name or spec.kind
                    if name in check_names:
                        error_at(
                            (*loc, "name" if spec.name else "kind"),
                            f"duplicate check name {name!r} on {target.name} (also checks[{check_names[name]}]); "
                            "give each check of the same kind its own name:",
                        )
                    check_names.setdefault(name, check_index)
                    validated = _validate_check(
                        {"kind": spec.kind, **spec.options}, target_type, loc, error_at
                    )
                    if validated is None:
                        continue
                    check_class, config = validated
                    instances.append(
                        CheckInstance(
                            id=f"{site.name}/{target.name}/{name}",
                            site=site,
                            target=target,
                            spec=spec,
                            name=name,
                            config=config,
                            check_class=check_class,
                        )
                    )
    schedule_names: dict[str, int] = {}
    for index, schedule in enumerate(inventory.schedules):
        if schedule.name in schedule_names:
            error_at(
                ("schedules", index, "name"),
                f"duplicate schedule name {schedule.name!r} (also schedules[{schedule_names[schedule.name]}])",
            )
        schedule_names.setdefault(schedule.name, index)
        if schedule.site is not None and schedule.site not in site_names:
            known = ", ".join(sorted(site_names)) or "none"
            error_at(
                ("schedules", index, "site"),
                f"no site named {schedule.site!r} (sites: {known})",
            )
    return instances


def _check_references(
    site: Site, target: Target, loc: tuple, host_names: set[str], error_at: Any
) -> None:
    if isinstance(target, LogSource) and target.host is not None:
        if target.host not in host_names:
            error_at((*loc, "host"), f"no host named {target.host!r} in site {site.name!r}")
        else:
            target._host = next(host for host in site.hosts if host.name == target.host)
    if isinstance(target, Host) and target.ssh is not None and target.ssh.via is not None:
        _resolve_jumps(site, target, (*loc, "ssh", "via"), error_at)


def _resolve_jumps(site: Site, host: Host, loc: tuple, error_at: Any) -> None:
    """Follow ``ssh.via`` from host to host and record the chain on the host."""
    hosts = {each.name: each for each in site.hosts}
    chain: list[Host] = []
    names = [host.name]
    via = host.ssh_settings.via
    while via is not None:
        if via in names:
            error_at(loc, f"jump hosts form a loop: {' -> '.join([*names, via])}")
            return
        jump = hosts.get(via)
        if jump is None:
            if len(names) == 1:
                error_at(loc, f"no host named {via!r} in site {site.name!r}")
            return  # a missing host further along is reported on the host that names it
        if jump.transport != "ssh":
            error_at(loc, f"jump host {via!r} must use transport: ssh")
            return
        names.append(via)
        chain.insert(0, jump)
        via = jump.ssh_settings.via
    host._jump_hosts = tuple(chain)


def _secrets_of(model: BaseModel, loc: tuple = ()) -> Iterator[tuple[tuple, Secret]]:
    """Yield (location, Secret) for every secret reference inside a model."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Secret):
            yield (*loc, name), value
        elif isinstance(value, BaseModel) and not isinstance(value, CheckSpec):
            yield from _secrets_of(value, (*loc, name))
