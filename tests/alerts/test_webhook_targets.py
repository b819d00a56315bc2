"""Alert webhooks never reach into tenpo's own network: a rule's URL must be http(s) to a
public address (unless ``alert_webhook_allow_private``), checked when the rule is stored and
again, after DNS resolution, at every delivery attempt, which connects to the checked address."""

from __future__ import annotations

import ipaddress
from datetime import date

import httpx
import pytest

from tenpo.alerts import Alert, alert_id, deliver
from tenpo.alerts.webhook import IPAddress, WebhookRefused, check_webhook_url

SECRET = "s3cret-s3cret-s3cret"
PUBLIC = "93.184.216.34"

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.5/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://0.0.0.0:8000/hook",
    "http://[::1]/hook",
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://224.0.0.1/hook",
]


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            return [ipaddress.ip_address(a) for a in table[host]]

    return resolve


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(WebhookRefused, match="non-public address"):
        check_webhook_url(url)
    assert check_webhook_url(url, allow_private=True)


def test_hostnames_are_judged_by_every_address_they_resolve_to() -> None:
    resolve = _resolver(
        {"hooks.example": [PUBLIC], "mixed.example": [PUBLIC, "10.0.0.7"], "localhost": ["::1"]}
    )
    assert check_webhook_url("https://hooks.example/a", resolve=resolve) == [
        ipaddress.ip_address(PUBLIC)
    ]
    for host, bad in (("mixed.example", "10.0.0.7"), ("localhost", "::1")):
        with pytest.raises(WebhookRefused, match=bad.replace(".", r"\.")):
            check_webhook_url(f"https://{host}/a", resolve=resolve)
    with pytest.raises(WebhookRefused, match="non-public"):
        check_webhook_url("http://localhost:8000/a")  # the real resolver too


def test_only_http_and_https() -> None:
    for url in ("ftp://93.184.216.34/x", "file:///etc/passwd", "gopher://93.184.216.34/"):
        with pytest.raises(WebhookRefused, match="scheme"):
            check_webhook_url(url, allow_private=True)
    assert check_webhook_url(f"https://{PUBLIC}/x") == [ipaddress.ip_address(PUBLIC)]


def _alert() -> Alert:
    day = date(2026, 11, 10)
    aid = alert_id("t1", "r", "s1", "visitors", day)
    return Alert(aid, "t1", "r", "kpi_outside_forecast", "s1", "visitors", day, "drop", 1.0)


def test_a_host_rebound_to_a_private_address_after_the_rule_was_stored_is_not_posted_to() -> None:
    """DNS rebinding: the rule was stored while the name resolved to a public address; at
    delivery it resolves to the metadata service. Nothing is sent (the old code POSTed)."""
    seen: list[httpx.Request] = []
    answers = {"hooks.example": [PUBLIC]}
    resolve = _resolver(answers)
    check_webhook_url("http://hooks.example/hook", resolve=resolve)  # as when stored
    answers["hooks.example"] = ["169.254.169.254"]
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    with httpx.Client(transport=transport) as client:
        result = deliver(
            _alert(), "http://hooks.example/hook", SECRET, client=client, resolve=resolve,
            sleep=lambda s: None,
        )  # fmt: skip
    assert seen == []
    assert not result.delivered and result.attempts == 1 and result.status is None
    assert "169.254.169.254" in (result.error or "")


def test_the_connection_goes_to_the_checked_address_with_the_urls_host_and_server_name() -> None:
    """The POST connects to the address that was checked (a second lookup by the HTTP client
    could answer differently), keeping the URL's Host header and TLS server name."""
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
    resolve = _resolver({"hooks.example": [PUBLIC]})
    with httpx.Client(transport=transport) as client:
        result = deliver(
            _alert(), "https://hooks.example:8443/in?x=1", SECRET, client=client,
            resolve=resolve,
        )  # fmt: skip
    assert result.delivered
    (request,) = seen
    assert str(request.url) == f"https://{PUBLIC}:8443/in?x=1"
    assert request.headers["Host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"


def test_redirects_are_not_followed() -> None:
    """A receiver answering 302 to an internal address gets no second request, even from a
    client that follows redirects (the old code followed it)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:8000/admin"})

    with httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=True) as client:
        result = deliver(_alert(), f"http://{PUBLIC}/hook", SECRET, client=client)
    assert len(seen) == 1 and str(seen[0].url) == f"http://{PUBLIC}/hook"
    assert (result.delivered, result.status, result.attempts) == (False, 302, 1)


def test_refusals_show_only_the_origin_never_a_token_in_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A webhook URL often carries its token (user info, path, query): a refusal — a 422
    detail, a log line, the alert's stored delivery error — names scheme, host and port."""
    url = "http://user:pa55@10.0.0.9:8080/hooks/T0KEN?sig=S1G"
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url(url)
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with httpx.Client(transport=transport) as client:
        result = deliver(_alert(), url, SECRET, client=client)
    assert not result.delivered
    for text in (str(refused.value), result.error or "", caplog.text):
        assert "http://10.0.0.9:8080 targets a non-public address" in text, text
        assert "pa55" not in text and "T0KEN" not in text and "S1G" not in text, text
