"""Configuration is validated before any request: key and shard, base URL, User-Agent."""

from __future__ import annotations

import inspect
import traceback
from typing import Any, get_type_hints

import attrs
import pytest

from cliniko_async import (
    Cliniko,
    ClinikoAccounts,
    ConfigurationError,
    RateLimit,
    RequestOptions,
    SyncCliniko,
)
from cliniko_async._config import ApiKey, ClientConfig
from cliniko_async._options import ClientOptions, RequestSettings

from ._mockserver import API_KEY, USER_AGENT

KEY = "MS0xMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcA"


@pytest.mark.parametrize(
    ("raw", "shard"),
    [(KEY, "au1"), (KEY + "-au2", "au2"), (KEY + "-UK1", "uk1"), (KEY + "-ca12", "ca12")],
)
def test_shard_detection(raw: str, shard: str) -> None:
    config = ClientConfig.build(api_key=raw, user_agent=USER_AGENT)
    assert config.api_key.shard == shard
    assert str(config.base_url) == f"https://api.{shard}.cliniko.com/v1"


def test_explicit_shard_override_and_conflict() -> None:
    assert ApiKey.parse(KEY, shard="uk2").shard == "uk2"
    assert ApiKey.parse(KEY + "-uk2", shard="UK2").shard == "uk2"
    with pytest.raises(ConfigurationError, match="conflicts"):
        ApiKey.parse(KEY + "-au1", shard="uk2")


@pytest.mark.parametrize(
    "raw",
    [
        KEY + "-au1.evil.com",  # would steer the host
        KEY + "-evil.com/",
        KEY + "-a1",
        KEY + "-au123",
        "short",
        KEY + " ",
        "",
        "key with spaces-au1",
        KEY + "@evil.com",
    ],
)
def test_malformed_keys_rejected(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ApiKey.parse(raw)
    # The message names the problem but never echoes the key.
    assert KEY not in str(info.value)


@pytest.mark.parametrize("shard", ["au1.evil", "x1", "au", "../", "au1/", 1])
def test_bad_shard_rejected(shard: object) -> None:
    with pytest.raises(ConfigurationError, match="shard"):
        ApiKey.parse(KEY, shard=shard)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "agent",
    [
        None,
        "",
        "Acme",
        "Acme ()",
        "Acme (not-an-email)",
        "(dev@acme.example)",
        "Acme (a@b)",
        "A\n(dev@acme.example)",
    ],
)
def test_user_agent_needs_name_and_email(agent: object) -> None:
    with pytest.raises(ConfigurationError, match="user_agent"):
        ClientConfig.build(api_key=KEY, user_agent=agent)


def test_user_agent_ok() -> None:
    assert ClientConfig.build(api_key=KEY, user_agent="Acme Sync 2.0 (dev@acme.example)")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.au1.cliniko.com/v1",  # plain http off loopback
        "ftp://127.0.0.1/v1",
        "https://user:pw@api.au1.cliniko.com/v1",
        "https://api.au1.cliniko.com/v1?x=1",
        "not a url",
    ],
)
def test_base_url_rules(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        ClientConfig.build(api_key=KEY, user_agent=USER_AGENT, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/v1",
        "http://localhost/v1",
        "http://[::1]:9/v1",
        "https://cliniko.internal/v1/",
    ],
)
def test_loopback_http_and_any_https_allowed(url: str) -> None:
    config = ClientConfig.build(api_key=KEY, user_agent=USER_AGENT, base_url=url)
    assert not str(config.base_url).endswith("/v1/")


def test_key_never_in_repr_or_pickle() -> None:
    key = ApiKey.parse(API_KEY)
    assert API_KEY not in repr(key) and API_KEY not in str(key)
    assert key.basic_auth_header().startswith("Basic ")
    client = Cliniko(api_key=API_KEY, user_agent=USER_AGENT)
    assert API_KEY not in repr(client)
    assert "au1" in client.base_url
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_bad_rate_limit_and_options() -> None:
    with pytest.raises(ConfigurationError):
        Cliniko(api_key=API_KEY, user_agent=USER_AGENT, rate_limit=200)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Cliniko(api_key=API_KEY, user_agent=USER_AGENT, max_retries=-1)
    with pytest.raises(ConfigurationError):
        Cliniko(api_key=API_KEY, user_agent=USER_AGENT, timeout=0)


# -- one keyword list for Cliniko, SyncCliniko and ClinikoAccounts ----------------------------


def _keywords(func: object) -> dict[str, object]:
    params = inspect.signature(func).parameters  # type: ignore[arg-type]
    return {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_the_three_clients_take_one_keyword_list_with_the_same_defaults() -> None:
    """The signatures help() and editors show, compared: they cannot drift apart."""
    shared = _keywords(Cliniko)
    assert set(shared) - {"api_key", "shard"} == set(get_type_hints(ClientOptions))
    assert _keywords(SyncCliniko) == shared
    accounts = _keywords(ClinikoAccounts)
    assert accounts.pop("max_sessions") == 1024
    assert accounts == {n: d for n, d in shared.items() if n not in ("api_key", "shard")}
    assert shared["timeout"] == 30.0 and shared["max_retries"] == 2
    assert shared["user_agent"] is inspect.Parameter.empty  # required
    assert "options" in shared and "max_rate_limit_wait" in shared and "backoff_base" in shared
    # with_options: the request settings, the same on all three (left out: unchanged)
    settings = _keywords(Cliniko.with_options)
    assert set(settings) == set(get_type_hints(RequestSettings)) < set(shared)
    assert _keywords(SyncCliniko.with_options) == settings
    assert _keywords(ClinikoAccounts.with_options) == settings
    assert repr(settings["timeout"]) == "<unchanged>"
    shown = str(inspect.signature(Cliniko))
    assert "timeout: float | httpx.Timeout = 30.0, max_retries: int = 2" in shown


@pytest.mark.parametrize("cls", [Cliniko, SyncCliniko, ClinikoAccounts])
def test_an_unknown_or_missing_keyword_is_a_type_error_on_every_client(cls: Any) -> None:
    key = {} if cls is ClinikoAccounts else {"api_key": API_KEY}
    name = cls.__name__
    with pytest.raises(
        TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'timeuot'"
    ):
        cls(**key, user_agent=USER_AGENT, timeuot=5)
    with pytest.raises(TypeError, match=rf"^{name}\(\) missing 1 required keyword-only argument"):
        cls(**key)


async def test_request_options_and_keywords_beside_them_on_every_client() -> None:
    opts = RequestOptions(timeout=7.0, max_retries=5, backoff_base=0.1, max_rate_limit_wait=3.0)
    async with Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, options=opts, max_retries=1
    ) as cliniko:
        got = cliniko._session_obj.options
        assert (got.timeout, got.max_retries, got.backoff_base, got.max_rate_limit_wait) == (
            7.0, 1, 0.1, 3.0,
        )  # fmt: skip
        view = cliniko.with_options(backoff_max=2.0)
        assert view._session_obj.options == attrs.evolve(got, backoff_max=2.0)
        assert cliniko.with_options(options=RequestOptions())._session_obj.options == (
            RequestOptions()
        )
        # a new timeout without a deadline: the default deadline for it, not the old one
        timed = Cliniko(api_key=API_KEY, user_agent=USER_AGENT, timeout=1.0, deadline=50.0)
        assert timed.with_options(timeout=2.0)._session_obj.options.deadline is None
        await timed.aclose()
        with pytest.raises(TypeError, match="unexpected keyword argument 'http_client'"):
            cliniko.with_options(http_client=None)  # type: ignore[call-arg]
        with pytest.raises(ConfigurationError, match="options must be"):
            cliniko.with_options(options=RateLimit())  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="max_retries"):
            cliniko.with_options(max_retries=-1)
    with SyncCliniko(api_key=API_KEY, user_agent=USER_AGENT, options=opts) as sync:
        assert sync._session.options == opts
        assert sync.with_options(max_retries=0)._session.options.max_retries == 0
    async with ClinikoAccounts(user_agent=USER_AGENT, options=opts, deadline=9.0) as accounts:
        client = accounts.for_key(API_KEY)
        assert client._session.options == attrs.evolve(opts, deadline=9.0)
        accounts_view = accounts.with_options(max_retries=0)
        assert isinstance(accounts_view, ClinikoAccounts)
        other = accounts_view.for_key(API_KEY)
        assert other is accounts_view.for_key(API_KEY)  # cached in the view
        assert other._session.options == attrs.evolve(opts, deadline=9.0, max_retries=0)
        assert other._session.limiter is client._session.limiter  # one budget per key
        assert accounts.for_key(API_KEY)._session.options.max_retries == 5  # unchanged
        await accounts_view.aclose()  # the view's sessions only
        assert other._session.closed and not client._session.closed
    assert client._session.closed


SECRET = "MS0xLXNlY3JldC1iZXNpZGUtYS10eXBvLWtleS12YWx1ZQ-au1"


def _construct(cls: Any, arguments: dict[str, Any]) -> None:
    # The caller's frame (user code) holds the key: dropped before the traceback is read.
    try:
        cls(**arguments)
    finally:
        arguments.clear()


@pytest.mark.parametrize("cls", [Cliniko, SyncCliniko, ClinikoAccounts])
@pytest.mark.parametrize(
    "wrong", [{"timeuot": 5}, {"user_agent": None}], ids=["typo", "no-user-agent"]
)
def test_a_keyword_error_keeps_the_key_out_of_the_frame_locals(
    cls: Any, wrong: dict[str, Any]
) -> None:
    """The TypeError for a typo (which Python raises before any frame exists for a plain
    signature) is raised by the constructor itself: after its arguments are dropped."""
    arguments: dict[str, Any] = {"api_key": SECRET, "user_agent": f"{SECRET} (a@b.example)"}
    if cls is ClinikoAccounts:
        arguments["user_agent"] = f"Acme {SECRET} (dev@acme.example)"
        del arguments["api_key"]
    arguments.update(wrong)
    if arguments["user_agent"] is None:
        del arguments["user_agent"]
    with pytest.raises(TypeError) as info:
        _construct(cls, arguments)
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert cls.__name__ + "()" in rendered and "__init__" in rendered
    assert SECRET not in rendered and SECRET[:20] not in rendered
