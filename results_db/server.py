"""The ingest API of a central results store: ``wattbench serve``.

Endpoints (JSON in and out):

* ``POST /api/v1/runs`` — body: a :class:`~wattbench.core.results.RunResult` as JSON
  (``wattbench run --json``), header ``Authorization: Bearer <token>``. 201
  ``{"status": "created"}``; 200 ``{"status": "duplicate"}`` when the run's uuid is
  already stored with the same content (a re-upload is acknowledged, never stored
  twice). Errors are ``{"status": "error", "error": <code>, "detail": <one line>}``:
  400 malformed JSON, 401 missing/unknown/revoked token, 403 token of another device,
  409 uuid stored with different content or for another device (``path``: the first
  differing field; the stored run is kept), 413 body over the limit, 415 compressed
  body, 422 invalid or implausible run (``problems``: the JSON path and reason of each
  bad field, :mod:`wattbench.core.validation`), 503 database unavailable or too many
  connections (retry later).
* ``POST /api/v1/runs/batch`` — body: a JSON array of runs, or JSON Lines (one run per
  line, ``Content-Type: application/x-ndjson``), at most ``max_batch_runs`` (1000) and
  the body limit. Each run by the rules above, the good ones stored in one transaction;
  200 ``{"status": "ok", "runs": N, "created": …, "duplicate": …, "conflict": …,
  "invalid": …, "forbidden": …, "results": [{"index", "run_id", "status", "code", …}]}``
  with one entry per run, in order (``code``: what ``POST /api/v1/runs`` would answer;
  refusals carry its ``error``/``detail``/``path``/``problems``). The whole batch is
  refused only when it cannot be read (400, 401, 408, 413, 415, 422) or stored (503:
  nothing of it was written; send it again as it is).
* ``POST /api/v1/profiles`` — body: a ``wattbench doctor --json`` report, header
  ``Authorization: Bearer <token>``; stored as the device's profile (``wattbench doctor
  --save --upload-to URL``), so that runs uploaded afterwards point at it and show as
  validated. 201 ``{"status": "created", "profile_id": N}``; 200 ``{"status":
  "duplicate", …}`` when the same report (device name and ``created_at``) is stored
  already; 400 malformed JSON, 401 as above, 403 report of another device, 409 same device
  and time with a different report (the stored one is kept), 413, 415, 422 not a doctor
  report, 503.
* ``GET /api/v1/leaderboard?suite=&scope=&include_invalid=&hide_estimated=&limit=`` — the
  rows of :meth:`Store.leaderboard` (the JSON of `wattbench leaderboard --format json`):
  ranked within rank groups (suite version · scenario · mode · energy scope · measured or
  estimated; ``rank_group``), ranks restarting at 1 in each, top ``limit`` (default 100)
  per group. ``scope`` (chip, module, board or wall) keeps one energy scope; another value
  is 422.
* ``GET /healthz`` — 200 with the schema revision, 503 when the database is down.

FastAPI and uvicorn come with ``pip install 'wattbench[server]'``; this module
imports them, so import it only where they are installed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
import pydantic_core
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from wattbench.core.errors import ConfigError, StoreError
from wattbench.core.results import RunResult
from wattbench.core.validation import Problem, describe_problems, validate_result
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.http_guard import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT_S,
    ENV_READ_TIMEOUT,
    MAX_HEADER_BYTES,
    check_body_headers,
    read_limited_body,
)
from wattbench.results_db.http_guard import Reply as _Reply
from wattbench.results_db.http_guard import error_reply as _error
from wattbench.results_db.http_guard import guarded_protocol as _guarded_protocol
from wattbench.results_db.http_guard import hardening as _hardening
from wattbench.results_db.leaderboard import ENERGY_SCOPES
from wattbench.results_db.profiles import ProfileConflictError, save_profile_once
from wattbench.results_db.schema import UPLOAD_RECEIVED
from wattbench.results_db.store import Store, device_name, head_revision
from wattbench.results_db.tokens import check_token

#: The HTTP hardening (header and body deadlines, body limit, connection cap, compressed
#: bodies refused) is :mod:`wattbench.results_db.http_guard`; its names are re-exported.
__all__ = [
    "BATCH_STATUSES",
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_INGEST_THREADS",
    "DEFAULT_MAX_BATCH_RUNS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_READ_TIMEOUT_S",
    "ENV_DB",
    "ENV_MAX_BODY",
    "ENV_READ_TIMEOUT",
    "JSON_LINES_TYPES",
    "MAX_HEADER_BYTES",
    "ROUTES_GROUP",
    "TOKEN_HINT",
    "RouteHook",
    "app_from_env",
    "authorise_header",
    "create_app",
    "ingest_problems",
    "route_hooks",
    "run_server",
    "uvicorn_config",
]

#: Most runs in one ``POST /api/v1/runs/batch`` (the body limit applies as well).
DEFAULT_MAX_BATCH_RUNS = 1000
#: Content types of a batch given as JSON Lines (one run per line); anything else is read
#: as a JSON array of runs.
JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/jsonlines")
#: Uploads validated and written at once (the store's connection pool is sized to match).
DEFAULT_INGEST_THREADS = int(os.environ.get("WATTBENCH_INGEST_THREADS", "8"))
TOKEN_HINT = "create one on the server with `wattbench token create --device NAME`"
#: Entry point group of extra API routes. Each entry point names a callable
#: ``mount(app, store, authorise)`` that adds routes to the app; ``authorise(header)``
#: takes the ``Authorization`` header and returns the token's device (raising the 401/503
#: reply otherwise). The store knows nothing of the parts that mount routes this way.
ROUTES_GROUP = "wattbench.server_routes"

#: ``mount(app, store, authorise)``: see :data:`ROUTES_GROUP`.
RouteHook = Callable[[FastAPI, Store, Callable[[str | None], str]], None]


def route_hooks() -> list[RouteHook]:
    """The route hooks installed under :data:`ROUTES_GROUP` (one whose dependencies are
    missing is left out, with a warning: the ingest API itself still serves)."""
    import logging
    from importlib.metadata import entry_points

    hooks: list[RouteHook] = []
    for ep in entry_points(group=ROUTES_GROUP):
        try:
            hooks.append(ep.load())
        except ImportError as exc:
            logging.getLogger("wattbench.server").warning(
                "routes %s left out: %s", ep.name, _first_line(exc)
            )
    return hooks


def authorise_header(store: Store, header: str | None) -> str:
    """The device of the bearer token in ``header`` (the 401/503 reply otherwise)."""
    return _authorise(store, _bearer(header))


def create_app(
    store: Store,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ingest_threads: int = DEFAULT_INGEST_THREADS,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    max_batch_runs: int = DEFAULT_MAX_BATCH_RUNS,
    routes: Sequence[RouteHook] | None = None,
) -> FastAPI:
    """A FastAPI app that ingests runs into ``store`` (one app per store; no globals).

    ``routes`` mount extra routes (default: the hooks of :data:`ROUTES_GROUP`).

    At most ``ingest_threads`` uploads (single runs or batches) are validated and written
    at once; more threads only fight over the GIL and the connection pool.
    """
    app = FastAPI(
        title="wattbench ingest",
        description="Authenticated, idempotent upload of wattbench runs; leaderboard reads.",
        version="1",
    )
    app.state.store = store
    limiter: anyio.CapacityLimiter | None = None

    @app.exception_handler(_Reply)
    async def _reply(_request: Request, exc: _Reply) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    for hook in route_hooks() if routes is None else routes:
        hook(app, store, functools.partial(authorise_header, store))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"status": "error", "error": code, "detail": str(exc.detail)},
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_query(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_describe(e) for e in exc.errors()]
        return JSONResponse(
            {"status": "error", "error": "invalid_request", "detail": errors[0], "errors": errors},
            status_code=422,
        )

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            revision = store.current_revision()
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "error", "error": "store_unavailable", "detail": _first_line(exc)},
                status_code=503,
            )
        if revision != head_revision():
            detail = f"database schema is {revision or 'missing'}, expected {head_revision()}"
            return JSONResponse(
                {"status": "error", "error": "store_unavailable", "detail": detail},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "schema": revision})

    @app.get("/api/v1/leaderboard")
    def leaderboard(
        suite: str | None = None,
        include_invalid: bool = False,
        hide_estimated: bool = False,
        limit: int = Query(100, ge=1, le=1000, description="Top N per rank group."),
        scope: str | None = Query(
            None, description="Only this energy scope: chip, module, board or wall."
        ),
    ) -> JSONResponse:
        if scope is not None and scope not in ENERGY_SCOPES:
            raise _error(
                422,
                "invalid_request",
                f"unknown scope {scope[:40]!r}: use {', '.join(ENERGY_SCOPES)}",
            )
        try:
            rows = store.leaderboard(
                suite,
                include_invalid=include_invalid,
                hide_estimated=hide_estimated,
                limit=limit,
                scope=scope,
            )
        except (SQLAlchemyError, StoreError) as exc:
            return JSONResponse(
                {"status": "error", "error": "store_unavailable", "detail": _first_line(exc)},
                status_code=503,
            )
        return JSONResponse([r.model_dump(mode="json") for r in rows])

    async def read_body(request: Request) -> tuple[str, bytes]:
        """The bearer token and the whole body, within the limits (415, 413, 401, 408)."""
        check_body_headers(request, max_body_bytes)
        token = _bearer(request.headers.get("authorization"))
        # the whole body (Content-Length or chunked) within the read timeout
        return token, await read_limited_body(request, max_body_bytes, read_timeout_s)

    async def in_thread(fn: Any) -> tuple[int, dict[str, Any]]:
        nonlocal limiter
        if limiter is None:  # created inside the event loop that uses it
            limiter = anyio.CapacityLimiter(ingest_threads)
        result: tuple[int, dict[str, Any]] = await anyio.to_thread.run_sync(fn, limiter=limiter)
        return result

    @app.post("/api/v1/runs")
    async def post_run(request: Request) -> JSONResponse:
        token, body = await read_body(request)
        status, answer = await in_thread(functools.partial(_ingest, store, token, body))
        return JSONResponse(answer, status_code=status)

    @app.post("/api/v1/runs/batch")
    async def post_batch(request: Request) -> JSONResponse:
        token, body = await read_body(request)
        json_lines = request.headers.get("content-type", "").split(";")[0].strip().lower()
        ingest = functools.partial(
            _ingest_batch, store, token, body, json_lines in JSON_LINES_TYPES, max_batch_runs
        )
        status, answer = await in_thread(ingest)
        return JSONResponse(answer, status_code=status)

    @app.post("/api/v1/profiles")
    async def post_profile(request: Request) -> JSONResponse:
        token, body = await read_body(request)
        status, answer = await in_thread(functools.partial(_ingest_profile, store, token, body))
        return JSONResponse(answer, status_code=status)

    return app


def _ingest_profile(store: Store, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Authorise and store one device profile, idempotently (blocking: in the thread pool)."""
    device = _authorise(store, token)
    try:
        report: Any = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise _error(
            400,
            "malformed_json",
            f"body is not valid JSON ({exc}): send `wattbench doctor --json`",
        ) from None
    if not isinstance(report, dict):
        raise _error(422, "invalid_profile", "not a doctor report: send `wattbench doctor --json`")
    owner = report.get("device_name")
    if isinstance(owner, str) and owner and owner != device:
        raise _error(
            403,
            "forbidden",
            f"this token writes for device {device!r}, the profile is of {owner[:200]!r}: "
            f"use the token created for {owner[:200]!r}",
        )
    try:
        profile_id, created = save_profile_once(store.engine, report)
    except ProfileConflictError as exc:
        raise _error(409, "conflict", str(exc)) from None
    except (ConfigError, ValueError, TypeError) as exc:
        raise _error(422, "invalid_profile", _first_line(exc)) from None
    except (StoreError, SQLAlchemyError) as exc:
        raise _unavailable(exc) from exc
    status = "created" if created else "duplicate"
    answer = {"status": status, "profile_id": profile_id, "device": device}
    return (201 if created else 200), answer


def _ingest(store: Store, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Authorise, validate and store one run (blocking: runs in the thread pool)."""
    device = _authorise(store, token)
    result = _parse(body)
    _check_run(result, device)
    try:
        created = store.save_run(result, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    except RunConflictError as exc:
        raise _conflict(exc, device) from None
    except (StoreError, SQLAlchemyError) as exc:
        raise _unavailable(exc) from exc
    status = "created" if created else "duplicate"
    return (201 if created else 200), {"status": status, "run_id": result.run_id}


def _ingest_batch(
    store: Store, token: str, body: bytes, json_lines: bool, max_runs: int
) -> tuple[int, dict[str, Any]]:
    """Authorise, validate and store a batch of runs, each by the rules of ``POST
    /api/v1/runs``; the good ones in one transaction. 200 with one answer per run, in
    order; the whole batch fails only when it cannot be read (400, 413, 422) or stored
    (503: nothing of it was written)."""
    device = _authorise(store, token)
    items = _split_batch(body, json_lines, max_runs)
    answers: list[dict[str, Any]] = [{} for _ in items]
    good: list[tuple[int, RunResult]] = []
    for i, item in enumerate(items):
        result: RunResult | None = None
        try:
            if isinstance(item, RunResult):
                result = item
            elif isinstance(item, bytes):
                result = _parse(item)
            else:
                result = _validate_item(item)
            _check_run(result, device)
        except _Reply as reply:
            run_id = result.run_id if result is not None else _raw_run_id(item)
            answers[i] = _run_answer(i, run_id, reply)
            continue
        good.append((i, result))
    if good:
        try:
            outcomes = store.save_runs(
                [r for _, r in good], upload_state=UPLOAD_RECEIVED, keep_payload=False
            )
        except (StoreError, SQLAlchemyError) as exc:
            raise _unavailable(exc) from exc
        for (i, r), outcome in zip(good, outcomes, strict=True):
            if outcome.conflict is not None:
                answers[i] = _run_answer(i, r.run_id, _conflict(outcome.conflict, device))
            else:
                code = 201 if outcome.status == "created" else 200
                answers[i] = {"index": i, "run_id": r.run_id, "status": outcome.status}
                answers[i]["code"] = code
    counts = {k: 0 for k in BATCH_STATUSES}
    for a in answers:
        counts[a["status"]] += 1
    return 200, {"status": "ok", "runs": len(items), **counts, "results": answers}


#: Per-run statuses in a batch answer (``code``: what ``POST /api/v1/runs`` would answer).
BATCH_STATUSES = ("created", "duplicate", "conflict", "invalid", "forbidden")
_STATUS_OF_CODE = {403: "forbidden", 409: "conflict"}  # any other refusal: invalid


def _run_answer(index: int, run_id: str | None, reply: _Reply) -> dict[str, Any]:
    """One run's entry in a batch answer, from the error the single endpoint would give."""
    extra = {k: v for k, v in reply.body.items() if k not in ("status", "run_id")}
    status = _STATUS_OF_CODE.get(reply.status, "invalid")
    return {"index": index, "run_id": run_id, "status": status, "code": reply.status, **extra}


def _split_batch(body: bytes, json_lines: bool, max_runs: int) -> list[Any]:
    """The runs of a batch body: a JSON array (parsed), or JSON Lines (one body per line,
    so that a malformed line is one invalid run)."""
    items: list[Any]
    if json_lines:
        items = [line for line in body.split(b"\n") if line.strip()]
    else:
        try:  # all runs at once (the usual batch; 3x faster than parsing, then validating)
            items = _RUN_LIST.validate_json(body)
        except ValidationError:  # then one at a time, so that each bad run is named
            try:  # NaN/Infinity parse here; validate_result refuses them per run (422)
                items = pydantic_core.from_json(body)
            except ValueError as exc:
                raise _malformed(str(exc), batch=True) from None
        if not isinstance(items, list):
            raise _error(
                422,
                "invalid_request",
                "a batch is a JSON array of runs, or JSON Lines (one run per line, "
                "Content-Type: application/x-ndjson)",
            )
    if len(items) > max_runs:
        raise _error(
            413,
            "too_large",
            f"{len(items)} runs in one batch, more than {max_runs}: send smaller batches",
            headers={"Connection": "close"},
        )
    return items


_RUN_LIST: TypeAdapter[list[RunResult]] = TypeAdapter(list[RunResult])


def _validate_item(item: Any) -> RunResult:
    """A run of a JSON array batch, already parsed, as a RunResult (422 as ``_parse``)."""
    try:
        return RunResult.model_validate(item)
    except ValidationError as exc:
        raise _not_a_run(exc) from None


def _raw_run_id(item: Any) -> str | None:
    """The run id of a batch entry that is not a valid run, when it has a readable one."""
    if isinstance(item, bytes):
        try:
            item = pydantic_core.from_json(item)
        except ValueError:
            return None
    run_id = item.get("run_id") if isinstance(item, dict) else None
    return run_id[:100] if isinstance(run_id, str) else None


def _authorise(store: Store, token: str) -> str:
    """The device ``token`` writes for (401 otherwise, 503 when the store is down)."""
    try:
        check = check_token(store, token)
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from exc
    if check.device is None:
        raise _error(401, "unauthorized", f"{check.reason}: {TOKEN_HINT}")
    return check.device


def _check_run(result: RunResult, device: str) -> None:
    """Refuse an implausible run (422) or a run of another device (403)."""
    problems = ingest_problems(result)
    if problems:
        raise _error(
            422,
            "invalid_run",
            f"implausible run {result.run_id[:60]}: {describe_problems(problems)}",
            errors=[str(p) for p in problems],
            problems=[{"path": p.path, "message": p.message} for p in problems],
        )
    owner = device_name(result)
    if owner != device:
        raise _error(
            403,
            "forbidden",
            f"this token writes runs of device {device!r}, the run is from {owner!r}: "
            f"use the token created for {owner!r}",
        )


def _conflict(exc: RunConflictError, owner: str) -> _Reply:
    """409: the run id is stored with other content (or for another device); kept as stored."""
    if exc.stored_device is not None and exc.stored_device != owner:
        detail = (
            f"run {exc.run_id} is already stored for device {exc.stored_device!r}: "
            f"a run id must be unique; record the run again"
        )
    else:
        detail = (
            f"run {exc.run_id} is already stored with different content (first difference: "
            f"{exc.path}); the stored run is kept: record the run again instead of editing it"
        )
    return _error(409, "conflict", detail, run_id=exc.run_id, path=exc.path)


def _parse(body: bytes) -> RunResult:
    """Validate the body as a run; NaN and Infinity (not JSON, and not storable) refused."""
    if b"NaN" in body or b"Infinity" in body:
        # Rare: tell a label that says "NaN" from a number that is one.
        try:
            data: Any = pydantic_core.from_json(body, allow_inf_nan=False)
        except ValueError as exc:
            raise _malformed(f"{exc}; NaN and Infinity are not numbers JSON allows") from None
        validate: Any = functools.partial(RunResult.model_validate, data)
    else:
        validate = functools.partial(RunResult.model_validate_json, body)
    try:
        result: RunResult = validate()
        return result
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            raise _malformed(str(first.get("msg"))) from None
        raise _not_a_run(exc) from None


def _not_a_run(exc: ValidationError) -> _Reply:
    errors = [_describe(e) for e in exc.errors()[:20]]
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return _error(422, "invalid_run", f"not a wattbench run: {errors[0]}{more}", errors=errors)


def _malformed(why: str, batch: bool = False) -> _Reply:
    what = "a JSON array of runs or JSON Lines" if batch else "`wattbench run --json`"
    return _error(400, "malformed_json", f"body is not valid JSON ({why}): send {what}")


def _describe(error: Any) -> str:
    loc = ".".join(str(x) for x in error.get("loc", ())) or "body"
    return f"{loc}: {error.get('msg', 'invalid')}"


def ingest_problems(result: RunResult) -> list[Problem]:
    """Why a parsed run may not be stored (:func:`wattbench.core.validation.validate_result`)."""
    return validate_result(result)


def _bearer(header: str | None) -> str:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _error(
            401, "unauthorized", f"missing bearer token (Authorization: Bearer …): {TOKEN_HINT}"
        )
    return value.strip()


def _unavailable(exc: BaseException) -> _Reply:
    return _error(503, "store_unavailable", f"{_first_line(exc)}: retry later")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: Environment of the worker processes of ``run_server(workers=N)`` (see app_from_env).
ENV_DB = "WATTBENCH_SERVE_DB"
ENV_MAX_BODY = "WATTBENCH_SERVE_MAX_BODY"


def app_from_env() -> FastAPI:
    """App factory of each uvicorn worker process: the store named by ``$WATTBENCH_SERVE_DB``."""
    return create_app(
        Store.open(os.environ[ENV_DB]),
        max_body_bytes=int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY_BYTES)),
        read_timeout_s=float(os.environ.get(ENV_READ_TIMEOUT, DEFAULT_READ_TIMEOUT_S)),
    )


def __getattr__(name: str) -> Any:
    # the protocol class by its former name here (uvicorn's workers unpickle it by name)
    if name == "GuardedHTTPProtocol":
        return _guarded_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def uvicorn_config(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    access_log: bool = True,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    tls_certfile: str | None = None,
    tls_keyfile: str | None = None,
) -> Any:
    """The ``uvicorn.Config`` that ``wattbench serve`` runs (one process)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(store, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s),
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        **_hardening(idle_timeout_s, max_connections, tls_certfile, tls_keyfile),
    )
    config.wattbench_read_timeout_s = read_timeout_s  # type: ignore[attr-defined]
    return config


def run_server(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    access_log: bool = True,
    workers: int = 1,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    tls_certfile: str | None = None,
    tls_keyfile: str | None = None,
) -> None:
    """Serve ``store`` with uvicorn until interrupted.

    ``workers > 1`` runs that many server processes on the port (uvicorn's process
    manager); each opens the store itself, so the store's URL must reach them: it is
    passed in the environment. ``max_connections`` is per process.
    """
    import uvicorn

    if workers <= 1:
        config = uvicorn_config(
            store,
            host,
            port,
            max_body_bytes=max_body_bytes,
            access_log=access_log,
            read_timeout_s=read_timeout_s,
            idle_timeout_s=idle_timeout_s,
            max_connections=max_connections,
            tls_certfile=tls_certfile,
            tls_keyfile=tls_keyfile,
        )
        uvicorn.Server(config).run()
        return
    os.environ[ENV_DB] = store.engine.url.render_as_string(hide_password=False)
    os.environ[ENV_MAX_BODY] = str(max_body_bytes)
    os.environ[ENV_READ_TIMEOUT] = str(read_timeout_s)
    store.close()
    uvicorn.run(
        "wattbench.results_db.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        workers=workers,
        **_hardening(idle_timeout_s, max_connections, tls_certfile, tls_keyfile),
    )
