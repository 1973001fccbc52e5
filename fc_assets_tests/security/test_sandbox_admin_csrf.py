"""The sandbox's `/_sandbox/*` admin routes refuse what a web page could make the developer's browser send
cross-origin (a `text/plain` or form POST, no custom header): 403 without `X-Sandbox-Admin: 1`, 415 for a
non-JSON POST, and nothing changes. With the header and JSON they work (as `SandboxAdmin` sends them)."""

from __future__ import annotations

import httpx
import pytest

from fc_assets.sandbox.runner import SandboxServer

ADMIN = {"X-Sandbox-Admin": "1"}


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/_sandbox/faults", '{"latency_ms": 5000}', "text/plain"),  # what fetch(no-cors) / a form can send
        ("/_sandbox/faults", "latency_ms=5000", "application/x-www-form-urlencoded"),
        ("/_sandbox/reset", "{}", "text/plain"),
        ("/_sandbox/clock", '{"advance_s": 86400}', "text/plain"),
        ("/_sandbox/faults", '{"latency_ms": 5000}', "application/json"),  # no header: refused as well
    ],
)
def test_cross_origin_style_post_without_the_header_is_refused(sandbox_clean, path, body, content_type):
    admin = sandbox_clean.admin
    clock_before = admin.clock()["now_ms"]
    r = httpx.post(
        sandbox_clean.base_url + path,
        content=body,
        headers={"Content-Type": content_type, "Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and "X-Sandbox-Admin" in r.json()["message"]
    assert admin.faults() == {}
    assert admin.clock()["now_ms"] - clock_before < 3_600_000  # not moved by a day


def test_text_plain_post_with_the_header_is_refused_415_and_json_works(sandbox_clean):
    base = sandbox_clean.base_url
    r = httpx.post(
        f"{base}/_sandbox/faults",
        content='{"latency_ms": 5}',
        headers={**ADMIN, "Content-Type": "text/plain"},
    )
    assert r.status_code == 415
    assert sandbox_clean.admin.faults() == {}
    r = httpx.post(f"{base}/_sandbox/faults", json={"latency_ms": 5}, headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"latency_ms": 5}
    assert httpx.delete(f"{base}/_sandbox/faults", headers=ADMIN).status_code == 200
    assert sandbox_clean.admin.faults() == {}


def test_admin_reads_need_the_header_too(sandbox):
    assert httpx.get(f"{sandbox.base_url}/_sandbox/received").status_code == 403
    assert httpx.get(f"{sandbox.base_url}/_sandbox/received", headers=ADMIN).status_code == 200
    assert httpx.get(f"{sandbox.base_url}/health").status_code == 200  # health stays open


def test_warning_when_bound_beyond_loopback(sandbox):
    assert "WARNING" not in sandbox.output()  # the session sandbox is on 127.0.0.1
    small = ["--orders", "5", "--locations", "2", "--products", "3", "--inventory-positions", "5"]
    small += ["--virtual-positions", "2"]
    with SandboxServer(small, host="0.0.0.0") as wide:
        assert "WARNING: the sandbox is bound to 0.0.0.0, beyond loopback" in wide.output()
