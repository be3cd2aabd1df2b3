"""The HTTP API of ``opsctl server`` (FastAPI; the OpenAPI document is at ``/openapi.json``).

- ``POST /api/v1/agent/push`` — an agent's batch (agent token). Committed before the 200;
  a batch id already stored answers 200 with ``duplicate: true`` and stores nothing.
- ``POST /api/v1/dispensers/heartbeats`` — a vendor's heartbeats (vendor token; only that
  vendor's devices). See docs/dispenser-interface.md.
- ``GET /api/v1/status`` — the checks that are not OK (any token).
- ``GET /metrics`` — Prometheus text format; ``GET /healthz`` — store and scheduler.

Every error answer is a ``Problem`` (error, detail, fields): 400 malformed JSON, 401 no or
unknown token, 403 a token of the wrong scope or another vendor's device, 413 a body over
``MAX_BODY_BYTES``, 422 a field that does not fit the format (its path named), 503 the store
is unavailable (the client keeps its data and retries).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsctl import __version__
from opsctl.contract import State, utc_now
from opsctl.server.schemas import (
    MAX_BODY_BYTES,
    AgentPush,
    HeartbeatBatch,
    HeartbeatsAccepted,
    Problem,
    PushAccepted,
)
from opsctl.store import Store, StoreError

log = logging.getLogger("opsctl.server")

ModelT = TypeVar("ModelT", bound=BaseModel)

#: The site of an agent whose token names none and which no inventory host names.
UNASSIGNED_SITE = "unassigned"


class ApiError(Exception):
    """An error answer: status code, short error, detail, and the fields it concerns."""

    def __init__(
        self, status: int, error: str, detail: str, fields: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = fields or []


def _problem(status: int, error: str, detail: str, fields: Any = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = Problem(error=error, detail=detail, fields=fields or []).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413, whether the
    client declares the length or streams it chunked."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = _problem(
            413,
            "body too large",
            f"the request body is over the limit of {self.limit} bytes; send smaller batches",
        )
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        seen = 0
        exceeded = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if exceeded:
                # The app turned the interrupted read into an error answer of its own
                # (FastAPI says 400); the client must hear 413 instead.
                if not answered:
                    answered = True
                    await too_big(scope, receive, send)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not answered:
                await too_big(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


bearer = HTTPBearer(auto_error=False, description="An opsctl token (opsctl token create)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def create_app(
    store: Store,
    loaded: Any = None,
    *,
    scheduler: Any = None,
    registry: Any = None,
) -> FastAPI:
    """Given an open store, the loaded inventory (or None), the scheduler service (or None)
    and a prometheus_client registry (or None for a new one), return the ASGI app."""
    from prometheus_client import CollectorRegistry

    from opsctl.server.metrics import IngestMetrics, StoreCollector

    registry = registry if registry is not None else CollectorRegistry()
    ingest_metrics = IngestMetrics(registry)
    registry.register(StoreCollector(store))
    rules = _fleet_rules(loaded)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()

    app = FastAPI(
        title="opsctl server",
        version=__version__,
        description=(
            "Intake for opsctl agents and for dispenser vendors' heartbeats, Prometheus "
            "metrics and health. Every /api call carries an opsctl token as a Bearer token."
        ),
        lifespan=lifespan,
        responses={
            401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
            403: {"model": Problem, "description": "the token may not do this"},
            413: {"model": Problem, "description": "the body is too large"},
            422: {"model": Problem, "description": "a field does not fit the format"},
            503: {"model": Problem, "description": "the store is unavailable; retry later"},
        },
    )
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        path = request.url.path
        if path.startswith("/api/"):
            ingest_metrics.observe_request(
                path, response.status_code, time.perf_counter() - started
            )
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        if request.url.path.startswith("/api/"):
            ingest_metrics.rejected(request.url.path, error.error)
        return _problem(error.status, error.error, error.detail, error.fields)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": _field_path(problem.get("loc", ())),
                "message": _MESSAGES.get(problem.get("type", ""), problem.get("msg", "")),
                "type": problem.get("type", ""),
            }
            for problem in error.errors()
        ]
        ingest_metrics.rejected(request.url.path, "invalid")
        if any(f["type"] == "json_invalid" for f in fields):
            return _problem(400, "malformed JSON", "the body is not valid JSON", fields)
        first = fields[0] if fields else {"field": "body", "message": "invalid"}
        more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        detail = f"{first['field']}: {first['message']}{more}"
        return _problem(422, "invalid request", detail, fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _problem(error.status_code, "http error", str(error.detail))

    @app.exception_handler(StoreError)
    async def store_down(request: Request, error: StoreError) -> JSONResponse:
        log.error("store: %s", error)
        return _problem(503, "store unavailable", "the store cannot be written now; retry later")

    def authenticate(credentials: HTTPAuthorizationCredentials | None, scope: str | None) -> Any:
        from opsctl.store.tokens import authenticate as check_token

        if credentials is None or not credentials.credentials:
            raise ApiError(401, "unauthorized", "send an opsctl token: Authorization: Bearer …")
        token = check_token(store, credentials.credentials)
        if token is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        if scope is not None and token.scope != scope:
            raise ApiError(
                403, "forbidden", f"this is a {token.scope} token; this call needs a {scope} token"
            )
        return token

    @app.post(
        "/api/v1/agent/push",
        response_model=PushAccepted,
        summary="Store one batch of an agent's samples, facts and local check results",
        tags=["agents"],
        openapi_extra=_request_body(AgentPush),
    )
    async def agent_push(request: Request, credentials: Credentials) -> PushAccepted:
        token = await run_in_threadpool(authenticate, credentials, "agent")
        push = await _parse(request, AgentPush)
        address = request.client.host if request.client else ""
        return await run_in_threadpool(store_agent_push, push, token, address)

    def store_agent_push(push: AgentPush, token: Any, address: str) -> PushAccepted:
        from opsctl.store.intake import store_push

        if push.agent != token.subject:
            raise ApiError(
                403,
                "forbidden",
                f"this token belongs to agent {token.subject!r}, not {push.agent!r}",
                [{"field": "body.agent", "message": "not this token's agent"}],
            )
        site = token.site or _site_of_agent(loaded, push.agent)
        outcome = store_push(store, push, site=site, address=address, now=utc_now())
        ingest_metrics.pushed(outcome.samples, outcome.results, outcome.duplicate)
        return PushAccepted(
            batch_id=push.batch_id,
            duplicate=outcome.duplicate,
            samples=outcome.samples,
            results=outcome.results,
        )

    @app.post(
        "/api/v1/dispensers/heartbeats",
        response_model=HeartbeatsAccepted,
        summary="Store a vendor's batch of dispenser heartbeats",
        tags=["dispensers"],
        openapi_extra=_request_body(HeartbeatBatch),
    )
    async def heartbeats(request: Request, credentials: Credentials) -> HeartbeatsAccepted:
        token = await run_in_threadpool(authenticate, credentials, "vendor")
        batch = await _parse(request, HeartbeatBatch)
        return await run_in_threadpool(store_heartbeats, batch, token)

    def store_heartbeats(batch: HeartbeatBatch, token: Any) -> HeartbeatsAccepted:
        from opsctl.store.fleet import ForeignDevice, ingest

        if batch.vendor != token.subject:
            raise ApiError(
                403,
                "forbidden",
                f"this token belongs to vendor {token.subject!r}, not {batch.vendor!r}",
                [{"field": "body.vendor", "message": "not this token's vendor"}],
            )
        try:
            accepted = ingest(store, batch, rules, utc_now())
        except ForeignDevice as foreign:
            shown = ", ".join(sorted(foreign.device_ids)[:10])
            raise ApiError(
                403,
                "forbidden",
                f"devices registered to another vendor: {shown}; nothing was stored",
                [
                    {"field": "body.heartbeats", "message": f"foreign device {d}"}
                    for d in sorted(foreign.device_ids)[:10]
                ],
            ) from None
        ingest_metrics.heartbeats(batch.vendor, accepted.accepted)
        return accepted

    @app.get("/api/v1/status", summary="The checks that are not OK", tags=["status"])
    def status(credentials: Credentials, site: str | None = None) -> dict[str, Any]:
        authenticate(credentials, None)
        rows = store.problems(site)
        return {
            "worst": max((int(r.state) for r in rows), default=0),
            "checks": [
                {
                    "check_id": r.check_id,
                    "site": r.site,
                    "target": r.target,
                    "kind": r.kind,
                    "state": State(r.state).name,
                    "state_type": r.state_type,
                    "since": r.since.isoformat(),
                    "last_checked": r.last_checked.isoformat(),
                    "summary": r.summary,
                }
                for r in rows
            ],
        }

    @app.get("/healthz", summary="Is the store reachable and the scheduler alive", tags=["health"])
    def healthz() -> JSONResponse:
        from sqlalchemy import text

        body: dict[str, Any] = {"version": __version__}
        healthy = True
        try:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            body["store"] = "ok"
        except Exception as error:  # any failure is "not reachable"; the reason is logged
            log.error("healthz: store: %s", error)
            body["store"] = "unreachable"
            healthy = False
        if scheduler is None:
            body["scheduler"] = "disabled"
        else:
            alive = scheduler.alive()
            body["scheduler"] = "ok" if alive else "stopped"
            body["scheduler_leader"] = bool(scheduler.is_leader)
            healthy = healthy and alive
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", summary="Prometheus metrics", tags=["health"])
    def metrics(request: Request) -> Response:
        from opsctl.server.metrics import render

        body, content_type = render(registry, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = default_openapi()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in (AgentPush, HeartbeatBatch):
                schema = model.model_json_schema(ref_template=_REF)
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
        return app.openapi_schema or default_openapi()

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_REF = "#/components/schemas/{model}"

#: Clearer words than pydantic's for the mistakes vendors make most.
_MESSAGES = {
    "timezone_aware": "expected a time with a zone offset, e.g. 2026-11-23T08:00:00+08:00",
}


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of an endpoint that validates its raw body with ``model``."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
            },
        }
    }


async def _parse(request: Request, model: type[ModelT]) -> ModelT:
    """Read the body and validate it as ``model`` straight from the JSON text (pydantic's
    parser: about twice as fast as decoding to Python objects first, which matters for
    batches of a thousand heartbeats). Errors carry the same ``body.…`` paths FastAPI's
    own validation would give."""
    body = await request.body()
    try:
        return await run_in_threadpool(model.model_validate_json, body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None


def _field_path(loc: Any) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _site_of_agent(loaded: Any, agent: str) -> str:
    """The site of the inventory host an agent is named after (an agent host first)."""
    if loaded is None:
        return UNASSIGNED_SITE
    found = [
        (host.transport != "agent", site.name)
        for site in loaded.inventory.sites
        for host in site.hosts
        if host.name == agent
    ]
    return min(found)[1] if found else UNASSIGNED_SITE


def _fleet_rules(loaded: Any) -> Any:
    from opsctl.fleet import Rules

    if loaded is None:
        return Rules({})
    return Rules.from_inventory(loaded.inventory)


def dump_openapi(app: FastAPI) -> str:
    """Return the app's OpenAPI document as JSON text."""
    return json.dumps(app.openapi(), ensure_ascii=False, indent=2)
