"""The one link resolver: relative and absolute links, same origin, inside the base path."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliniko_async._links import resolve_link
from cliniko_async.errors import ClinikoError, UnsafeURLError

BASE = httpx.URL("https://api.au2.cliniko.com/v1")
LOOPBACK = httpx.URL("http://127.0.0.1:8123/v1")


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("/patients?page=2", "https://api.au2.cliniko.com/v1/patients?page=2"),
        ("/v1/patients?page=2", "https://api.au2.cliniko.com/v1/patients?page=2"),
        ("patients?page=2", "https://api.au2.cliniko.com/v1/patients?page=2"),
        (
            "https://api.au2.cliniko.com/v1/patients?q%5B%5D=id:%3E5&page=2",
            "https://api.au2.cliniko.com/v1/patients?q%5B%5D=id:%3E5&page=2",
        ),
        (
            "https://api.au2.cliniko.com:443/v1/patients",
            "https://api.au2.cliniko.com/v1/patients",
        ),
        ("//api.au2.cliniko.com/v1/patients", "https://api.au2.cliniko.com/v1/patients"),
        ("https://API.au2.cliniko.com/v1/patients#x", "https://api.au2.cliniko.com/v1/patients"),
        (
            "/businesses/1/practitioners/2/appointment_types/3/available_times?from=2026-01-01",
            "https://api.au2.cliniko.com/v1/businesses/1/practitioners/2/appointment_types/3/"
            "available_times?from=2026-01-01",
        ),
    ],
)
def test_resolves_links_on_the_base_url(link: str, expected: str) -> None:
    assert str(resolve_link(BASE, link)) == expected


def test_query_only_link_applies_to_the_current_page() -> None:
    current = httpx.URL("https://api.au2.cliniko.com/v1/patients?page=1")
    assert str(resolve_link(BASE, "?page=2", current=current)) == (
        "https://api.au2.cliniko.com/v1/patients?page=2"
    )
    with pytest.raises(UnsafeURLError):
        resolve_link(BASE, "?page=2")


@pytest.mark.parametrize(
    "link",
    [
        "https://evil:pw@api.au2.cliniko.com/v1/patients",
        "https://evil@api.au2.cliniko.com/v1/patients",
        "//evil:pw@api.au2.cliniko.com/v1/patients",
        "http://api.au2.cliniko.com/v1/patients",
        "https://api.au2.cliniko.com:8443/v1/patients",
        "https://api.au3.cliniko.com/v1/patients",
        "https://api.au2.cliniko.com.evil.example/v1/patients",
        "//evil.example/v1/patients",
        "https://api.au2.cliniko.com/v2/patients",
        "https://api.au2.cliniko.com/v1x/patients",
        "https://api.au2.cliniko.com/",
        "https://api.au2.cliniko.com/v1/../v2/patients",
        "https://api.au2.cliniko.com/v1/%2e%2e/v2/patients",
        "https://api.au2.cliniko.com/v1/%2E%2e/v2/patients",
        "https://api.au2.cliniko.com/v1/.%2e/v2",
        "https://api.au2.cliniko.com/v1/%252e%252e/v2",
        "https://api.au2.cliniko.com/v1/./patients",
        "/../v2/patients",
        "/%2e%2e/v2/patients",
        "/patients/%2f..%2f..%2fv2",
        "/patients\\..\\v2",
        "/patients?page=2\r\nX-Injected: 1",
        "/patients\npage",
        "/patients\x00",
        "/patients%00",
        "/patients%0d%0a",
        "/pat ients",
        "/patients\u2028",
        "/pätients",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "",
        "x" * 10_000,
        "https://[::1/v1",
        "https://api.au2.cliniko.com:99999/v1/patients",
    ],
)
def test_refuses_links_that_leave_the_base_url(link: str) -> None:
    with pytest.raises(UnsafeURLError) as info:
        resolve_link(BASE, link)
    assert "pw" not in str(info.value) and "\r" not in str(info.value)


@pytest.mark.parametrize("link", [None, 5, 1.5, b"/patients", ["/patients"], {"self": "/x"}])
def test_refuses_links_that_are_not_strings(link: object) -> None:
    with pytest.raises(UnsafeURLError):
        resolve_link(BASE, link)


def test_loopback_base_with_port() -> None:
    assert str(resolve_link(LOOPBACK, "/patients")) == "http://127.0.0.1:8123/v1/patients"
    with pytest.raises(UnsafeURLError):
        resolve_link(LOOPBACK, "http://127.0.0.1:8124/v1/patients")
    with pytest.raises(UnsafeURLError):
        resolve_link(LOOPBACK, "http://localhost:8123/v1/patients")


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=50).map(lambda b: b.decode("latin-1"))))
def test_anything_either_stays_on_the_base_or_raises_unsafe_url(link: str) -> None:
    for candidate in (link, "/" + link, "https://api.au2.cliniko.com/v1/" + link):
        try:
            url = resolve_link(BASE, candidate)
        except UnsafeURLError:
            continue
        except ClinikoError as exc:  # pragma: no cover - the resolver raises UnsafeURLError only
            pytest.fail(f"unexpected {exc!r}")
        assert (url.scheme, url.host, url.port) == ("https", "api.au2.cliniko.com", None)
        assert url.path == "/v1" or url.path.startswith("/v1/")
        assert not url.userinfo
        assert ".." not in url.path.split("/")
        assert not any(ch in str(url) for ch in "\r\n\x00")
