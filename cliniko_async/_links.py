"""The one link resolver: every URL the library sends the key to goes through :func:`resolve_link`.

A link (a pagination ``links.next``, or the path given to ``Session.request``) is accepted only
when, resolved against the configured base URL, it stays on that base URL:

* a relative link (``/patients?page=2``, the form Cliniko's available-times docs show) is a path
  under the base path (``/v1``); one that already starts with the base path is taken as it is;
* an absolute link must have the base URL's scheme, host and (effective) port, and a path inside
  the base path;
* no userinfo (``https://user:pw@host/...`` would make httpx send those credentials instead of the
  key), no dot segments (``..``, ``.``, also percent-encoded as ``%2e%2e``), no encoded slashes or
  backslashes in a segment, no control characters (CR, LF, NUL, ...) and no whitespace;
* anything else, including a link that is not a string or that httpx cannot parse, raises
  :class:`~cliniko_async.errors.UnsafeURLError` (a ``ClinikoError``), and nothing is sent.

Error messages never echo userinfo or the query string of the refused link.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

import httpx

from .errors import UnsafeURLError

__all__ = ["MAX_LINK_LENGTH", "resolve_link"]

#: Longer links are refused (Cliniko's own are a few hundred characters).
MAX_LINK_LENGTH: Final = 8192
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# C0 controls, DEL, C1 controls, and every Unicode space or separator.
_FORBIDDEN = re.compile(
    r"[\x00-\x20\x7f-\x9f\u2028\u2029\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff\\]"
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _describe(link: str) -> str:
    """The link as safe to show: no userinfo, no query, printable, short."""
    text = link.split("?", 1)[0].split("#", 1)[0]
    text = re.sub(r"//[^/@]*@", "//***@", text)
    text = "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in text)
    return text[:200] + ("..." if len(text) > 200 else "")


def _refuse(link: str, base: httpx.URL, why: str) -> UnsafeURLError:
    shown = _describe(link)
    return UnsafeURLError(
        f"refusing to follow {shown!r}: {why}; only links on the configured base URL "
        f"{base.copy_with(query=None, fragment=None)} are followed, and nothing was sent to it",
        url=shown,
    )


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)


def _check_segments(raw_path: str, link: str, base: httpx.URL) -> None:
    for segment in raw_path.split("/"):
        decoded = segment
        for _ in range(3):  # %252e%252e decodes to %2e%2e, then to ..
            decoded = unquote(decoded)
        if decoded in (".", ".."):
            raise _refuse(link, base, "it has a dot segment ('.' or '..', maybe percent-encoded)")
        if "/" in decoded or "\\" in decoded:
            raise _refuse(link, base, "it has an encoded slash or backslash in a path segment")
        if _FORBIDDEN.search(decoded.replace(" ", "")):
            raise _refuse(link, base, "it has an encoded control character")


def resolve_link(base: httpx.URL, link: object, *, current: httpx.URL | None = None) -> httpx.URL:
    """Resolve ``link`` against ``base`` and return the URL to send, or raise UnsafeURLError.

    ``base`` is the configured base URL (``https://api.au1.cliniko.com/v1``); ``link`` is a
    relative path with an optional query (``/patients?page=2``), or an absolute URL. A link that
    is only a query (``?page=2``) applies to ``current`` (the page it came from), and is refused
    without one. The result keeps the link's query; a fragment is dropped.
    """
    if not isinstance(link, str):
        raise UnsafeURLError(
            f"refusing to follow a link of type {type(link).__name__}: a link must be a string "
            "URL on the configured base URL; nothing was sent",
            url=f"<{type(link).__name__}>",
        )
    if not link:
        raise _refuse(link, base, "it is empty")
    if len(link) > MAX_LINK_LENGTH:
        raise _refuse(link, base, f"it is longer than {MAX_LINK_LENGTH} characters")
    if _FORBIDDEN.search(link):
        raise _refuse(link, base, "it has a control character, whitespace or a backslash")
    if not link.isascii():
        raise _refuse(link, base, "it has non-ASCII characters (send them percent-encoded)")
    without_fragment = link.split("#", 1)[0]
    raw_path, _, raw_query = without_fragment.partition("?")
    base_path = base.path.rstrip("/")
    absolute = bool(_SCHEME.match(link)) or link.startswith("//")
    if absolute:
        after_scheme = raw_path.split("//", 1)[1] if "//" in raw_path else ""
        authority, slash, path_part = after_scheme.partition("/")
        if "@" in authority:
            raise _refuse(link, base, "it carries userinfo (user:password@)")
        path = slash + path_part
    else:
        path = raw_path
        if not path:
            if current is None:
                raise _refuse(link, base, "it has no path")
            path = current.path
        if not path.startswith("/"):
            path = "/" + path
    _check_segments(path, link, base)
    try:
        if absolute:
            url = httpx.URL(without_fragment if _SCHEME.match(link) else base.scheme + ":" + link)
        else:
            if not (path == base_path or path.startswith(base_path + "/")):
                path = base_path + path
            url = base.copy_with(raw_path=(path + ("?" + raw_query if raw_query else "")).encode())
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
        raise _refuse(link, base, "it is not a valid URL") from None
    if url.userinfo:
        raise _refuse(link, base, "it carries userinfo (user:password@)")
    if (url.scheme, url.host, _port(url)) != (base.scheme, base.host, _port(base)):
        raise _refuse(link, base, "it is on another origin (scheme, host and port must match)")
    final_path = url.path
    if base_path and not (final_path == base_path or final_path.startswith(base_path + "/")):
        raise _refuse(link, base, f"its path is outside {base_path}/")
    return url.copy_with(fragment=None) if url.fragment else url
