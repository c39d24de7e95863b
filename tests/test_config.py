"""Configuration is validated before any request: key and shard, base URL, User-Agent."""

from __future__ import annotations

import pytest

from cliniko_async import Cliniko, ConfigurationError
from cliniko_async._config import ApiKey, ClientConfig

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
