"""Client configuration: API key and shard, base URL, User-Agent. Validated before any request."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterator
from typing import Final

import attrs
import httpx

from .errors import ConfigurationError

__all__ = [
    "ApiKey",
    "ClientConfig",
    "Secret",
    "base_url_for_shard",
    "check_user_agent",
    "mask",
    "without_passwords",
    "same_origin",
]

DEFAULT_SHARD: Final = "au1"
_SHARD = re.compile(r"^[a-z]{2}\d{1,2}$", re.IGNORECASE)
# Cliniko keys are base64-like tokens, optionally followed by "-<shard>".
_KEY_BODY = re.compile(r"^[A-Za-z0-9+/=_]{8,}$")
_USER_AGENT = re.compile(r"^(?P<name>\S.*?)\s*\((?P<email>[^()\s]+)\)\s*$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}$"
)


class Secret:
    """Holds a secret string. Nothing that prints or copies objects shows it.

    repr/str/format, ``attrs.asdict`` (it is not an attrs class: asdict keeps it as it is),
    rich (its repr), ``vars()`` (it has no ``__dict__``) and pickling (refused) never reveal the
    value; only :meth:`reveal` does, and the library calls it only inside the expression that
    builds the request headers, so no frame local holds the result.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<secret>"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a secret cannot be pickled (it would write the key out)")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self


#: Values at most this long are echoed in error messages: a key is longer (its body alone has
#: at least 8 characters), so nothing echoed can be a key.
_ECHO_MAX: Final = 7


def mask(value: object) -> str:
    """``value`` for an error message, unless it could be an API key pasted into the wrong place.

    Short values are shown (repr); anything longer only by its type and length.
    """
    if isinstance(value, str) and len(value) <= _ECHO_MAX:
        return repr(value)
    if isinstance(value, str):
        return f"a {len(value)}-character value, not shown: it could be a key"
    return f"a {type(value).__name__}"


#: ``scheme://user:password@`` in a URL or in text around one: the password is what goes.
_USERINFO = re.compile(r"(//[^/@\s:]*):[^/@\s]*@")


def without_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@...`` in it masked
    (``postgresql://u:***@host/db``): a database URL, or a proxy's in a transport's error."""
    return _USERINFO.sub(r"\1:***@", text)


@attrs.frozen(repr=False, eq=False)
class ApiKey:
    """A Cliniko API key. Its repr and str never show the key, only a short fingerprint.

    The key itself sits in a :class:`Secret`: ``attrs.asdict`` and rich show ``<secret>``.
    """

    _secret: Secret
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
                    f"shard ({mask(shard)}) is not valid: use two letters and one or two digits, "
                    "such as 'au1', 'uk2' or 'ca1'"
                )
            shard = shard.lower()
            if key_shard is not None and key_shard != shard:
                raise ConfigurationError(
                    f"shard={shard!r} conflicts with the key's own shard suffix {key_shard!r}: "
                    "drop the shard argument or use the key for that shard"
                )
        digest = hashlib.sha256(raw.encode()).hexdigest()
        return cls(Secret(raw), key_shard or shard or DEFAULT_SHARD, digest[:16])

    def basic_auth_header(self) -> str:
        """``Authorization`` header value: HTTP Basic, key as user name, empty password.

        The library calls it only inside the expression that builds a request's headers.
        """
        return "Basic " + base64.b64encode(f"{self._secret.reveal()}:".encode()).decode("ascii")

    def redact(self, data: bytes) -> bytes:
        """``data`` with this key and its Basic token replaced by ``<redacted>``.

        For text taken from a response into an error (a proxy or server that echoes the
        request's headers back must not put the key into an exception). One expression: no
        frame local holds the key.
        """
        return data.replace(self.basic_auth_header()[6:].encode(), b"<redacted>").replace(
            self._secret.reveal().encode(), b"<redacted>"
        )

    def __rich_repr__(self) -> Iterator[tuple[str, str]]:
        yield "shard", self.shard
        yield "fingerprint", self.fingerprint

    def __repr__(self) -> str:
        return f"<ApiKey shard={self.shard} fingerprint={self.fingerprint}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("ApiKey cannot be pickled (it would write the key out)")

    def __copy__(self) -> ApiKey:
        return self

    def __deepcopy__(self, memo: object) -> ApiKey:
        return self


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
    # Messages name the URL by its scheme and host only: a key pasted into its path, query or
    # user info must not be echoed.
    url = _parse_url(raw)
    if url is None or url.scheme not in ("https", "http") or not url.host:
        shown = f"({mask(raw)}) " if url is None or not url.host else f"{_origin(url)}... "
        raise ConfigurationError(
            f"base_url {shown}must be an absolute https:// URL such as "
            "'https://api.au1.cliniko.com/v1'"
        )
    if url.userinfo:
        raise ConfigurationError("base_url must not hold credentials: pass api_key instead")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigurationError(
            f"base_url {_origin(url)}... uses plain http: Cliniko requires HTTPS; plain http is "
            "allowed only for a loopback host (127.0.0.1, ::1, localhost) such as the fake Cliniko"
        )
    if url.query or url.fragment:
        raise ConfigurationError(
            f"base_url {_origin(url)}... must not have a query or fragment (not shown)"
        )
    return url.copy_with(path=url.path.rstrip("/") or "/")


def _parse_url(raw: object) -> httpx.URL | None:
    try:
        return httpx.URL(raw)  # type: ignore[arg-type]
    except Exception:
        return None


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]``; a host that could be a key (no dot, no colon) is masked."""
    host = url.host
    if not ("." in host or ":" in host or host == "localhost" or len(host) <= _ECHO_MAX):
        host = "…"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{host}{port}"


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
    # The value is not echoed: an API key pasted here by mistake must not reach a log.
    if not match or not match.group("name").strip():
        raise ConfigurationError(
            f"user_agent ({mask(raw)}) must be 'Application name (contact email)', e.g. {example}"
        )
    if not _EMAIL.match(match.group("email")):
        raise ConfigurationError(
            f"user_agent ({mask(raw)}) has no valid contact email in the parentheses, "
            f"e.g. {example}"
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
        """Validate everything; a ConfigurationError comes without the frames that saw the values.

        Its traceback starts here, and this frame's arguments are gone by then: a traceback
        that records frame locals (``capture_locals``, rich, Sentry) never shows the key, even
        when it was pasted into another argument.
        """
        try:
            key = ApiKey.parse(api_key, shard=shard)
            agent = check_user_agent(user_agent)
            url = check_base_url(
                base_url if base_url is not None else base_url_for_shard(key.shard)
            )
            return cls(key, agent, url)
        except ConfigurationError as exc:
            error = exc
        finally:
            del api_key, user_agent, base_url, shard
        raise error.with_traceback(None)
