"""Client configuration: API key and shard, base URL, User-Agent. Validated before any request."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import Final

import attrs
import httpx

from .errors import ConfigurationError

__all__ = ["ApiKey", "ClientConfig", "base_url_for_shard", "check_user_agent", "same_origin"]

DEFAULT_SHARD: Final = "au1"
_SHARD = re.compile(r"^[a-z]{2}\d{1,2}$", re.IGNORECASE)
# Cliniko keys are base64-like tokens, optionally followed by "-<shard>".
_KEY_BODY = re.compile(r"^[A-Za-z0-9+/=_]{8,}$")
_USER_AGENT = re.compile(r"^(?P<name>\S.*?)\s*\((?P<email>[^()\s]+)\)\s*$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}$"
)


@attrs.frozen(repr=False, eq=False)
class ApiKey:
    """A Cliniko API key. Its repr and str never show the key, only a short fingerprint."""

    _secret: str
    shard: str
    fingerprint: str

    @classmethod
    def parse(cls, raw: object, *, shard: str | None = None) -> ApiKey:
        """Validate ``raw`` and find its shard: the suffix after the last ``-`` (default au1).

        An explicit ``shard`` overrides a key without a suffix and must agree with one that has it.
        """
        if not isinstance(raw, str) or not raw:
            raise ConfigurationError(
                "api_key is missing: pass the API key from Cliniko (My Info > Manage API keys), "
                "e.g. Cliniko(api_key=os.environ['CLINIKO_API_KEY'], ...)"
            )
        if raw != raw.strip():
            raise ConfigurationError(
                "api_key has leading or trailing whitespace: strip it (e.g. key.strip())"
            )
        body, sep, suffix = raw.rpartition("-")
        key_shard: str | None = None
        if sep:
            if not _SHARD.match(suffix):
                raise ConfigurationError(
                    "api_key has a malformed shard suffix: a Cliniko key ends with '-' and a shard "
                    "such as 'au1', 'uk2' or 'ca1', or has no suffix; check that the whole key "
                    "was copied"
                )
            key_shard = suffix.lower()
        else:
            body = raw
        if not _KEY_BODY.match(body):
            raise ConfigurationError(
                "api_key is malformed: a Cliniko key holds only letters, digits and + / = _ "
                "(optionally followed by a '-au1' style shard); check that the whole key was copied"
            )
        if shard is not None:
            if not isinstance(shard, str) or not _SHARD.match(shard):
                raise ConfigurationError(
                    f"shard {shard!r} is not valid: use two letters and one or two digits, "
                    "such as 'au1', 'uk2' or 'ca1'"
                )
            shard = shard.lower()
            if key_shard is not None and key_shard != shard:
                raise ConfigurationError(
                    f"shard={shard!r} conflicts with the key's own shard suffix {key_shard!r}: "
                    "drop the shard argument or use the key for that shard"
                )
        digest = hashlib.sha256(raw.encode()).hexdigest()
        return cls(raw, key_shard or shard or DEFAULT_SHARD, digest[:16])

    def basic_auth_header(self) -> str:
        """``Authorization`` header value: HTTP Basic, key as user name, empty password."""
        token = base64.b64encode(f"{self._secret}:".encode()).decode("ascii")
        return f"Basic {token}"

    def __repr__(self) -> str:
        return f"<ApiKey shard={self.shard} fingerprint={self.fingerprint}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("ApiKey cannot be pickled (it would write the key out)")


def base_url_for_shard(shard: str) -> str:
    """``https://api.{shard}.cliniko.com/v1``."""
    return f"https://api.{shard}.cliniko.com/v1"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(raw: str) -> httpx.URL:
    """Validate an explicit base URL: HTTPS, or plain HTTP on a loopback host (for tests)."""
    try:
        url = httpx.URL(raw)
    except Exception as exc:
        raise ConfigurationError(f"base_url {raw!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigurationError(
            f"base_url {raw!r} must be an absolute https:// URL such as "
            "'https://api.au1.cliniko.com/v1'"
        )
    if url.userinfo:
        raise ConfigurationError("base_url must not hold credentials: pass api_key instead")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigurationError(
            f"base_url {raw!r} uses plain http: Cliniko requires HTTPS; plain http is allowed "
            "only for a loopback host (127.0.0.1, ::1, localhost) such as the fake Cliniko"
        )
    if url.query or url.fragment:
        raise ConfigurationError(f"base_url {raw!r} must not have a query or fragment")
    return url.copy_with(path=url.path.rstrip("/") or "/")


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Same scheme, host and (effective) port."""
    return (a.scheme, a.host, a.port or _default_port(a)) == (
        b.scheme,
        b.host,
        b.port or _default_port(b),
    )


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def check_user_agent(raw: object) -> str:
    """Require ``"App Name (contact@example.com)"``: Cliniko may block requests without it."""
    example = "user_agent='Acme Sync (dev@acme.example)'"
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigurationError(
            f"user_agent is missing: Cliniko requires your application's name and a contact "
            f"email, e.g. {example}"
        )
    if any(c in raw for c in "\r\n\x00"):
        raise ConfigurationError("user_agent must be a single line")
    match = _USER_AGENT.match(raw.strip())
    if not match or not match.group("name").strip():
        raise ConfigurationError(
            f"user_agent {raw!r} must be 'Application name (contact email)', e.g. {example}"
        )
    if not _EMAIL.match(match.group("email")):
        raise ConfigurationError(
            f"user_agent {raw!r} has no valid contact email in the parentheses, e.g. {example}"
        )
    return raw.strip()


@attrs.frozen
class ClientConfig:
    """Validated settings shared by every request of a client."""

    api_key: ApiKey
    user_agent: str
    base_url: httpx.URL

    @classmethod
    def build(
        cls,
        *,
        api_key: object,
        user_agent: object,
        base_url: str | None = None,
        shard: str | None = None,
    ) -> ClientConfig:
        key = ApiKey.parse(api_key, shard=shard)
        agent = check_user_agent(user_agent)
        url = check_base_url(base_url if base_url is not None else base_url_for_shard(key.shard))
        return cls(key, agent, url)
