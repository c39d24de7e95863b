"""The exported names: each resolves lazily and reports the public module it is used from."""

from __future__ import annotations

import inspect
import pickle

import cliniko_async
from cliniko_async import models

#: The core of the public API (DESIGN.md "Public API"); others may be added, none removed.
CORE = {
    "Cliniko", "SyncCliniko", "ClinikoAccounts", "RateLimit", "RequestOptions", "RawResponse",
    "q", "Filter", "FilterType", "Page", "PageLinks", "Paginator", "Link", "UNSET", "Unset",
    "structure", "unstructure", "ClinikoError", "APIError", "APIStatusError",
    "ConfigurationError", "NotFoundError", "RateLimitError", "__version__",
    "ClientOptions", "RequestSettings",
}  # fmt: skip


def test_all_lists_the_core_and_every_name_resolves() -> None:
    assert set(cliniko_async.__all__) >= CORE
    assert len(set(cliniko_async.__all__)) == len(cliniko_async.__all__)
    assert set(cliniko_async.__all__) <= set(dir(cliniko_async))
    for name in cliniko_async.__all__:
        assert getattr(cliniko_async, name) is not None, name


def test_public_names_report_the_public_module() -> None:
    assert cliniko_async.Cliniko.__module__ == "cliniko_async"
    assert cliniko_async.SyncCliniko.__module__ == "cliniko_async"
    assert repr(cliniko_async.Cliniko).startswith("<class 'cliniko_async.Cliniko'")
    for name in cliniko_async.__all__:
        value = getattr(cliniko_async, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ in ("cliniko_async", "cliniko_async.errors"), name


def test_rewritten_names_still_pickle_and_resolve_type_hints() -> None:
    import typing

    limit = cliniko_async.RateLimit(10, 1.0)
    assert pickle.loads(pickle.dumps(limit)) == limit  # noqa: S301 - our own bytes
    for name in ("Page", "PageLinks", "Link", "RateLimit", "RequestOptions"):
        typing.get_type_hints(getattr(cliniko_async, name))  # resolvable after the rewrite


def test_models_are_exported_from_the_models_package() -> None:
    assert models.Patient.__name__ == "Patient"
    assert "Patient" in dir(models) and "PatientInput" in models.__all__
