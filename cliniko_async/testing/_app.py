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

import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._filters import FilterType
from ._data import Dataset, generate, iso

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
S, N, D, T, B, A = (
    FilterType.STRING,
    FilterType.INTEGER,
    FilterType.DATE,
    FilterType.DATETIME,
    FilterType.BOOLEAN,
    FilterType.ARRAY,
)
#: list key -> (filterable fields, required fields on create)
TABLES: Mapping[str, tuple[Mapping[str, FilterType], tuple[str, ...]]] = {
    "patients": (
        {
            "id": N,
            "first_name": S,
            "last_name": S,
            "email": S,
            "old_reference_id": S,
            "preferred_first_name": S,
            "date_of_birth": D,
            "created_at": T,
            "updated_at": T,
            "archived_at": T,
            "accepted_privacy_policy": B,
        },
        ("first_name", "last_name"),
    ),
    "practitioners": ({"id": N, "created_at": T, "updated_at": T, "user_id": N}, ()),
    "businesses": ({"id": N, "created_at": T, "updated_at": T, "archived_at": T}, ()),
    "appointment_types": (
        {
            "id": N,
            "created_at": T,
            "updated_at": T,
            "archived_at": T,
            "appointment_confirmation_template_ids": A,
        },
        (),
    ),
    "individual_appointments": (
        {
            "id": N,
            "starts_at": T,
            "ends_at": T,
            "created_at": T,
            "updated_at": T,
            "patient_id": N,
            "practitioner_id": N,
            "business_id": N,
            "appointment_type_id": N,
            "archived_at": T,
            "cancelled_at": T,
            "deleted_at": T,
        },
        ("appointment_type_id", "business_id", "patient_id", "practitioner_id", "starts_at"),
    ),
}
_OPS = re.compile(r"^([a-z_]+):(!\?|\?|~~|~|!=|>=|<=|=|>|<|\*)(.*)$", re.DOTALL)
_OPERATORS = {
    S: {"=", "!=", "~", "~~", "?", "!?"},
    N: {"=", "!=", ">=", ">", "<=", "<", "?", "!?"},
    D: {"=", ">=", ">", "<=", "<", "?", "!?"},
    T: {">=", ">", "<=", "<", "*", "?", "!?"},
    B: {"=", "!=", "?", "!?"},
    A: {"~", "?", "!?"},
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


class DroppedConnection(Exception):
    """Raised inside the app to make the transport drop the connection."""


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
    """An in-memory Cliniko: seeded data, CRUD, lists, filters, auth, rate limit and faults."""

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
    ) -> None:
        self.data: Dataset = generate(
            seed=seed, patients=patients, practitioners=practitioners, businesses=businesses,
            appointment_types=appointment_types, appointments=appointments,
        )  # fmt: skip
        self._next_id = {name: len(rows) + 1 for name, rows in self.data.items()}
        self._auth = {"Basic " + base64.b64encode(f"{k}:".encode()).decode(): k for k in api_keys}
        self.rate_limit = rate_limit
        self.window = window
        self.clock: Clock = clock or LoopClock()
        self.faults = faults or Faults()
        self.served = False  # set by serve(): faults then act on the real connection
        self._stats: dict[str, KeyStats] = {}
        self.requests = 0
        routes = [
            Route("/v1/{resource}", self._collection, methods=["GET", "POST"]),
            Route("/v1/{resource}/{rid:int}", self._member, methods=["GET", "PATCH", "DELETE"]),
            Route("/v1/{resource}/{rid:int}/{action}", self._action,
                  methods=["POST", "PATCH", "GET"]),
            Route("/v1/{resource}/{special}", self._special_list, methods=["GET"]),
            Route("/v1/{parent}/{pid:int}/{resource}", self._nested, methods=["GET"]),
        ]  # fmt: skip
        self.app = Starlette(routes=routes)
        self.app.add_exception_handler(404, self._not_found)

    # -- public helpers -------------------------------------------------------------------
    def stats(self, api_key: str = DEFAULT_API_KEY) -> KeyStats:
        """What the fake saw for ``api_key``."""
        if api_key not in self._stats:
            period = self.rate_limit[1] if self.rate_limit else 60.0
            self._stats[api_key] = KeyStats(period, self.window)
        return self._stats[api_key]

    def transport(self) -> Any:
        """An httpx transport that calls the app in-process (drops become httpx errors)."""
        from ._transport import FakeTransport

        return FakeTransport(self)

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
        if rule is not None and rule.force_429_reset_in is not None:
            stats.rejected += 1
            reset = int(self.clock.wall() + rule.force_429_reset_in)
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
        base = f"{request.url.scheme}://{request.url.netloc}/v1"
        out: dict[str, Any] = {}
        for k, v in record.items():
            if isinstance(v, dict) and "links" in v:
                out[k] = {"links": {"self": base + v["links"]["self"]}}
            else:
                out[k] = v
        out["links"] = {"self": f"{base}/{resource}/{record['id']}"}
        return out

    async def _collection(self, request: Request) -> Response:
        stop, rule = await self._gate(request)
        if stop is not None:
            return stop
        resource = request.path_params["resource"]
        if resource not in self.data:
            return self._json(404, {"message": f"no such resource {resource}"})
        if request.method == "POST":
            return await self._create(request, resource)
        return self._list(request, resource, list(self.data[resource].values()), rule)

    async def _special_list(self, request: Request) -> Response:
        stop, rule = await self._gate(request)
        if stop is not None:
            return stop
        resource, special = request.path_params["resource"], request.path_params["special"]
        rows = list(self.data.get(resource, {}).values())
        field = {"archived": "archived_at", "deleted": "deleted_at", "cancelled": "cancelled_at"}
        if special in field:
            rows = [r for r in rows if r.get(field[special])]
        elif special == "inactive":
            rows = [r for r in rows if r.get("active") is False]
        else:
            return self._json(404, {"message": "Not found"})
        return self._list(request, resource, rows, rule, include_archived=True)

    async def _nested(self, request: Request) -> Response:
        stop, rule = await self._gate(request)
        if stop is not None:
            return stop
        parent, pid, resource = (request.path_params[k] for k in ("parent", "pid", "resource"))
        if parent not in self.data or pid not in self.data[parent] or resource not in self.data:
            return self._json(404, {"message": "Not found"})
        link = parent[:-1]
        rows = [r for r in self.data[resource].values() if _link_id(r.get(link)) == pid]
        if resource == "practitioners" or not rows:
            rows = list(self.data[resource].values())  # every practitioner works everywhere
        return self._list(request, resource, rows, rule)

    def _list(
        self,
        request: Request,
        resource: str,
        rows: list[dict[str, Any]],
        rule: FaultRule | None,
        include_archived: bool = False,
    ) -> Response:
        filters, _ = TABLES[resource]
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
        if sort:
            for part in reversed(sort.split(",")):
                name, _, direction = part.partition(":")
                rows.sort(key=_sorter(name), reverse=direction == "desc")
        elif params.get("order") == "desc":
            rows.reverse()
        total = len(rows)
        chunk = rows[(page - 1) * per_page : page * per_page]
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        keep = [(k, v) for k, v in params.multi_items() if k not in ("page", "per_page")]
        from urllib.parse import urlencode

        def link(n: int) -> str:
            return f"{base}?{urlencode([*keep, ('page', str(n)), ('per_page', str(per_page))])}"

        links = {"self": link(page)}
        if page * per_page < total:
            links["next"] = link(page + 1)
            if rule is not None and rule.next_link_host:
                links["next"] = links["next"].replace(request.url.netloc, rule.next_link_host, 1)
        if page > 1:
            links["previous"] = link(page - 1)
        items = [self._absolute(request, r, resource) for r in chunk]
        return self._json(200, {resource: items, "total_entries": total, "links": links})

    async def _member(self, request: Request) -> Response:
        stop, _ = await self._gate(request)
        if stop is not None:
            return stop
        resource, rid = request.path_params["resource"], request.path_params["rid"]
        record = self.data.get(resource, {}).get(rid)
        if record is None:
            return self._json(404, {"message": f"{resource} {rid} not found"})
        if request.method == "DELETE":
            record["archived_at"] = iso(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
            return self._json(204, None)
        if request.method == "PATCH":
            body = await _body(request)
            if not isinstance(body, dict):
                return self._json(400, {"message": "expected a JSON object"})
            record.update(_to_record(body))
            record["updated_at"] = iso(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
        return self._json(200, self._absolute(request, record, resource))

    async def _create(self, request: Request, resource: str) -> Response:
        body = await _body(request)
        _, required = TABLES[resource]
        if not isinstance(body, dict):
            return self._json(400, {"message": "expected a JSON object"})
        errors = {f: "can't be blank" for f in required if body.get(f) in (None, "")}
        if errors:
            return self._json(422, {"message": "Validation Failed", "errors": errors})
        rid = self._next_id[resource]
        self._next_id[resource] += 1
        now = iso(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
        record = {"id": str(rid), "created_at": now, "updated_at": now, "archived_at": None,
                  **_to_record(body)}  # fmt: skip
        self.data[resource][rid] = record
        return self._json(201, self._absolute(request, record, resource))

    async def _action(self, request: Request) -> Response:
        stop, _ = await self._gate(request)
        if stop is not None:
            return stop
        resource, rid, action = (request.path_params[k] for k in ("resource", "rid", "action"))
        record = self.data.get(resource, {}).get(rid)
        if record is None:
            return self._json(404, {"message": f"{resource} {rid} not found"})
        now = iso(dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC))
        if action == "archive" and request.method == "POST":
            record["archived_at"] = now
            return self._json(204, None)
        if action == "unarchive" and request.method == "POST":
            record["archived_at"] = None
            return self._json(200, self._absolute(request, record, resource))
        if action == "cancel" and request.method == "PATCH":
            body = await _body(request)
            if not isinstance(body, dict) or body.get("cancellation_reason") is None:
                errors = {"cancellation_reason": "can't be blank"}
                return self._json(422, {"message": "Validation Failed", "errors": errors})
            record.update(cancelled_at=now, cancellation_reason=body["cancellation_reason"])
            return self._json(204, None)
        if action == "conflicts" and request.method == "GET":
            return self._json(200, {"conflicts": {"exist": False}})
        return self._json(404, {"message": "Not found"})


_RULE: ContextVar[FaultRule | None] = ContextVar("fake_cliniko_fault_rule", default=None)


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


def _to_record(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in body.items():
        if k.endswith("_id") and k[:-3] in (
            "patient",
            "practitioner",
            "business",
            "appointment_type",
        ):
            out[k[:-3]] = {"links": {"self": f"/{k[:-3]}s/{v}"}}
        else:
            out[k] = v
    return out


def _link_id(value: Any) -> int | None:
    if isinstance(value, dict) and "links" in value:
        return int(value["links"]["self"].rsplit("/", 1)[-1])
    return None


def field_value(record: dict[str, Any], name: str) -> Any:
    """A record's value for a filter field (``x_id`` reads the ``x`` link)."""
    if name in record:
        value = record[name]
        return int(value) if name == "id" else value
    if name.endswith("_id"):
        return _link_id(record.get(name[:-3]))
    return None


def _sorter(name: str) -> Any:
    def key(record: dict[str, Any]) -> tuple[int, Any]:
        value = field_value(record, name)
        return (0, "") if value in (None, "") else (1, value)

    return key


def matches(record: dict[str, Any], name: str, op: str, raw: str, ftype: FilterType) -> bool:
    """Evaluate one ``q[]`` condition the way Cliniko does (brute force, for the fake)."""
    value = field_value(record, name)
    empty = value in (None, "", [])
    if op == "?" or op == "*":
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
