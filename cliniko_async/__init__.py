"""cliniko_async: an asyncio-native, typed client for the Cliniko API.

Every public name is imported on first use (PEP 562): ``import cliniko_async`` loads nothing
else, ``from cliniko_async import Cliniko`` loads the client (and httpx) but no resource or
model until ``cliniko.patients`` (say) is first touched.
"""

from __future__ import annotations

import importlib

from ._version import __version__

TYPE_CHECKING = False  # not typing's: ``import cliniko_async`` does not import typing (~15 ms)
if TYPE_CHECKING:
    from typing import Any

    from ._accounts import ClinikoAccounts
    from ._client import Cliniko
    from ._converter import structure, unstructure
    from ._filters import Filter, FilterType, q
    from ._limiter import RateLimit
    from ._options import ClientOptions, RequestSettings
    from ._pagination import Page, PageLinks, Paginator
    from ._raw import RawResponse
    from ._session import RequestOptions
    from ._sync import SyncCliniko, SyncInAsyncContextError
    from ._types import UNSET, Link, Unset
    from .errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ClientClosedError,
        ClinikoError,
        ConfigurationError,
        DecodeError,
        ModelDecodeError,
        NotFoundError,
        PaginationError,
        PermissionDeniedError,
        RateLimitError,
        ResponseTooLargeError,
        ServerError,
        UnprocessableEntityError,
        UnsafeURLError,
    )

__all__ = [
    "UNSET",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ClientOptions",
    "Cliniko",
    "ClinikoAccounts",
    "ClinikoError",
    "ConfigurationError",
    "DecodeError",
    "Filter",
    "FilterType",
    "Link",
    "ModelDecodeError",
    "NotFoundError",
    "Page",
    "PageLinks",
    "PaginationError",
    "Paginator",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RawResponse",
    "RequestOptions",
    "RequestSettings",
    "ResponseTooLargeError",
    "ServerError",
    "SyncCliniko",
    "SyncInAsyncContextError",
    "UnprocessableEntityError",
    "Unset",
    "UnsafeURLError",
    "__version__",
    "q",
    "structure",
    "unstructure",
]

#: submodule -> the public names it defines
_EXPORTS: dict[str, tuple[str, ...]] = {
    "_accounts": ("ClinikoAccounts",),
    "_client": ("Cliniko",),
    "_converter": ("structure", "unstructure"),
    "_filters": ("Filter", "FilterType", "q"),
    "_limiter": ("RateLimit",),
    "_options": ("ClientOptions", "RequestSettings"),
    "_pagination": ("Page", "PageLinks", "Paginator"),
    "_raw": ("RawResponse",),
    "_session": ("RequestOptions",),
    "_sync": ("SyncCliniko", "SyncInAsyncContextError"),
    "_types": ("UNSET", "Link", "Unset"),
    "errors": (
        "APIConnectionError",
        "APIError",
        "APIStatusError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "ClientClosedError",
        "ClinikoError",
        "ConfigurationError",
        "DecodeError",
        "ModelDecodeError",
        "NotFoundError",
        "PaginationError",
        "PermissionDeniedError",
        "RateLimitError",
        "ResponseTooLargeError",
        "ServerError",
        "UnprocessableEntityError",
        "UnsafeURLError",
    ),
}
_MODULES = {name: module for module, names in _EXPORTS.items() for name in names}
#: public submodules reachable as attributes (``cliniko_async.models.Patient``)
_SUBMODULES = frozenset({"errors", "models", "resources"})


if not TYPE_CHECKING:  # hidden from type checkers: a misspelt name stays an error

    def __getattr__(name: str) -> Any:
        """Import the submodule defining ``name`` on first use (then it is a plain global)."""
        if name in _SUBMODULES:
            return importlib.import_module(f".{name}", __name__)
        module = _MODULES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        _report_public_module(value, module)
        globals()[name] = value
        return value

    def _report_public_module(value: Any, module: str) -> None:
        """``cliniko_async.Cliniko.__module__ == "cliniko_async"`` (as httpx and openai do).

        Names from a private submodule report the package (reprs, docs, pickling name the
        public path). A class's own string annotations are resolved first: type hints are
        looked up in ``__module__``'s namespace, which would no longer hold their names.
        """
        if not module.startswith("_") or getattr(value, "__module__", None) != (
            f"{__name__}.{module}"
        ):
            return
        if not (isinstance(value, type) or type(value).__name__ == "function"):
            return
        own = vars(value).get("__annotations__", {}) if isinstance(value, type) else {}
        if any(isinstance(a, str) for a in own.values()):
            import contextlib
            import typing

            with contextlib.suppress(Exception):  # unresolvable where it is defined as well
                hints = typing.get_type_hints(value, include_extras=True)
                value.__annotations__ = {key: hints[key] for key in own}
        value.__module__ = __name__


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
