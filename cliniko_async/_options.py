"""The keyword options shared by every client, defined once.

:class:`~cliniko_async.Cliniko`, :class:`~cliniko_async.SyncCliniko` and
:class:`~cliniko_async.ClinikoAccounts` take ``**options: Unpack[ClientOptions]`` (PEP 692)
besides what is theirs alone (a key and its shard; ``max_sessions``), and their
``with_options`` takes ``**options: Unpack[RequestSettings]``. mypy and pyright therefore check
every keyword of all three against these two TypedDicts (an unknown keyword or a wrong type is
an error), and nothing can drift between the three: there is one list. At run time the same
tables reject unknown keywords, fill in the defaults and give each constructor an
``inspect.Signature`` listing the real parameters (``help()``, editors, ``inspect``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Required, TypedDict, TypeVar

import attrs
import httpx

from ._limiter import LimiterBackend, RateLimit
from ._session import MAX_RATE_LIMIT_WAIT, RequestOptions
from ._transport import DEFAULT_MAX_RESPONSE_SIZE

__all__ = [
    "ClientOptions",
    "RequestSettings",
    "apply_settings",
    "keyword_error",
    "client_settings",
    "signature",
]

F = TypeVar("F", bound=Callable[..., Any])


class RequestSettings(TypedDict, total=False):
    """How each request is sent: a client's settings, or ``with_options(...)``'s changes.

    ``options`` (a :class:`~cliniko_async.RequestOptions`) gives them all at once; a keyword
    given beside it wins over its field.
    """

    #: Seconds for each network step (connect, read, write, pool), or an ``httpx.Timeout``.
    timeout: float | httpx.Timeout
    #: Retries of a failed idempotent request (5xx, connection error, timeout); 429s apart.
    max_retries: int
    #: Backoff before retry n: ``backoff_base * 2**n`` seconds, at most ``backoff_max``, jittered.
    backoff_base: float
    backoff_max: float
    #: Longest a 429 may pause the key before a request fails with ``RateLimitError`` instead.
    max_rate_limit_wait: float
    #: Longest one exchange may take, connect to last byte (None: 3 x timeout; math.inf: none).
    deadline: float | None
    #: Largest response body accepted, counted as it arrives and as it is decompressed.
    max_response_size: int
    #: All of the above at once (the keywords given beside it win).
    options: RequestOptions | None


class ClientOptions(RequestSettings, total=False):
    """The keyword options every client takes: :class:`RequestSettings` and the connection's.

    ``user_agent`` is required (Cliniko asks for ``"App name (contact email)"``).
    """

    user_agent: Required[str]
    #: Every request's base URL (default: the key's shard, ``https://api.{shard}.cliniko.com/v1``).
    base_url: str | None
    #: The key's budget (default: Cliniko's 200 requests per 60 s).
    rate_limit: RateLimit | None
    #: Where the key's budget is kept: this process (default) or Redis.
    limiter: LimiterBackend | None
    #: Your own ``httpx.AsyncClient`` to send through (yours to close).
    http_client: httpx.AsyncClient | None
    #: An ``httpx.AsyncBaseTransport`` for the client's own pool (closed with the client).
    transport: httpx.AsyncBaseTransport | None


#: The defaults of the optional keywords (the constructors' signatures show them).
DEFAULTS: Mapping[str, Any] = {
    "base_url": None,
    "rate_limit": None,
    "timeout": RequestOptions.__attrs_attrs__.timeout.default,
    "max_retries": RequestOptions.__attrs_attrs__.max_retries.default,
    "backoff_base": RequestOptions.__attrs_attrs__.backoff_base.default,
    "backoff_max": RequestOptions.__attrs_attrs__.backoff_max.default,
    "max_rate_limit_wait": MAX_RATE_LIMIT_WAIT,
    "deadline": None,
    "max_response_size": DEFAULT_MAX_RESPONSE_SIZE,
    "options": None,
    "limiter": None,
    "http_client": None,
    "transport": None,
}
#: The RequestOptions fields a keyword of the same name sets.
_OPTION_FIELDS = tuple(a.name for a in attrs.fields(RequestOptions))
#: Every keyword of ClientOptions / RequestSettings, in signature order.
CLIENT_KEYWORDS: tuple[str, ...] = ("user_agent", *DEFAULTS)
SETTING_KEYWORDS: tuple[str, ...] = (*_OPTION_FIELDS, "options")


def _check_known(owner: str, given: Mapping[str, object], known: tuple[str, ...]) -> None:
    for name in given:
        if name not in known:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}")


def apply_settings(
    owner: str, base: RequestOptions, settings: Mapping[str, object], *, renew_deadline: bool
) -> RequestOptions:
    """``base`` with ``settings`` applied: ``options`` first (it replaces ``base``), then each
    keyword given. ``renew_deadline``: a new ``timeout`` without a ``deadline`` gets the default
    deadline for that timeout (as ``with_options`` does), not ``base``'s."""
    _check_known(owner, settings, SETTING_KEYWORDS)
    options = settings.get("options")
    if options is not None:
        if not isinstance(options, RequestOptions):
            from .errors import ConfigurationError

            raise ConfigurationError(
                f"options must be a cliniko_async.RequestOptions, got {type(options).__name__}"
            )
        base = options
    changes: dict[str, Any] = {k: v for k, v in settings.items() if k in _OPTION_FIELDS}
    if renew_deadline and "timeout" in changes and "deadline" not in changes:
        changes["deadline"] = None
    return attrs.evolve(base, **changes) if changes else base


def keyword_error(owner: str, options: Mapping[str, object]) -> TypeError | None:
    """What Python says of a call that does not fit a plain signature (an unknown keyword, no
    ``user_agent``), as an error the constructor raises itself, once it has dropped its
    arguments: a traceback recording frame locals must not show a key passed beside a typo."""
    for name in options:
        if name not in CLIENT_KEYWORDS:
            return TypeError(f"{owner}() got an unexpected keyword argument {name!r}")
    if "user_agent" not in options:
        return TypeError(f"{owner}() missing 1 required keyword-only argument: 'user_agent'")
    return None


def client_settings(
    owner: str, options: Mapping[str, object]
) -> tuple[dict[str, Any], RequestOptions]:
    """A constructor's ``**options``: (every ClientOptions keyword with its default filled in,
    the RequestOptions they make). Unknown keywords raise TypeError, like a plain signature."""
    _check_known(owner, options, CLIENT_KEYWORDS)
    values = {**DEFAULTS, **options}
    settings = {k: v for k, v in options.items() if k in SETTING_KEYWORDS}
    return values, apply_settings(owner, RequestOptions(), settings, renew_deadline=False)


class _Unchanged:
    """The default ``with_options`` shows: a keyword left out keeps the client's value."""

    def __repr__(self) -> str:
        return "<unchanged>"


_UNCHANGED = _Unchanged()


def _shared(names: tuple[str, ...], *, defaults: bool) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(ClientOptions)
    out = []
    for name in names:
        default = DEFAULTS.get(name, inspect.Parameter.empty) if defaults else _UNCHANGED
        out.append(inspect.Parameter(name, _KW, annotation=hints[name], default=default))
    return out


_KW = inspect.Parameter.KEYWORD_ONLY
_EMPTY = inspect.Parameter.empty


def signature(
    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None
) -> Callable[[F], F]:
    """Give a method taking ``**options`` the signature it really has (``help()``, ``inspect``).

    ``before``/``after``: its own keyword-only parameters, name -> annotation or (annotation,
    default), around the shared ones: :class:`ClientOptions`'s on ``__init__`` (with their
    defaults), :class:`RequestSettings`'s on ``with_options`` (a keyword left out keeps the
    client's value).
    """

    def own(params: dict[str, Any] | None) -> list[inspect.Parameter]:
        out = []
        for name, spec in (params or {}).items():
            annotation, default = spec if isinstance(spec, tuple) else (spec, _EMPTY)
            out.append(inspect.Parameter(name, _KW, annotation=annotation, default=default))
        return out

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        first = next(iter(sig.parameters.values()))  # self
        if func.__name__ == "__init__":
            shared = _shared(CLIENT_KEYWORDS, defaults=True)
        else:
            shared = _shared(SETTING_KEYWORDS, defaults=False)
        params = [first, *own(before), *shared, *own(after)]
        func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return func

    return decorate
