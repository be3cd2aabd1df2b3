"""The dispenser fleet in the store: heartbeats in, status flips out, and the queries that
reports, the ``dispenser`` check and ``opsctl fleet`` read.

``ingest`` stores one vendor batch in one transaction: the batch's devices are read in one
query (locked on PostgreSQL, in device order), judged in Python with ``opsctl.fleet``, and
written back with one upsert and one insert of flips, whatever the batch's size (on
PostgreSQL both go in by COPY). These hot paths speak the driver's SQL directly: at 10,000
devices beating once a minute, per-row ORM work would cost more than the database. ``sweep``
writes the flips that silence alone brings about (late, then offline), each stamped at the
exact moment it happened rather than when a sweep noticed, with a conditional update so that
two servers sweeping at once write each flip once.

Availability over any period is computed from the flips: a device's status at the start of
the period is its last flip before it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError

from opsctl.contract import utc_now
from opsctl.fleet import (
    STATUSES,
    Availability,
    DeviceState,
    Flip,
    Rules,
    judge,
    measure,
    transitions,
)
from opsctl.server.schemas import Heartbeat, HeartbeatBatch, HeartbeatsAccepted
from opsctl.store.api import Store, _require_aware
from opsctl.store.models import DeviceFlipModel, DeviceModel

DEVICES = DeviceModel.__table__
FLIPS = DeviceFlipModel.__table__

#: Rows per statement when many devices are read or updated at once (bound parameters stay
#: far below SQLite's 32766 and PostgreSQL's 65535).
ROWS_PER_STATEMENT = 1000


class ForeignDevice(Exception):
    """A batch names devices the store knows under another vendor; nothing was stored."""

    def __init__(self, device_ids: Sequence[str]) -> None:
        self.device_ids = list(device_ids)
        shown = ", ".join(self.device_ids[:10])
        more = f" and {len(self.device_ids) - 10} more" if len(self.device_ids) > 10 else ""
        super().__init__(
            f"{len(self.device_ids)} device(s) belong to another vendor: {shown}{more}"
        )


class RegistryInvalid(ValueError):
    """A registry CSV cannot be imported; ``errors`` lists every problem as
    ``devices.csv:17 vendor: required``. Nothing was imported."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device as the store keeps it: its registration, its latest heartbeat and the
    status last written (see ``current`` for the status at a given moment)."""

    device_id: str
    vendor: str
    site: str
    region: str
    address: str
    registered: bool
    first_seen: datetime | None
    last_heartbeat: datetime | None
    last_reported: datetime | None
    heartbeats: int
    reported_status: str
    fault_code: str | None
    fault_message: str | None
    stock: list[dict[str, Any]]
    temperature: float | None
    door: str | None
    firmware: str | None
    interval: float | None
    status: str
    status_since: datetime


@dataclass(frozen=True, slots=True)
class FlipRow:
    """One stored change of a device's status."""

    id: int
    device_id: str
    vendor: str
    site: str
    region: str
    at: datetime
    from_status: str | None
    to_status: str
    reason: str


@dataclass(frozen=True, slots=True)
class CurrentRow:
    """One device's status at a given moment: the stored one, moved on by silence."""

    device_id: str
    vendor: str
    site: str
    region: str
    status: str
    since: datetime
    last_heartbeat: datetime | None
    reason: str | None  # set when silence moved the status on since it was stored


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """How many devices of one vendor in one region are in one status."""

    vendor: str
    region: str
    status: str
    devices: int


@dataclass(frozen=True, slots=True)
class AvailabilityRow:
    """The availability of one device, vendor or region over a period."""

    key: str
    devices: int
    up: float
    down: float
    unknown: float

    @property
    def ratio(self) -> float:
        """Up time over known time, 0 to 1; NaN when nothing of the period is known."""
        return Availability(self.up, self.down, self.unknown).ratio


@dataclass(frozen=True, slots=True)
class FlappingRow:
    """A device whose status changed at least ``min_flips`` times in a window."""

    device_id: str
    vendor: str
    site: str
    region: str
    flips: int


# --------------------------------------------------------------------------- the hot path

_COLUMNS = tuple(c.name for c in DEVICES.columns)
_TIMES = frozenset({"first_seen", "last_heartbeat", "last_reported", "status_since"})
#: What ingest reads of a device: what judging it and keeping its row need. The rest (the
#: stock, temperature, door ...) an accepted heartbeat replaces, and decoding the stock is
#: the costliest part of reading a device.
_KEPT = (
    "device_id",
    "vendor",
    "site",
    "region",
    "address",
    "registered",
    "first_seen",
    "last_heartbeat",
    "last_reported",
    "heartbeats",
    "reported_status",
    "fault_code",
    "interval",
    "status",
    "status_since",
)
_FLIP_COLUMNS = (
    "device_id",
    "vendor",
    "site",
    "region",
    "at",
    "from_status",
    "to_status",
    "reason",
)
_ROW_VALUES = itemgetter(*_COLUMNS)
_FLIP_VALUES = itemgetter(*_FLIP_COLUMNS)


class _Driver:
    """The statements of the hot paths (ingest, sweep, the fleet's current statuses) in the
    driver's own SQL, with values converted as the models' types would: a batch of a thousand
    heartbeats spends its time in the database, not in per-row ORM work. Timestamps are
    written as the store's ``UTCDateTime`` writes them (SQLite: UTC text), JSON as text."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgresql = connection.dialect.name == "postgresql"
        self._written: dict[datetime, str] = {}
        self._read: dict[str, datetime] = {}

    def param(self, name: str) -> str:
        """The placeholder of a named parameter in this driver's SQL."""
        return f"%({name})s" if self.postgresql else f":{name}"

    def begin_write(self) -> None:
        """On SQLite, take the write lock up front: a transaction that reads and then writes
        would otherwise fail, not wait, when another process wrote in between."""
        if not self.postgresql:
            self.connection.exec_driver_sql("BEGIN IMMEDIATE")

    def time_in(self, value: datetime | None) -> Any:
        """An aware datetime as the column takes it (SQLite: UTC text, as ``UTCDateTime``)."""
        if value is None or self.postgresql:
            return value
        text = self._written.get(value)
        if text is None:
            utc = value.astimezone(UTC).replace(tzinfo=None)
            text = self._written[value] = utc.isoformat(sep=" ", timespec="microseconds")
        return text

    def time_out(self, value: Any) -> datetime | None:
        """A stored timestamp as an aware datetime in UTC."""
        if value is None or (type(value) is datetime and value.tzinfo is UTC):
            return value
        if isinstance(value, str):
            # A batch's devices share a few instants: parse each text once.
            read = self._read.get(value)
            if read is None:
                read = self._read[value] = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return read
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def json_out(self, value: Any) -> Any:
        """A JSON column's value (SQLite gives text, PostgreSQL the decoded value)."""
        return json.loads(value) if isinstance(value, str) else value

    def select(self, columns: Sequence[str], where: str, params: dict[str, Any]) -> list[dict]:
        """Return the devices matching ``where`` as dicts of ``columns``, converted."""
        sql = f"SELECT {', '.join(columns)} FROM devices WHERE {where}"
        rows = self.connection.exec_driver_sql(sql, params).all()
        times = [index for index, name in enumerate(columns) if name in _TIMES]
        stock = columns.index("stock") if "stock" in columns else None
        registered = columns.index("registered") if "registered" in columns else None
        found = []
        for row in rows:
            values_ = list(row)
            for index in times:
                values_[index] = self.time_out(values_[index])
            if stock is not None:
                values_[stock] = self.json_out(values_[stock]) or []
            if registered is not None:
                values_[registered] = bool(values_[registered])
            found.append(dict(zip(columns, values_, strict=True)))
        return found

    def ids_clause(self, ids: Sequence[str], params: dict[str, Any]) -> str:
        """Return ``device_id IN (...)`` for ``ids``, filling ``params``."""
        if self.postgresql:
            params["ids"] = list(ids)
            return "device_id = ANY(%(ids)s)"
        names = []
        for index, device_id in enumerate(ids):
            params[f"id{index}"] = device_id
            names.append(f":id{index}")
        return f"device_id IN ({', '.join(names) or 'NULL'})"

    def devices(self, ids: Sequence[str], *, lock: bool) -> dict[str, dict[str, Any]]:
        """Return the stored rows of ``ids`` by device id (the ``_KEPT`` columns); locked on
        PostgreSQL with ``lock`` (in device order, so that two transactions never wait on
        each other in a circle)."""
        params: dict[str, Any] = {}
        where = self.ids_clause(ids, params) + " ORDER BY device_id"
        if lock and self.postgresql:
            where += " FOR UPDATE"
        return {row["device_id"]: row for row in self.select(_KEPT, where, params)}

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        """Insert or replace these devices (a device known under another vendor stays).

        PostgreSQL: the rows are copied (COPY) into a temporary table and merged with one
        INSERT ... SELECT, twice as fast as a prepared statement per row. SQLite: one
        prepared statement run for every row, in-process.
        """
        updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS[1:])
        merge = (
            f"ON CONFLICT (device_id) DO UPDATE SET {updates} "
            "WHERE devices.vendor = excluded.vendor"
        )
        columns = ", ".join(_COLUMNS)
        if self.postgresql:
            self.connection.exec_driver_sql(
                "CREATE TEMPORARY TABLE fleet_incoming (LIKE devices) ON COMMIT DROP"
            )
            for row in rows:
                row["stock"] = json.dumps(row["stock"], ensure_ascii=False)
            self._copy("fleet_incoming", _COLUMNS, map(_ROW_VALUES, rows))
            self.connection.exec_driver_sql(
                f"INSERT INTO devices ({columns}) SELECT {columns} FROM fleet_incoming {merge}"
            )
            return
        sql = (
            f"INSERT INTO devices ({columns}) "
            f"VALUES ({', '.join(self.param(name) for name in _COLUMNS)}) {merge}"
        )
        self.connection.exec_driver_sql(sql, [self._device_params(row) for row in rows])

    def _device_params(self, row: dict[str, Any]) -> dict[str, Any]:
        params = dict(row)
        for name in _TIMES:
            params[name] = self.time_in(row[name])
        params["stock"] = json.dumps(row["stock"], ensure_ascii=False)
        return params

    def insert_flips(self, flips: list[dict[str, Any]]) -> None:
        """Insert these flips (COPY on PostgreSQL)."""
        if self.postgresql:
            self._copy("device_flips", _FLIP_COLUMNS, map(_FLIP_VALUES, flips))
            return
        sql = (
            f"INSERT INTO device_flips ({', '.join(_FLIP_COLUMNS)}) "
            f"VALUES ({', '.join(self.param(name) for name in _FLIP_COLUMNS)})"
        )
        self.connection.exec_driver_sql(
            sql, [{**flip, "at": self.time_in(flip["at"])} for flip in flips]
        )

    def _copy(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        """COPY rows into a PostgreSQL table, in this transaction; a failure is raised as
        SQLAlchemy's DBAPIError (so that the store reports it as StoreError)."""
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        dbapi = self.connection.connection.dbapi_connection
        try:
            with dbapi.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
        except self.connection.dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(
                statement, None, error, self.connection.dialect.loaded_dbapi.Error
            ) from error

    def move_on(self, planned: list[dict[str, Any]]) -> list[str]:
        """Given devices with the status and last heartbeat they were judged from and their
        new status and its time, change those still as judged; return their ids."""
        if self.postgresql:
            # Lock what no one else holds, in device order: a device a heartbeat is being
            # stored for, or that another server is sweeping, is left to them.
            params: dict[str, Any] = {}
            where = self.ids_clause([p["device_id"] for p in planned], params)
            locked = set(
                self.connection.exec_driver_sql(
                    f"SELECT device_id FROM devices WHERE {where} "
                    "ORDER BY device_id FOR UPDATE SKIP LOCKED",
                    params,
                ).scalars()
            )
            chosen = [p for p in planned if p["device_id"] in locked]
            if not chosen:
                return []
            sql = (
                "UPDATE devices AS d SET status = v.new, status_since = v.at FROM unnest("
                "%(ids)s::text[], %(old)s::text[], %(last)s::timestamptz[], %(new)s::text[], "
                "%(at)s::timestamptz[]) AS v(device_id, old, last, new, at) "
                "WHERE d.device_id = v.device_id AND d.status = v.old "
                "AND d.last_heartbeat = v.last RETURNING d.device_id"
            )
            arrays = {
                "ids": [p["device_id"] for p in chosen],
                "old": [p["old"] for p in chosen],
                "last": [p["last"] for p in chosen],
                "new": [p["new"] for p in chosen],
                "at": [p["at"] for p in chosen],
            }
            return sorted(self.connection.exec_driver_sql(sql, arrays).scalars())
        # SQLite: this transaction holds the write lock, so every row is as it was read;
        # the condition still guards it, and a row that fails it is found one by one.
        sql = (
            "UPDATE devices SET status = :new, status_since = :at "
            "WHERE device_id = :device_id AND status = :old AND last_heartbeat = :last"
        )
        rows = [
            {**p, "at": self.time_in(p["at"]), "last": self.time_in(p["last"])} for p in planned
        ]
        if self.connection.exec_driver_sql(sql, rows).rowcount == len(rows):
            return [p["device_id"] for p in planned]
        return [  # pragma: no cover - only if the write lock did not hold
            row["device_id"]
            for row in rows
            if self.connection.exec_driver_sql(sql, row).rowcount == 1
        ]


# --------------------------------------------------------------------------- writing


def ingest(store: Store, batch: HeartbeatBatch, rules: Rules, now: datetime) -> HeartbeatsAccepted:
    """Given a vendor's batch, the fleet rules and the server's clock, store the heartbeats
    in one transaction and return how many were accepted, stale, and the flips they caused.

    Devices first seen are learned (vendor, region, address; ``registered`` false; the
    site of the fleet that lists the vendor). A heartbeat not newer (by the device's own
    timestamp) than the last one stored for its device is stale and changes nothing, so a
    resent batch is harmless. Before a heartbeat is applied, the flips silence brought
    about since the device's previous one (late, offline) are written at their exact
    moments, then the heartbeat's own flip at ``now``.

    The batch's devices are read in one query and written in two statements (devices,
    flips), whatever its size. Raise ForeignDevice, before anything is written, if the store
    knows any of the batch's devices under another vendor; ValueError if ``now`` is naive;
    StoreError if the database fails (nothing is written then).
    """
    _require_aware(now, "now")
    vendor = batch.vendor
    rule = rules.rule_for(vendor)
    by_device: dict[str, list[Heartbeat]] = defaultdict(list)
    for heartbeat in batch.heartbeats:
        by_device[heartbeat.device_id].append(heartbeat)
    ids = sorted(by_device)
    accepted = stale = 0
    rows: list[dict[str, Any]] = []
    flips: list[dict[str, Any]] = []
    with store._guard("store heartbeats in"), store.engine.begin() as connection:
        driver = _Driver(connection)
        driver.begin_write()
        known = driver.devices(ids, lock=True)
        foreign = [device_id for device_id, row in known.items() if row["vendor"] != vendor]
        if foreign:
            raise ForeignDevice(foreign)
        for device_id in ids:
            row = known.get(device_id)
            is_new = row is None
            if row is None:
                row = _new_device(device_id, vendor, rule.site, now)
            took, skipped = _apply(row, by_device[device_id], rules, now, is_new, flips)
            accepted += took
            stale += skipped
            if took:
                rows.append(row)
        if rows:
            driver.upsert(rows)
        if flips:
            driver.insert_flips(flips)
    return HeartbeatsAccepted(accepted=accepted, stale=stale, flips=len(flips))


def _new_device(device_id: str, vendor: str, site: str, now: datetime) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "vendor": vendor,
        "site": site,
        "region": "",
        "address": "",
        "registered": False,
        "first_seen": None,
        "last_heartbeat": None,
        "last_reported": None,
        "heartbeats": 0,
        "reported_status": "",
        "fault_code": None,
        "fault_message": None,
        "stock": [],
        "temperature": None,
        "door": None,
        "firmware": None,
        "interval": None,
        "status": "unknown",
        "status_since": now,
    }


def _state(row: Mapping[str, Any]) -> DeviceState:
    return DeviceState(
        device_id=row["device_id"],
        vendor=row["vendor"],
        status=row["status"],
        last_heartbeat=row["last_heartbeat"],
        interval=row["interval"],
        reported_status=row["reported_status"],
        fault_code=row["fault_code"],
        fault_message=row.get("fault_message"),
        stock=row.get("stock") or (),
    )


def _apply(
    row: dict[str, Any],
    heartbeats: list[Heartbeat],
    rules: Rules,
    now: datetime,
    is_new: bool,
    flips: list[dict[str, Any]],
) -> tuple[int, int]:
    """Apply one device's heartbeats (oldest first) to its row; append its flips. Return
    (accepted, stale)."""
    rule = rules.rule_for(row["vendor"])
    accepted = stale = 0
    previous: str | None = None if is_new else row["status"]
    if len(heartbeats) > 1:
        heartbeats = sorted(heartbeats, key=lambda h: h.timestamp)
    for heartbeat in heartbeats:
        if row["last_reported"] is not None and heartbeat.timestamp <= row["last_reported"]:
            stale += 1
            continue
        if accepted == 0:
            for flip in transitions(_state(row), rule, now):
                flips.append(_flip_row(row, flip))
                row["status"], row["status_since"] = flip.to_status, flip.at
                previous = flip.to_status
        _take(row, heartbeat, now, rule.site)
        new, reason = judge(_state(row), rule, now)
        if new != row["status"] or previous is None:
            if new == "online" and previous in (None, "unknown"):
                reason = "first heartbeat"
            flips.append(_flip_row(row, Flip(now, previous, new, reason)))
            row["status"], row["status_since"] = new, now
        previous = new
        accepted += 1
    return accepted, stale


def _take(row: dict[str, Any], heartbeat: Heartbeat, now: datetime, site: str) -> None:
    """Write one heartbeat's fields into a device's row."""
    if row["first_seen"] is None:
        row["first_seen"] = now
    row["last_heartbeat"] = now
    row["last_reported"] = heartbeat.timestamp
    row["heartbeats"] += 1
    row["reported_status"] = heartbeat.status
    row["fault_code"] = heartbeat.fault_code
    row["fault_message"] = heartbeat.fault_message
    row["stock"] = [level.model_dump() for level in heartbeat.stock]
    row["temperature"] = heartbeat.temperature
    row["door"] = heartbeat.door
    row["firmware"] = heartbeat.firmware
    row["interval"] = None if heartbeat.interval is None else float(heartbeat.interval)
    # A registry's region, address and site stand; heartbeats fill in the rest.
    if heartbeat.region and not (row["registered"] and row["region"]):
        row["region"] = heartbeat.region
    if heartbeat.address and not (row["registered"] and row["address"]):
        row["address"] = heartbeat.address
    if site and not (row["registered"] and row["site"]):
        row["site"] = site


def _flip_row(row: Mapping[str, Any], flip: Flip) -> dict[str, Any]:
    return {
        "device_id": row["device_id"],
        "vendor": row["vendor"],
        "site": row["site"],
        "region": row["region"],
        "at": flip.at,
        "from_status": flip.from_status,
        "to_status": flip.to_status,
        "reason": flip.reason,
    }


#: What the sweep and ``current`` read of a device: enough to judge silence.
_JUDGED = (
    "device_id",
    "vendor",
    "site",
    "region",
    "status",
    "status_since",
    "last_heartbeat",
    "interval",
    "reported_status",
    "fault_code",
    "fault_message",
)


def sweep(store: Store, rules: Rules, now: datetime) -> int:
    """Given the fleet rules and the server's clock, write the flips that silence has brought
    about since each device's last heartbeat (``online → late`` at its last heartbeat plus
    interval plus grace, ``late → offline`` at its last heartbeat plus ``offline_after``),
    each stamped at that exact moment, and move the devices' statuses on. Return the number
    of flips written.

    Each device's status is changed by an UPDATE conditional on the status and the last
    heartbeat it was judged from, and its flips are written only if that UPDATE changed it:
    two servers sweeping at once (or a heartbeat arriving meanwhile) never write a flip twice.
    Raise ValueError if ``now`` is naive, StoreError if the database fails.
    """
    _require_aware(now, "now")
    shortest_offline = min(
        [rules.default.offline_after, *(rules.rule_for(v).offline_after for v in rules.vendors)]
    )
    written = 0
    with store._guard("sweep the devices of"), store.engine.begin() as connection:
        driver = _Driver(connection)
        driver.begin_write()
        p = driver.param
        candidates = driver.select(
            _JUDGED,
            f"(status IN ('online', 'low-stock') AND last_heartbeat <= {p('late')}) "
            f"OR (status IN ('late', 'faulty') AND last_heartbeat <= {p('offline')}) "
            "ORDER BY device_id",
            {
                "late": driver.time_in(now - rules.shortest_late()),
                "offline": driver.time_in(now - shortest_offline),
            },
        )
        planned: dict[str, tuple[dict[str, Any], list[Flip]]] = {}
        for row in candidates:
            pending = transitions(_state(row), rules.rule_for(row["vendor"]), now)
            if pending:
                planned[row["device_id"]] = (row, pending)
        ids = sorted(planned)
        for start in range(0, len(ids), ROWS_PER_STATEMENT):
            chunk = [
                {
                    "device_id": device_id,
                    "old": planned[device_id][0]["status"],
                    "last": planned[device_id][0]["last_heartbeat"],
                    "new": planned[device_id][1][-1].to_status,
                    "at": planned[device_id][1][-1].at,
                }
                for device_id in ids[start : start + ROWS_PER_STATEMENT]
            ]
            changed = driver.move_on(chunk)
            flips = [
                _flip_row(planned[device_id][0], flip)
                for device_id in changed
                for flip in planned[device_id][1]
            ]
            if flips:
                driver.insert_flips(flips)
            written += len(flips)
    return written


# --------------------------------------------------------------------------- the registry

#: The registry CSV's columns, and the names a Chinese spreadsheet may give them.
REGISTRY_COLUMNS = ("device_id", "vendor", "region", "site", "address")
_HEADER_ALIASES = {
    "device_id": "device_id",
    "device": "device_id",
    "设备编号": "device_id",
    "设备id": "device_id",
    "vendor": "vendor",
    "厂商": "vendor",
    "region": "region",
    "区域": "region",
    "地区": "region",
    "site": "site",
    "站点": "site",
    "address": "address",
    "地址": "address",
}
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_VENDOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_TEXT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One device of a registry CSV, with the line it is on."""

    line: int
    device_id: str
    vendor: str
    region: str
    site: str
    address: str


def decode_registry(data: bytes, name: str) -> str:
    """Given a registry file's bytes and its name (for messages), return its text: UTF-8
    with or without a byte order mark, else GBK (read as GB 18030, its superset), as
    spreadsheets in Chinese write it. Raise RegistryInvalid if it is neither."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8")
        except UnicodeDecodeError as error:
            raise RegistryInvalid(
                [f"{name}: starts as UTF-8 but byte {error.start + 3} is not UTF-8"]
            ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as error:
        raise RegistryInvalid(
            [f"{name}: not UTF-8 or GBK text (byte {error.start}); save it as CSV UTF-8"]
        ) from None


def read_registry(path: Path, rules: Rules | None = None) -> list[RegistryEntry]:
    """Given the path of a vendor's registry CSV (header ``device_id,vendor,region,site,
    address``, in any order; Chinese names such as 设备编号/厂商/区域/站点/地址 are accepted;
    other columns are ignored), return its devices. A device without a site gets the site of
    the fleet that lists its vendor in ``rules``.

    Raise RegistryInvalid with every problem found, each as ``devices.csv:17 vendor: required``.
    """
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RegistryInvalid([f"{path}: cannot read: {error.strerror or error}"]) from None
    text = decode_registry(data, name)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise RegistryInvalid([f"{name}:1: not CSV: {error}"]) from None
    if header is None or not any(cell.strip() for cell in header):
        raise RegistryInvalid(
            [f"{name}:1: empty; expected a header line {','.join(REGISTRY_COLUMNS)}"]
        )
    positions: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _HEADER_ALIASES.get(cell.strip().lower())
        if key is not None and key not in positions:
            positions[key] = index
    missing = [key for key in ("device_id", "vendor") if key not in positions]
    if missing:
        raise RegistryInvalid(
            [
                f"{name}:1: the header has no {' or '.join(missing)} column "
                f"(expected {','.join(REGISTRY_COLUMNS)}; found {','.join(header)})"
            ]
        )
    errors: list[str] = []
    entries: list[RegistryEntry] = []
    seen: dict[str, int] = {}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                errors.append(
                    f"{name}:{line}: {len(cells)} values, but the header has {len(header)} columns"
                )
                continue
            value = {
                key: (cells[index].strip() if index < len(cells) else "")
                for key, index in positions.items()
            }
            problems = _registry_problems(value)
            device_id = value.get("device_id", "")
            if device_id and device_id in seen:
                problems.append(
                    f"device_id: {device_id} is listed twice (also line {seen[device_id]})"
                )
            for problem in problems:
                errors.append(f"{name}:{line} {problem}")
            if problems:
                continue
            seen[device_id] = line
            vendor = value["vendor"]
            site = value.get("site", "") or (rules.rule_for(vendor).site if rules else "")
            entries.append(
                RegistryEntry(
                    line, device_id, vendor, value.get("region", ""), site, value.get("address", "")
                )
            )
    except csv.Error as error:
        errors.append(f"{name}:{reader.line_num}: not CSV: {error}")
    if errors:
        raise RegistryInvalid(errors)
    return entries


def _registry_problems(value: dict[str, str]) -> list[str]:
    problems = []
    device_id, vendor = value.get("device_id", ""), value.get("vendor", "")
    if not device_id:
        problems.append("device_id: required")
    elif len(device_id) > 64 or not _DEVICE_ID.match(device_id):
        problems.append(
            f"device_id: {device_id!r} is not a device id (up to 64 letters, digits, "
            "'_', '.', ':' and '-', starting with a letter or digit)"
        )
    if not vendor:
        problems.append("vendor: required")
    elif not _VENDOR.match(vendor):
        problems.append(
            f"vendor: {vendor!r} is not a vendor name (letters, digits, '.', '_' and '-')"
        )
    for key in ("region", "site", "address"):
        if len(value.get(key, "")) > _TEXT_LIMIT:
            problems.append(f"{key}: longer than {_TEXT_LIMIT} characters")
    return problems


def load_registry(
    store: Store, path: Path, rules: Rules | None = None, *, now: datetime | None = None
) -> int:
    """Given a vendor's registry CSV (see ``read_registry``), register its devices and return
    how many. A device new to the store gets status ``unknown`` until its first heartbeat; a
    known one keeps its status and heartbeat, and takes the registry's region, site and
    address. ``now`` (default: the current time) stamps a new device's status.

    Raise RegistryInvalid (nothing imported) for any problem in the file, or for a device the
    store knows under another vendor; StoreError if the database fails.
    """
    entries = read_registry(path, rules)
    now = utc_now() if now is None else _require_aware(now, "now")
    with store._guard("import a device registry into"), store.engine.begin() as connection:
        _Driver(connection).begin_write()
        owners: dict[str, str] = {}
        ids = [entry.device_id for entry in entries]
        for start in range(0, len(ids), ROWS_PER_STATEMENT):
            chunk = ids[start : start + ROWS_PER_STATEMENT]
            query = select(DEVICES.c.device_id, DEVICES.c.vendor).where(
                DEVICES.c.device_id.in_(chunk)
            )
            owners.update({row.device_id: row.vendor for row in connection.execute(query)})
        conflicts = [
            f"{path.name}:{entry.line} vendor: {entry.device_id} is already registered under "
            f"vendor {owners[entry.device_id]}, not {entry.vendor}"
            for entry in entries
            if entry.device_id in owners and owners[entry.device_id] != entry.vendor
        ]
        if conflicts:
            raise RegistryInvalid(conflicts)
        if entries:
            rows = []
            for entry in entries:
                row = _new_device(entry.device_id, entry.vendor, entry.site, now)
                row.update(region=entry.region, address=entry.address, registered=True)
                rows.append(row)
            statement = store._insert(DEVICES)
            excluded = statement.excluded
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[DEVICES.c.device_id],
                    set_={
                        "site": excluded.site,
                        "region": excluded.region,
                        "address": excluded.address,
                        "registered": excluded.registered,
                    },
                ),
                rows,
            )
    return len(entries)


# --------------------------------------------------------------------------- queries


def device(store: Store, device_id: str) -> DeviceRow | None:
    """Given a device id, return the device as stored, or None if the store has no such
    device. Raise StoreError if the database fails."""
    with store._guard("read a device from"), store.engine.connect() as connection:
        row = connection.execute(select(DEVICES).where(DEVICES.c.device_id == device_id)).first()
    if row is None:
        return None
    values_ = row._asdict()
    values_["stock"] = list(values_["stock"] or [])
    return DeviceRow(**values_)


def flips(store: Store, device_id: str, since: datetime) -> list[FlipRow]:
    """Given a device id and a start time, return the device's flips at or after it, oldest
    first. Raise ValueError if ``since`` is naive, StoreError if the database fails."""
    _require_aware(since, "since")
    query = (
        select(FLIPS)
        .where(FLIPS.c.device_id == device_id, FLIPS.c.at >= since)
        .order_by(FLIPS.c.at, FLIPS.c.id)
    )
    with store._guard("read device flips from"), store.engine.connect() as connection:
        return [FlipRow(**row._asdict()) for row in connection.execute(query)]


def current(
    store: Store,
    rules: Rules,
    now: datetime,
    *,
    vendor: str | None = None,
    region: str | None = None,
    site: str | None = None,
    vendors: Iterable[str] | None = None,
) -> list[CurrentRow]:
    """Given the fleet rules and a moment, return every device's status then (the stored
    status moved on by silence, so that it is right even if no sweep ran), ordered by
    device id; optionally only one vendor's, one region's, one site's, or those of the
    ``vendors`` given. Raise ValueError if ``now`` is naive, StoreError if the database fails.
    """
    _require_aware(now, "now")
    with store._guard("read device statuses from"), store.engine.connect() as connection:
        driver = _Driver(connection)
        conditions, params = ["1 = 1"], {}
        for name, wanted in (("vendor", vendor), ("region", region), ("site", site)):
            if wanted is not None:
                conditions.append(f"{name} = {driver.param(name)}")
                params[name] = wanted
        if vendors is not None:
            names = []
            for index, name in enumerate(sorted(set(vendors))):
                params[f"vendor{index}"] = name
                names.append(driver.param(f"vendor{index}"))
            conditions.append(f"vendor IN ({', '.join(names) or 'NULL'})")
        rows = driver.select(_JUDGED, " AND ".join(conditions) + " ORDER BY device_id", params)
    found = []
    for row in rows:
        pending = transitions(_state(row), rules.rule_for(row["vendor"]), now)
        found.append(
            CurrentRow(
                device_id=row["device_id"],
                vendor=row["vendor"],
                site=row["site"],
                region=row["region"],
                status=pending[-1].to_status if pending else row["status"],
                since=pending[-1].at if pending else row["status_since"],
                last_heartbeat=row["last_heartbeat"],
                reason=pending[-1].reason if pending else None,
            )
        )
    return found


def _filtered(
    query: Any,
    *,
    vendor: str | None = None,
    region: str | None = None,
    site: str | None = None,
    vendors: Iterable[str] | None = None,
) -> Any:
    if vendor is not None:
        query = query.where(DEVICES.c.vendor == vendor)
    if region is not None:
        query = query.where(DEVICES.c.region == region)
    if site is not None:
        query = query.where(DEVICES.c.site == site)
    if vendors is not None:
        query = query.where(DEVICES.c.vendor.in_(sorted(set(vendors))))
    return query


def summary(
    store: Store,
    rules: Rules,
    now: datetime,
    vendor: str | None = None,
    region: str | None = None,
    site: str | None = None,
) -> list[SummaryRow]:
    """Given the fleet rules and a moment, return how many devices of each vendor in each
    region are in each status then (as ``current`` judges it), ordered by vendor, region and
    status (best first); only the combinations that have devices. Optionally only one
    vendor's, region's or site's. Raise StoreError if the database fails."""
    counts = Counter(
        (row.vendor, row.region, row.status)
        for row in current(store, rules, now, vendor=vendor, region=region, site=site)
    )
    order = {name: index for index, name in enumerate(STATUSES)}
    return [
        SummaryRow(vendor_, region_, status_, number)
        for (vendor_, region_, status_), number in sorted(
            counts.items(), key=lambda item: (item[0][0], item[0][1], order.get(item[0][2], 99))
        )
    ]


def availability_by(
    store: Store,
    start: datetime,
    end: datetime,
    by: Literal["device", "vendor", "region"],
    site: str | None = None,
    *,
    rules: Rules | None = None,
    now: datetime | None = None,
    device_id: str | None = None,
    vendors: Iterable[str] | None = None,
) -> list[AvailabilityRow]:
    """Given a period [start, end), return the availability of each device, vendor or region
    (``by``), ordered by key, computed exactly from the flips: a device's status at ``start``
    is its last flip at or before it. Devices are grouped by their current vendor and region;
    optionally only one site's, one device's, or the ``vendors`` given.

    With ``rules`` and ``now``, the period ends at ``now`` at the latest and the flips that
    silence has brought about but no sweep has written yet count too. Raise ValueError if a
    time is naive, ``by`` is unknown or the period ends before it starts; StoreError if the
    database fails.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    if by not in ("device", "vendor", "region"):
        raise ValueError(f"availability by {by!r}: expected device, vendor or region")
    if now is not None:
        _require_aware(now, "now")
        end = min(end, max(now, start))
    if end < start:
        raise ValueError(
            f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    device_query = _filtered(
        select(
            DEVICES.c.device_id,
            DEVICES.c.vendor,
            DEVICES.c.region,
            DEVICES.c.status,
            DEVICES.c.last_heartbeat,
            DEVICES.c.interval,
            DEVICES.c.reported_status,
            DEVICES.c.fault_code,
            DEVICES.c.fault_message,
        ),
        site=site,
        vendors=vendors,
    )
    if device_id is not None:
        device_query = device_query.where(DEVICES.c.device_id == device_id)
    wanted = device_query.subquery()
    ranked = (
        select(
            FLIPS.c.device_id,
            FLIPS.c.at,
            FLIPS.c.to_status,
            func.row_number()
            .over(partition_by=FLIPS.c.device_id, order_by=(FLIPS.c.at.desc(), FLIPS.c.id.desc()))
            .label("rank"),
        )
        .join(wanted, wanted.c.device_id == FLIPS.c.device_id)
        .where(FLIPS.c.at <= start)
        .subquery()
    )
    before = select(ranked.c.device_id, ranked.c.at, ranked.c.to_status).where(ranked.c.rank == 1)
    during = (
        select(FLIPS.c.device_id, FLIPS.c.at, FLIPS.c.to_status)
        .join(wanted, wanted.c.device_id == FLIPS.c.device_id)
        .where(FLIPS.c.at > start, FLIPS.c.at < end)
        .order_by(FLIPS.c.device_id, FLIPS.c.at, FLIPS.c.id)
    )
    with store._guard("read device availability from"), store.engine.connect() as connection:
        devices = connection.execute(device_query).all()
        history: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        for row in connection.execute(before):
            history[row.device_id].append((row.at, row.to_status))
        for row in connection.execute(during):
            history[row.device_id].append((row.at, row.to_status))
    groups: dict[str, tuple[int, Availability]] = {}
    for row in devices:
        timeline = [{"at": at, "to_status": to} for at, to in history.get(row.device_id, [])]
        if rules is not None and now is not None:
            state = DeviceState(
                device_id=row.device_id,
                vendor=row.vendor,
                status=row.status,
                last_heartbeat=row.last_heartbeat,
                interval=row.interval,
                reported_status=row.reported_status,
                fault_code=row.fault_code,
                fault_message=row.fault_message,
            )
            for flip in transitions(state, rules.rule_for(row.vendor), end):
                timeline.append({"at": flip.at, "to_status": flip.to_status})
        key = {"device": row.device_id, "vendor": row.vendor, "region": row.region}[by]
        count, total = groups.get(key, (0, Availability()))
        groups[key] = (count + 1, total + measure(timeline, start, end))
    return [
        AvailabilityRow(key, count, total.up, total.down, total.unknown)
        for key, (count, total) in sorted(groups.items())
    ]


def flapping(
    store: Store, since: datetime, min_flips: int, *, vendors: Iterable[str] | None = None
) -> list[FlappingRow]:
    """Given a start time and a count, return the devices with at least ``min_flips`` flips
    at or after ``since``, most flips first; optionally only the ``vendors`` given. Raise
    ValueError if ``since`` is naive, StoreError if the database fails."""
    _require_aware(since, "since")
    number = func.count().label("flips")
    query = (
        select(
            FLIPS.c.device_id,
            func.max(FLIPS.c.vendor).label("vendor"),
            func.max(FLIPS.c.site).label("site"),
            func.max(FLIPS.c.region).label("region"),
            number,
        )
        .where(FLIPS.c.at >= since)
        .group_by(FLIPS.c.device_id)
        .having(func.count() >= min_flips)
        .order_by(number.desc(), FLIPS.c.device_id)
    )
    if vendors is not None:
        query = query.where(FLIPS.c.vendor.in_(sorted(set(vendors))))
    with store._guard("read flapping devices from"), store.engine.connect() as connection:
        return [
            FlappingRow(row.device_id, row.vendor, row.site, row.region, row.flips)
            for row in connection.execute(query)
        ]


def vendor_last_heartbeat(store: Store) -> dict[str, datetime]:
    """Return, for each vendor with at least one heartbeat stored, when the last of its
    heartbeats arrived (the server's clock). Raise StoreError if the database fails."""
    query = (
        select(DEVICES.c.vendor, func.max(DEVICES.c.last_heartbeat).label("last"))
        .where(DEVICES.c.last_heartbeat.is_not(None))
        .group_by(DEVICES.c.vendor)
    )
    with store._guard("read vendors' last heartbeats from"), store.engine.connect() as connection:
        return {row.vendor: row.last for row in connection.execute(query)}


def latest_reasons(store: Store, device_ids: Iterable[str]) -> dict[str, str]:
    """Given device ids, return the reason of each one's latest flip (devices without flips
    are absent). Raise StoreError if the database fails."""
    wanted = sorted(set(device_ids))
    found: dict[str, str] = {}
    with store._guard("read device flips from"), store.engine.connect() as connection:
        for start in range(0, len(wanted), ROWS_PER_STATEMENT):
            chunk = wanted[start : start + ROWS_PER_STATEMENT]
            ranked = (
                select(
                    FLIPS.c.device_id,
                    FLIPS.c.reason,
                    func.row_number()
                    .over(
                        partition_by=FLIPS.c.device_id,
                        order_by=(FLIPS.c.at.desc(), FLIPS.c.id.desc()),
                    )
                    .label("rank"),
                )
                .where(FLIPS.c.device_id.in_(chunk))
                .subquery()
            )
            query = select(ranked.c.device_id, ranked.c.reason).where(ranked.c.rank == 1)
            found.update({row.device_id: row.reason for row in connection.execute(query)})
    return found


__all__ = [
    "AvailabilityRow",
    "CurrentRow",
    "DeviceRow",
    "FlappingRow",
    "FlipRow",
    "ForeignDevice",
    "RegistryEntry",
    "RegistryInvalid",
    "SummaryRow",
    "availability_by",
    "current",
    "decode_registry",
    "device",
    "flapping",
    "flips",
    "ingest",
    "latest_reasons",
    "load_registry",
    "read_registry",
    "summary",
    "sweep",
    "vendor_last_heartbeat",
]
