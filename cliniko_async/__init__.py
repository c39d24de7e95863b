"""cliniko_async: an asyncio-native, typed client for the Cliniko API."""

from ._accounts import ClinikoAccounts
from ._client import Cliniko
from ._converter import structure, unstructure
from ._filters import Filter, FilterType, q
from ._limiter import RateLimit
from ._pagination import Page, PageLinks, Paginator
from ._session import RequestOptions
from ._sync import SyncCliniko, SyncInAsyncContextError
from ._types import UNSET, Link, Unset
from ._version import __version__
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
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
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
    "Cliniko",
    "ClinikoAccounts",
    "ClinikoError",
    "ConfigurationError",
    "DecodeError",
    "Filter",
    "FilterType",
    "Link",
    "NotFoundError",
    "Page",
    "PageLinks",
    "Paginator",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RequestOptions",
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
