"""The fake Cliniko: a Starlette app with Cliniko's lists, filters, auth, rate limit and faults."""

from __future__ import annotations

import asyncio
import base64
import bisect
import datetime as dt
import email.utils
import fnmatch
import json
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._filters import FilterType
from .._model import Model
from .._resource import ListOp
from ..models import PublicSettings, ReferralSource, Settings
from ..resources import RESOURCES
from ..resources._upload import UploadOp
from ._checks import check_fake_settings
from ._data import Dataset, generate, iso
from ._records import plural, sample
from ._transport import DroppedConnection, FakeTransport
from ._validate import Invalid, validate_body

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_USER_AGENT",
    "Clock",
    "FakeCliniko",
    "FaultRule",
    "Faults",
    "KeyStats",
    "LoopClock",
    "RealClock",
]

DEFAULT_API_KEY = "MS0xLWZha2UtdGVzdC1rZXktMDAwMQ-au1"
DEFAULT_USER_AGENT = "cliniko-async tests (dev@example.com)"
_UA = re.compile(r"\S.*\([^()\s]+@[^()\s]+\.[A-Za-z]{2,}\)")
_SHARD_SUFFIX = re.compile(r"-[a-z]{2}\d{1,2}$", re.IGNORECASE)
_OPS = re.compile(r"^([a-z_]+):(!\?|\?|~~|~|!=|>=|<=|=|>|<|\*)(.*)$", re.DOTALL)
_OPERATORS = {
    # The server's own table (not the client's), so the tests compare two views.
    FilterType.STRING: {"=", "!=", "~", "~~", "?", "!?"},
    FilterType.INTEGER: {"=", "!=", ">=", ">", "<=", "<", "?", "!?"},
    FilterType.DATE: {"=", ">=", ">", "<=", "<", "?", "!?"},
    FilterType.DATETIME: {">=", ">", "<=", "<", "*", "?", "!?"},
    FilterType.BOOLEAN: {"=", "!=", "?", "!?"},
    FilterType.ARRAY: {"~", "?", "!?"},
}


class Clock(Protocol):
    """Where the fake reads time: ``monotonic()`` for windows, ``wall()`` for headers."""

    def monotonic(self) -> float: ...
    def wall(self) -> float: ...


class LoopClock:
    """The running event loop's clock (virtual under looptime); wall = a fixed epoch + loop time."""

    EPOCH = 1_800_000_000.0

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return self.EPOCH + self.monotonic()


class RealClock:
    """Real time (used when the fake is served by uvicorn)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


@attrs.define
class FaultRule:
    """Faults for requests whose path matches ``path`` (a glob) and ``method`` (None: any)."""

    path: str = "*"
    method: str | None = None
    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    status: int = 503
    drop_rate: float = 0.0
    malformed_json_rate: float = 0.0
    html_rate: float = 0.0
    next_link_host: str | None = None
    date_skew: float = 0.0
    force_429_reset_in: float | None = None
    slow_body: float = 0.0  # seconds to dribble each response body out over
    stall_rate: float = 0.0  # share of requests that hang for ``stall`` seconds (timeouts)
    stall: float = 60.0
    throttle_rate: float = 0.0  # share of requests refused 429 (a storm when several at once)
    throttle_reset_in: float = 2.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatch.fnmatch(path, self.path)


@attrs.define
class Faults:
    """Seeded fault injection: the same seed gives the same sequence of faults."""

    rules: list[FaultRule] = attrs.field(factory=list)
    seed: int = 0
    rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.rng = random.Random(self.seed)


@attrs.define
class KeyStats:
    """What the fake saw for one key: accepted arrival times and 429s sent."""

    period: float
    window: Literal["rolling", "fixed"]
    accepted: list[float] = attrs.field(factory=list)
    rejected: int = 0

    def count_at(self, t: float) -> int:
        if self.window == "rolling":
            return len(self.accepted) - bisect.bisect_right(self.accepted, t - self.period)
        start = (t // self.period) * self.period
        return len(self.accepted) - bisect.bisect_left(self.accepted, start)

    def reset_at(self, t: float) -> float:
        if self.window == "fixed":
            return (t // self.period + 1) * self.period
        return self.accepted[len(self.accepted) - self.count_at(t)] + self.period

    @property
    def max_in_window(self) -> int:
        """The largest number of accepted requests in any window of the period."""
        best, times = 0, self.accepted
        for i, t in enumerate(times):
            if self.window == "rolling":
                best = max(best, bisect.bisect_left(times, t + self.period) - i)
            else:
                start = (t // self.period) * self.period
                lo = bisect.bisect_left(times, start)
                best = max(best, bisect.bisect_left(times, start + self.period) - lo)
        return best


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class FakeCliniko:
    """An in-memory Cliniko: seeded data, CRUD, lists, filters, auth, rate limit and faults.

    Its arguments are checked here (ValueError): an int ``seed``; record counts from 0 to
    1,000,000 (``records_per_resource`` from 1); one or more ``api_keys``; ``rate_limit``
    None or (requests >= 1, seconds > 0); ``window`` "rolling" or "fixed".
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        patients: int = 50,
        practitioners: int = 5,
        businesses: int = 2,
        appointment_types: int = 4,
        appointments: int = 200,
        api_keys: tuple[str, ...] = (DEFAULT_API_KEY,),
        rate_limit: tuple[int, float] | None = (200, 60.0),
        window: Literal["rolling", "fixed"] = "rolling",
        clock: Clock | None = None,
        faults: Faults | None = None,
        records_per_resource: int = 3,
    ) -> None:
        # Nonsense fails here, not as a traceback in generate() or a limit never enforced.
        check_fake_settings(
            seed=seed, records_per_resource=records_per_resource, api_keys=api_keys,
            rate_limit=rate_limit, window=window,
            counts={"patients": patients, "practitioners": practitioners,
                    "businesses": businesses, "appointment_types": appointment_types,
                    "appointments": appointments},
        )  # fmt: skip
        self.data: Dataset = generate(
            seed=seed, patients=patients, practitioners=practitioners, businesses=businesses,
            appointment_types=appointment_types, appointments=appointments,
        )  # fmt: skip
        # Cliniko accepts a key with or without its shard suffix ("-au1").
        self._auth = {
            "Basic " + base64.b64encode(f"{form}:".encode()).decode(): k
            for k in api_keys
            for form in {k, _SHARD_SUFFIX.sub("", k)}
        }
        self.rate_limit = rate_limit
        self.window = window
        self.clock: Clock = clock or LoopClock()
        self.faults = faults or Faults()
        self.served = False  # set by serve(): faults then act on the real connection
        self._stats: dict[str, KeyStats] = {}
        self.requests = 0
        self._seed_other_resources(records_per_resource)
        self.uploads: dict[str, bytes] = {}  # what the fake file storage received, by key
        self.app = Starlette(routes=self._routes())
        self.app.add_exception_handler(404, self._not_found)
        self.app.add_middleware(_OneDateHeader, fake=self)

    def _seed_other_resources(self, n: int) -> None:
        """Every resource without hand-written seed data gets ``n`` records from its model."""
        self.data["referral_sources"] = {  # keyed by patient: one each
            pid: {**sample(ReferralSource, pid), "patient": {"links": {"self": f"/patients/{pid}"}}}
            for pid in list(self.data["patients"])[:n]
        }
        for resource, cls in RESOURCES.items():
            if resource in self.data or resource in _NOT_TABLES:
                continue
            ops = cls.operations().values()
            model = next((o.model for o in ops if isinstance(o, ListOp)), None) or next(
                (o.model for o in ops if isinstance(o.model, type) and issubclass(o.model, Model)),
                None,
            )
            if model is not None:
                self.data[resource] = {
                    i: sample(model, i, resource=resource) for i in range(1, n + 1)
                }
        self.singletons = {
            ("settings", "get"): sample(Settings, 1, resource="settings"),
            ("settings", "get_public"): sample(PublicSettings, 1, resource="settings/public"),
            ("users", "get_authenticated_user"): self.data["users"][1],
        }
        self._next_id = {name: len(rows) + 1 for name, rows in self.data.items()}

    # -- public helpers -------------------------------------------------------------------
    def stats(self, api_key: str = DEFAULT_API_KEY) -> KeyStats:
        """What the fake saw for ``api_key``."""
        if api_key not in self._stats:
            period = self.rate_limit[1] if self.rate_limit else 60.0
            self._stats[api_key] = KeyStats(period, self.window)
        return self._stats[api_key]

    def transport(self) -> FakeTransport:
        """An httpx transport that calls the app in-process (drops become httpx errors)."""
        return FakeTransport(self.app)

    # -- request handling -----------------------------------------------------------------
    def _json(self, status: int, body: Any, **headers: str) -> Response:
        rule = _RULE.get()
        content = _dumps(body) if body is not None else b""
        wall = self.clock.wall() + (rule.date_skew if rule else 0)
        headers = {"date": email.utils.formatdate(wall, usegmt=True), **headers}
        if rule is not None and rule.slow_body and content:
            return StreamingResponse(
                _dribble(content, rule.slow_body), status, headers, "application/json"
            )
        return Response(content, status, headers, "application/json")

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return self._json(404, {"message": "Not found"})

    async def _gate(self, request: Request) -> tuple[Response | None, FaultRule | None]:
        """Auth, User-Agent, faults and the rate limit; a response means stop here."""
        self.requests += 1
        rule = next(
            (r for r in self.faults.rules if r.matches(request.method, request.url.path)), None
        )
        _RULE.set(rule)
        if rule is not None:
            lo, hi = rule.latency
            if hi:
                await asyncio.sleep(self.faults.rng.uniform(lo, hi))
        key = self._auth.get(request.headers.get("authorization", ""))
        if key is None:
            return self._json(401, {"message": "Unauthorized: check the API key"}), rule
        if not _UA.match(request.headers.get("user-agent", "")):
            return self._json(400, {"message": "User-Agent must be 'App (contact email)'"}), rule
        stats = self.stats(key)
        now = self.clock.monotonic()
        throttled = rule is not None and (
            rule.force_429_reset_in is not None
            or (rule.throttle_rate and self.faults.rng.random() < rule.throttle_rate)
        )
        if rule is not None and throttled:
            stats.rejected += 1
            reset_in = rule.force_429_reset_in
            reset = int(
                self.clock.wall() + (rule.throttle_reset_in if reset_in is None else reset_in)
            )
            return self._json(
                429, {"message": "Too Many Requests"}, **{"x-ratelimit-reset": str(reset)}
            ), rule
        if self.rate_limit is not None and stats.count_at(now) >= self.rate_limit[0]:
            stats.rejected += 1
            reset_wall = self.clock.wall() + (stats.reset_at(now) - now)
            return self._json(
                429,
                {"message": "Too Many Requests"},
                **{"x-ratelimit-reset": str(int(reset_wall) + 1)},
            ), rule
        stats.accepted.append(now)
        if rule is not None:
            rng = self.faults.rng
            if rule.stall_rate and rng.random() < rule.stall_rate:
                await asyncio.sleep(rule.stall)
            if rule.drop_rate and rng.random() < rule.drop_rate:
                if self.served:
                    # Over HTTP: promise a body, send part of it; the server then closes the
                    # connection and the client sees it dropped mid-response.
                    return Response(b'{"patients": [', 200, {"content-length": "4096"}), rule
                raise DroppedConnection
            if rule.error_rate and rng.random() < rule.error_rate:
                return self._json(rule.status, {"message": "Service Unavailable"}), rule
            if rule.html_rate and rng.random() < rule.html_rate:
                return Response(
                    b"<html><body>502 Bad Gateway</body></html>", 200, media_type="text/html"
                ), rule
            if rule.malformed_json_rate and rng.random() < rule.malformed_json_rate:
                return Response(
                    b'{"patients": [{"id": "1"', 200, media_type="application/json"
                ), rule
        return None, rule

    def _absolute(self, request: Request, record: dict[str, Any], resource: str) -> dict[str, Any]:
        """A stored record as sent: links (stored as paths) made absolute URLs on this host."""
        base = f"{request.url.scheme}://{request.url.netloc}/v1"

        def absolute(value: Any) -> Any:
            if isinstance(value, dict) and set(value) == {"links"}:
                return {"links": {"self": base + value["links"]["self"]}}
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return [absolute(v) for v in value]
            return value

        out = {k: absolute(v) for k, v in record.items() if k != "links"}
        own = record.get("links", {}).get("self") or (
            f"/{resource}/{record['id']}" if "id" in record else f"/{resource}"
        )
        out["links"] = {"self": base + own}
        return out

    # -- routes: one per operation of every resource ------------------------------------------
    def _routes(self) -> list[Route]:
        routes = [Route("/v1/_storage", self._storage_post, methods=["POST"])]
        for resource, cls in RESOURCES.items():
            for attr, op in cls.operations().items():
                if isinstance(op, UploadOp):  # client-side composite of three calls
                    continue
                path = "/v1" + re.sub(r"{(\w+)}", r"{\1:int}", op.path)
                routes.append(Route(path, self._endpoint(resource, attr, op), methods=[op.method]))
        # Static segments (/patients/archived) before {id:int} ones is not needed: ids are ints.
        return routes

    def _endpoint(self, resource: str, attr: str, op: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            stop, rule = await self._gate(request)
            if stop is not None:
                return stop
            return await self._operation(request, resource, attr, op, rule)

        return endpoint

    async def _operation(
        self, request: Request, resource: str, attr: str, op: Any, rule: FaultRule | None
    ) -> Response:
        ids: dict[str, int] = dict(request.path_params)
        now = iso(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
        if attr.startswith("list"):
            return self._list_operation(request, resource, attr, op, ids, rule)
        if (resource, attr) in self.singletons:
            one = self.singletons[resource, attr]
            return self._json(200, self._absolute(request, one, resource))
        if attr == "next_available_time":
            slots = _slots(request)
            if isinstance(slots, str):
                return self._json(400, {"message": slots})
            return self._json(200, {"appointment_start": slots[0]["appointment_start"] if slots
                                    else None, "links": {"self": str(request.url)}})  # fmt: skip
        if attr == "presigned_post":
            return self._presigned_post(request, ids["patient_id"])
        if attr == "create":
            return await self._create(request, resource, op)
        table = self.data.get(resource, {})
        key = ids.get("id", ids.get("patient_id"))  # referral sources are keyed by patient
        record = table.get(key) if key is not None else None
        if record is None:
            return self._json(404, {"message": f"{resource} {key} not found"})
        if attr == "conflicts":
            return self._json(200, {"conflicts": {"exist": False}})
        if op.method == "GET":
            refused = self._single_filters(request, record, op)
            if refused is not None:
                return refused
        if attr in ("archive", "delete", "unarchive") and "updated_at" in record:
            record["updated_at"] = now  # every change moves updated_at (what syncs read)
        if attr in ("archive", "delete"):
            record["archived_at" if attr == "archive" else "deleted_at"] = now
            return self._json(204, None)
        if attr == "unarchive":
            record["archived_at"] = None
        elif attr == "cancel":
            body = await _body(request)
            if not isinstance(body, dict) or body.get("cancellation_reason") is None:
                errors = {"cancellation_reason": "can't be blank"}
                return self._json(422, {"message": "Validation Failed", "errors": errors})
            try:
                body = validate_body(body, op.body, tables=self.data, create=False)
            except Invalid as exc:
                return self._json(exc.status, exc.body())
            record.update(cancelled_at=now, cancellation_reason=body["cancellation_reason"])
            if "updated_at" in record:
                record["updated_at"] = now
            return self._json(204, None)
        elif attr == "update":
            body = await _body(request)
            if not isinstance(body, dict):
                return self._json(400, {"message": "expected a JSON object"})
            try:
                body = validate_body(body, op.body, tables=self.data, create=False)
            except Invalid as exc:
                return self._json(exc.status, exc.body())
            record.update(self._to_record(body))
            record["updated_at"] = now
        return self._json(200, self._absolute(request, record, resource))

    def _single_filters(self, request: Request, record: dict[str, Any], op: Any) -> Response | None:
        """``q[]`` on a single-record GET: applied where the spec documents filters (a record
        that does not match is not found), refused (400) where it does not."""
        raw = request.query_params.getlist("q[]") + request.query_params.getlist("q")
        if not raw:
            return None
        filters: Mapping[str, FilterType] = getattr(op, "filters", {}) or {}
        for text in raw:
            parsed = _OPS.match(text)
            if parsed is None:
                return self._json(400, {"message": f"malformed filter {text!r}"})
            name, operator, value = parsed.groups()
            if name not in filters:
                return self._json(400, {"message": f"{name} is not filterable"})
            if operator not in _OPERATORS[filters[name]]:
                return self._json(400, {"message": f"operator {operator} not valid for {name}"})
            try:
                ok = matches(record, name, operator, value, filters[name])
            except ValueError as exc:
                return self._json(400, {"message": str(exc)})
            if not ok:
                return self._json(404, {"message": "Not found"})
        return None

    def _list_operation(
        self,
        request: Request,
        resource: str,
        attr: str,
        op: Any,
        ids: dict[str, int],
        rule: FaultRule | None,
    ) -> Response:
        if resource == "available_times":
            slots = _slots(request)
            if isinstance(slots, str):
                return self._json(400, {"message": slots})
            return self._list(request, resource, slots, rule, op.filters, records=False)
        rows = list(self.data.get(resource, {}).values())
        for name, pid in ids.items():  # a nested list: the parent's records only
            parent = plural(name.removesuffix("_id"))
            if parent in self.data and pid not in self.data[parent]:
                return self._json(404, {"message": f"{parent} {pid} not found"})
            if any(name.removesuffix("_id") in r for r in rows):
                rows = [r for r in rows if field_value(r, name) == pid]
        special = attr.removeprefix("list_").split("_for_")[0] if attr != "list" else ""
        if special in _SPECIAL_FIELDS:
            rows = [r for r in rows if r.get(_SPECIAL_FIELDS[special])]
        elif special == "inactive":
            rows = [r for r in rows if r.get("active") is False]
        archived_too = special in _SPECIAL_FIELDS
        return self._list(request, resource, rows, rule, op.filters, include_archived=archived_too)

    def _presigned_post(self, request: Request, patient_id: int) -> Response:
        if patient_id not in self.data["patients"]:
            return self._json(404, {"message": f"patients {patient_id} not found"})
        base = f"{request.url.scheme}://{request.url.netloc}/v1/_storage"
        folder = f"uploads/{patient_id}/{len(self.uploads) + 1}"
        fields = {
            "key": folder + "/${filename}", "acl": "private", "policy": "eyJmYWtlIjp0cnVlfQ==",
            "success_action_status": "201", "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": "FAKE/20260101/ap-southeast-2/s3/aws4_request",
            "x-amz-signature": "0" * 64,
        }  # fmt: skip
        return self._json(200, {"url": base, "fields": fields})

    async def _storage_post(self, request: Request) -> Response:
        """The fake file storage (S3's presigned POST): no Cliniko auth, no rate limit."""
        if "authorization" in request.headers:
            return Response(b"<Error><Code>InvalidArgument</Code></Error>", 400)
        form = _multipart(request.headers.get("content-type", ""), await request.body())
        if form is None or "file" not in form or "key" not in form:
            return Response(b"<Error><Code>MalformedPOSTRequest</Code></Error>", 400)
        filename, content = form["file"]
        key = form["key"][1].decode().replace("${filename}", filename)
        self.uploads[key] = content
        xml = f"<PostResponse><Key>{key}</Key></PostResponse>".encode()
        return Response(xml, 201, media_type="application/xml")

    def _list(
        self,
        request: Request,
        resource: str,
        rows: list[dict[str, Any]],
        rule: FaultRule | None,
        filters: Mapping[str, FilterType],
        include_archived: bool = False,
        records: bool = True,
    ) -> Response:
        params = request.query_params
        try:
            page = int(params.get("page", "1"))
            per_page = int(params.get("per_page", "50"))
        except ValueError:
            return self._json(400, {"message": "page and per_page must be integers"})
        if not 1 <= per_page <= 100 or page < 1:
            return self._json(400, {"message": "per_page must be between 1 and 100"})
        raw = params.getlist("q[]") + params.getlist("q")
        preds = []
        for text in raw:
            parsed = _OPS.match(text)
            if parsed is None:
                return self._json(400, {"message": f"malformed filter {text!r}"})
            name, op, value = parsed.groups()
            if name not in filters:
                return self._json(400, {"message": f"{name} is not filterable"})
            if op not in _OPERATORS[filters[name]]:
                return self._json(400, {"message": f"operator {op} not valid for {name}"})
            preds.append((name, op, value, filters[name]))
        if not include_archived and not any(
            p[0] in ("archived_at", "deleted_at", "cancelled_at") for p in preds
        ):
            rows = [r for r in rows if not r.get("archived_at") and not r.get("deleted_at")]
        try:
            rows = [r for r in rows if all(matches(r, *p) for p in preds)]
        except ValueError as exc:
            return self._json(400, {"message": str(exc)})
        sort = params.get("sort")
        order = params.get("order")
        if order not in (None, "asc", "desc"):
            return self._json(400, {"message": "order must be asc or desc"})
        if resource == "available_times":
            if sort or order:
                return self._json(400, {"message": "available times cannot be ordered"})
        else:
            # Cliniko's default: ascending by created_at; `order` sets the direction of every
            # sort field without its own ":asc"/":desc".
            parts = sort.split(",") if sort else ["created_at"]
            rows.sort(key=_sorter("id"))
            for part in reversed(parts):
                name, _, direction = part.partition(":")
                if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or direction not in (
                    "",
                    "asc",
                    "desc",
                ):
                    return self._json(400, {"message": f"cannot sort by {part!r}"})
                rows.sort(key=_sorter(name), reverse=(direction or order or "asc") == "desc")
        total = len(rows)
        chunk = rows[(page - 1) * per_page : page * per_page]
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        keep = [(k, v) for k, v in params.multi_items() if k not in ("page", "per_page")]

        def link(n: int) -> str:
            return f"{base}?{urlencode([*keep, ('page', str(n)), ('per_page', str(per_page))])}"

        links = {"self": link(page)}
        if page * per_page < total:
            links["next"] = link(page + 1)
            if rule is not None and rule.next_link_host:
                links["next"] = links["next"].replace(request.url.netloc, rule.next_link_host, 1)
        if page > 1:
            links["previous"] = link(page - 1)
        items = [self._absolute(request, r, resource) for r in chunk] if records else chunk
        return self._json(200, {resource: items, "total_entries": total, "links": links})

    async def _create(self, request: Request, resource: str, op: Any) -> Response:
        body = await _body(request)
        if not isinstance(body, dict):
            return self._json(400, {"message": "expected a JSON object"})
        try:
            body = validate_body(body, op.body, tables=self.data, create=True)
        except Invalid as exc:
            return self._json(exc.status, exc.body())
        table = self.data.setdefault(resource, {})
        rid = self._next_id.get(resource, len(table) + 1)
        self._next_id[resource] = rid + 1
        now = iso(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
        record = {"id": str(rid), "created_at": now, "updated_at": now, "archived_at": None,
                  **self._to_record(body)}  # fmt: skip
        table[rid] = record
        return self._json(201, self._absolute(request, record, resource))

    def _to_record(self, body: dict[str, Any]) -> dict[str, Any]:
        """A request body as a stored record: ``x_id`` of a known resource becomes link ``x``."""
        out: dict[str, Any] = {}
        for k, v in body.items():
            target = plural(k[:-3]) if k.endswith("_id") else ""
            if target in self.data and v is not None:
                out[k[:-3]] = {"links": {"self": f"/{target}/{v}"}}
            else:
                out[k] = v
        return out


#: Resources answered without a table of records (computed slots, singletons).
_NOT_TABLES = frozenset({"available_times", "settings"})
#: list_<special> -> the field that marks such records.
_SPECIAL_FIELDS = {"deleted": "deleted_at", "archived": "archived_at", "cancelled": "cancelled_at"}


def _slots(request: Request) -> list[dict[str, Any]] | str:
    """Available times between ``from`` and ``to``: every 30 minutes, 09:00-17:00 UTC."""
    try:
        start = dt.date.fromisoformat(request.query_params["from"])
        end = dt.date.fromisoformat(request.query_params["to"])
    except (KeyError, ValueError):
        return "from and to are required dates (YYYY-MM-DD)"
    if not 0 <= (end - start).days <= 7:
        return "Invalid time frame definition. Please check from/to param limitations."
    if end >= dt.date.max - dt.timedelta(days=1):
        return "Invalid time frame definition. Please check from/to param limitations."
    slots = []
    day = start
    while day <= end:
        for half_hour in range(18, 34):
            t = dt.datetime.combine(day, dt.time(half_hour // 2, 30 * (half_hour % 2)), dt.UTC)
            slots.append({"appointment_start": iso(t)})
        day += dt.timedelta(days=1)
    return slots


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]] | None:
    """A multipart/form-data body: name -> (filename, content). Enough for the fake storage."""
    found = re.search(r"boundary=\"?([^\";]+)", content_type)
    if found is None:
        return None
    out: dict[str, tuple[str, bytes]] = {}
    for part in body.split(b"--" + found.group(1).encode())[1:-1]:
        head, _, content = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name is not None:
            fname = filename.group(1).decode() if filename else ""
            out[name.group(1).decode()] = (fname, content)
    return out


_RULE: ContextVar[FaultRule | None] = ContextVar("fake_cliniko_fault_rule", default=None)


class _OneDateHeader:
    """ASGI middleware: every response carries exactly one ``Date`` header (the fake's clock)."""

    def __init__(self, app: Any, fake: FakeCliniko) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_one_date(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                dates = [v for k, v in headers if k.lower() == b"date"]
                headers = [(k, v) for k, v in headers if k.lower() != b"date"]
                date = dates[0] if dates else None
                if date is None:
                    date = email.utils.formatdate(self.fake.clock.wall(), usegmt=True).encode()
                message = {**message, "headers": [*headers, (b"date", date)]}
            await send(message)

        await self.app(scope, receive, send_one_date)


async def _dribble(content: bytes, seconds: float, parts: int = 10) -> AsyncIterator[bytes]:
    step = max(1, len(content) // parts)
    for i in range(0, len(content), step):
        await asyncio.sleep(seconds / parts)
        yield content[i : i + step]


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


def _link_id(value: Any) -> int | None:
    if isinstance(value, dict) and isinstance(value.get("links"), dict):
        tail = str(value["links"].get("self", "")).rsplit("/", 1)[-1]
        return int(tail) if tail.isascii() and tail.isdigit() else None
    return None


def field_value(record: dict[str, Any], name: str) -> Any:
    """A record's value for a filter field (``x_id`` reads the ``x`` link)."""
    if name in record:
        value = record[name]
        if name == "id":
            return int(value) if str(value).isascii() and str(value).isdigit() else None
        return value
    if name.endswith("_id"):
        return _link_id(record.get(name[:-3]))
    return None


def _sorter(name: str) -> Any:
    def key(record: dict[str, Any]) -> tuple[int, int, Any]:
        value = field_value(record, name)
        if value in (None, ""):
            return (0, 0, "")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (1, 0, value)
        return (1, 1, str(value))

    return key


def matches(record: dict[str, Any], name: str, op: str, raw: str, ftype: FilterType) -> bool:
    """Evaluate one ``q[]`` condition the way Cliniko does (brute force, for the fake)."""
    value = field_value(record, name)
    empty = value in (None, "", [])
    if op == "*":  # "any value": archived records too, the reason to send it
        return True
    if op == "?":
        return not empty
    if op == "!?":
        return empty
    if ftype is FilterType.STRING:
        text = "" if value is None else str(value)
        if op == "=":
            return text == raw
        if op == "!=":
            return text != raw
        if op == "~":
            return raw.lower() in text.lower()
        pattern = "^" + ".*".join(re.escape(p) for p in raw.split("%")) + "$"
        return re.match(pattern, text, re.IGNORECASE | re.DOTALL) is not None
    if empty:
        return False
    if ftype is FilterType.ARRAY:
        return raw in {str(v) for v in value}
    if ftype is FilterType.INTEGER:
        if op == "=" and "," in raw:
            return int(value) in {int(x) for x in raw.split(",")}
        target: Any = int(raw)
        actual: Any = int(value)
    elif ftype is FilterType.BOOLEAN:
        target, actual = raw == "true", bool(value)
    elif ftype is FilterType.DATE:
        if "*" in raw:
            if op != "=":
                raise ValueError("date wildcards only work with =")
            return all(p in ("*", c) for p, c in zip(raw, str(value), strict=True))
        target, actual = dt.date.fromisoformat(raw), dt.date.fromisoformat(str(value))
    else:
        target = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        actual = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    result: bool = {
        "=": actual == target, "!=": actual != target, ">=": actual >= target,
        ">": actual > target, "<=": actual <= target, "<": actual < target,
    }[op]  # fmt: skip
    return result
