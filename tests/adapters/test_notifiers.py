"""The Slack, webhook and email channels against real receivers on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from receivers import Reply, TlsCert, closed_port, http_receiver, self_signed_cert, silent_tcp_server, smtp_server
from tbhub.adapters.notifiers import EmailNotifier, SlackNotifier, UndeliverableMessage, WebhookNotifier
from tbhub.adapters.notifiers.message import format_duration, format_value, render_html, render_text
from tbhub.adapters.notifiers.webhook import parse_retry_after
from tbhub.core.models import Alert, RunStatus
from tbhub.core.ports import Notifier
from tbhub.errors import ConfigError, DeliveryError

AT = 1778312125.0  # 2026-05-09 07:35:25 UTC
TOKEN = "xoxFAKEsecretTOKEN123"  # stands in for the credential part of a Slack webhook URL
DETAILS: dict[RunStatus, dict[str, Any]] = {
    RunStatus.FINISHED: {
        "duration_s": 8040.0,
        "last_step": 12000,
        "scalars": {
            "loss": {"final": 0.1234567, "best": 0.1011, "best_step": 9000},
            "eval/accuracy": {"final": 0.91, "best": 0.93, "best_step": 11000},
        },
    },
    RunStatus.DIVERGED: {"tag": "loss", "step": 4200, "value": float("nan"), "reason": "loss is NaN"},
    RunStatus.STALLED: {"idle_s": 5400.0},
}
MESSAGES = {
    RunStatus.FINISHED: "Training finished after 2h 14m.",
    RunStatus.DIVERGED: "loss became NaN at step 4,200.",
    RunStatus.STALLED: "No new events for 1h 30m.",
}


def make_alert(status: RunStatus = RunStatus.FINISHED, **overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "key": f"lora/claims-v2/r16/{status.value}/12000",
        "endpoint": "lora",
        "dataset": "claims-v2",
        "run": "r16",
        "status": status,
        "at": AT,
        "message": MESSAGES[status],
        "details": DETAILS[status],
        "url": "http://hub.example:6006/tb/lora/?run=claims-v2%2Fr16",
    }
    return Alert(**(fields | overrides))


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every receiver a test starts must be stopped (its threads joined) by the time the test ends."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # trust_env=False only in tests: a developer's HTTP(S)_PROXY must not swallow 127.0.0.1. One client
    # for the module: building its TLS context costs ~0.1 s, and receivers close every connection anyway.
    with httpx.Client(trust_env=False) as c:
        yield c


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def fail(send: Callable[[], None]) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send()
    return info.value


# ------------------------------------------------------------------------------------------ message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45.9, "45s"), (60, "1m"), (725, "12m 5s"), (8040, "2h 14m"), (7200, "2h"),
     (3 * 86400 + 4 * 3600 + 5, "3d 4h"), (None, "?"), (-1, "?"), (float("nan"), "?")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1234567, "0.123457"), (1e12, "1e+12"), (float("nan"), "NaN"), (float("-inf"), "-inf"), (12000, "12,000"),
     ("x", "x")],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_render_text_per_status() -> None:
    finished = render_text(make_alert(RunStatus.FINISHED))
    assert finished.splitlines()[0] == "[tbhub] lora/claims-v2/r16 finished"
    for line in ("Duration: 2h 14m", "Last step: 12,000", "loss: final 0.123457, best 0.1011 @ step 9,000",
                 "Open in TensorBoard: http://hub.example:6006/tb/lora/?run=claims-v2%2Fr16"):
        assert line in finished.splitlines()
    assert "2026-05-09 07:35 UTC" in finished
    diverged = render_text(make_alert(RunStatus.DIVERGED))
    assert {"Tag: loss", "Step: 4,200", "Value: NaN", "Reason: loss is NaN"} <= set(diverged.splitlines())
    assert "Idle for: 1h 30m" in render_text(make_alert(RunStatus.STALLED)).splitlines()


def test_run_layout_alert_names_no_empty_dataset() -> None:
    """Under ``layout = "{run}"`` a run has no dataset: ``lora/r16``, never ``lora//r16`` or "dataset ,"."""
    alert = make_alert(RunStatus.FINISHED, dataset="", key="lora/r16/finished/12000")
    text, page = render_text(alert), render_html(alert)
    assert text.splitlines()[0] == "[tbhub] lora/r16 finished"
    assert "Endpoint lora, run r16 · 2026-05-09 07:35 UTC" in text.splitlines()
    assert "<h2>lora/r16 finished</h2>" in page and "dataset" not in page and "//" not in text.split("http")[0]


def test_rendering_survives_missing_and_malformed_details() -> None:
    odd = make_alert(RunStatus.FINISHED, details={"duration_s": "soon", "scalars": {"loss": 3, "acc": {}}}, url=None)
    text = render_text(odd)
    assert "Duration: ?" in text and "loss: 3" in text and "acc: ?" in text
    assert "Open in TensorBoard" not in text
    assert render_text(make_alert(RunStatus.DIVERGED, details={}, message=""))
    html = render_html(make_alert(RunStatus.DIVERGED, run="<script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html


# -------------------------------------------------------------------------------------------- Slack


def slack_url(base: str) -> str:
    return f"{base}/services/T0FAKE/B0FAKE/{TOKEN}"


@pytest.mark.parametrize(
    ("status", "emoji", "fields"),
    [
        (RunStatus.FINISHED, ":checkered_flag:",
         ["*Duration*\n2h 14m", "*Last step*\n12,000", "*loss*\nfinal 0.123457, best 0.1011 @ step 9,000",
          "*eval/accuracy*\nfinal 0.91, best 0.93 @ step 11,000"]),
        (RunStatus.DIVERGED, ":rotating_light:",
         ["*Tag*\nloss", "*Step*\n4,200", "*Value*\nNaN", "*Reason*\nloss is NaN"]),
        (RunStatus.STALLED, ":hourglass:", ["*Idle for*\n1h 30m"]),
    ],
)
def test_slack_posts_blocks_and_text(client: httpx.Client, status: RunStatus, emoji: str, fields: list[str]) -> None:
    with http_receiver() as hook:
        SlackNotifier("ml", slack_url(hook.url), hub_url="http://hub.example/", client=client).send(make_alert(status))
        [request] = hook.wait_for(1)
    assert request.method == "POST" and request.path == f"/services/T0FAKE/B0FAKE/{TOKEN}"
    assert request.headers["content-type"].startswith("application/json")
    payload = request.json()
    assert payload["text"].startswith(f"[tbhub] lora/claims-v2/r16 {status.value}\n")
    header, section, actions, context = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                 "text": f"{emoji} lora/claims-v2/r16 {status.value}"}}
    assert section["text"]["text"] == MESSAGES[status]
    assert [f["text"] for f in section["fields"]] == fields
    [button] = actions["elements"]
    assert button["text"]["text"] == "Open in TensorBoard" and button["url"] == make_alert().url
    assert "<http://hub.example/|tbhub>" in context["elements"][0]["text"]


def test_slack_without_url_has_no_button_and_escapes_mrkdwn(client: httpx.Client) -> None:
    with http_receiver() as hook:
        alert = make_alert(RunStatus.STALLED, url=None, message="a <b> & c")
        SlackNotifier("ml", slack_url(hook.url), client=client).send(alert)
        payload = hook.wait_for(1)[0].json()
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "context"]
    assert payload["blocks"][1]["text"]["text"] == "a &lt;b&gt; &amp; c"


@pytest.mark.parametrize(("retry_after", "expected"), [("7", 7.0), ("0.5", 0.5), (None, 1.0), ("soon", 1.0)])
def test_slack_429_is_transient_with_retry_after(
    client: httpx.Client, retry_after: str | None, expected: float
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    with http_receiver([Reply(429, "rate_limited", headers)]) as hook:
        error = fail(lambda: SlackNotifier("ml", slack_url(hook.url), client=client).send(make_alert()))
    assert not error.permanent and error.retry_after == expected
    assert "429" in str(error)


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "no_service"), (410, "channel_is_archived"), (403, "invalid_token"), (400, "invalid_payload")],
)
def test_slack_refusals_are_permanent_and_quote_the_reason(client: httpx.Client, status: int, body: str) -> None:
    with http_receiver([Reply(status, body)]) as hook:
        error = fail(lambda: SlackNotifier("ml", slack_url(hook.url), client=client).send(make_alert()))
    assert error.permanent and error.retry_after is None
    assert f"HTTP {status}" in str(error) and body in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("reply", "retry_after"), [(Reply(500, "oops"), None), (Reply(503, "", {"Retry-After": "2"}), 2.0)]
)
def test_slack_server_errors_are_transient(client: httpx.Client, reply: Reply, retry_after: float | None) -> None:
    with http_receiver([reply]) as hook:
        error = fail(lambda: SlackNotifier("ml", slack_url(hook.url), client=client).send(make_alert()))
    assert not error.permanent and error.retry_after == retry_after


def test_slack_unreachable_host_is_transient(client: httpx.Client) -> None:
    notifier = SlackNotifier("ml", slack_url(f"http://127.0.0.1:{closed_port()}"), client=client, timeout=2)
    error = fail(lambda: notifier.send(make_alert()))
    assert not error.permanent
    assert TOKEN not in str(error) and "T0FAKE" not in str(error)


def test_slack_never_shows_its_webhook_url(client: httpx.Client) -> None:
    real = SlackNotifier("ml", f"https://hooks.slack.com/services/T0FAKE/B0FAKE/{TOKEN}")
    assert repr(real) == "SlackNotifier(name='ml', url='hooks.slack.com/…')"
    # A receiver that echoes the request path in its error body must not leak the token through us.
    with http_receiver([Reply(404, f"no route for POST /services/T0FAKE/B0FAKE/{TOKEN}")]) as hook:
        notifier = SlackNotifier("ml", slack_url(hook.url), client=client)
        error = fail(lambda: notifier.send(make_alert()))
    for text in (str(error), repr(error), repr(notifier), error.message):
        assert TOKEN not in text and "B0FAKE" not in text, text
    assert error.__cause__ is None and error.__suppress_context__


def test_slack_rejects_a_non_http_url() -> None:
    with pytest.raises(ConfigError) as info:
        SlackNotifier("ml", f"ftp://hooks.slack.com/{TOKEN}")
    assert TOKEN not in str(info.value)


def test_receiver_script_plays_in_order_then_default(client: httpx.Client) -> None:
    """429 → 500 → 200, as an engine retrying a rate-limited Slack webhook would see it."""
    with http_receiver([Reply(429, "rate_limited", {"Retry-After": "1"}), 500]) as hook:
        notifier = SlackNotifier("ml", slack_url(hook.url), client=client)
        outcomes: list[str] = []
        for _ in range(3):
            try:
                notifier.send(make_alert())
                outcomes.append("sent")
            except DeliveryError as error:
                outcomes.append(f"retry after {error.retry_after}" if error.retry_after else "transient")
        assert outcomes == ["retry after 1.0", "transient", "sent"]
        assert [r.status for r in hook.requests] == [429, 500, 200]
        assert len({r.body for r in hook.requests}) == 1


def test_default_client_works_without_injection(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with http_receiver() as hook:
        SlackNotifier("ml", slack_url(hook.url)).send(make_alert())
        assert len(hook.wait_for(1)) == 1


# ------------------------------------------------------------------------------------------ Webhook


def test_webhook_posts_the_versioned_document(client: httpx.Client) -> None:
    alert = make_alert(RunStatus.DIVERGED)
    with http_receiver() as hook:
        WebhookNotifier("ops", f"{hook.url}/hooks/tbhub", client=client).send(alert)
        [request] = hook.wait_for(1)
    assert request.path == "/hooks/tbhub"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == alert.key
    assert "x-tbhub-signature" not in request.headers and "x-tbhub-timestamp" not in request.headers

    def strict(constant: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {constant}")

    document = json.loads(request.body, parse_constant=strict)
    assert document == {
        "version": 1,
        "key": alert.key,
        "endpoint": "lora",
        "dataset": "claims-v2",
        "run": "r16",
        "status": "diverged",
        "at": "2026-05-09T07:35:25Z",
        "message": MESSAGES[RunStatus.DIVERGED],
        "details": {"tag": "loss", "step": 4200, "value": "NaN", "reason": "loss is NaN"},
        "url": alert.url,
    }


def test_webhook_signature_verifies_with_the_secret(client: httpx.Client) -> None:
    secret = "whsec-fake-0123456789"
    with http_receiver() as hook:
        notifier = WebhookNotifier("ops", hook.url + "/in", secret=secret, client=client)
        notifier.send(make_alert())
        [request] = hook.wait_for(1)
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-tbhub-signature"], expected)
    assert abs(int(request.headers["x-tbhub-timestamp"]) - time.time()) < 60
    assert secret not in repr(notifier)
    tampered = request.body.replace(b"finished", b"diverged")
    assert "sha256=" + hmac.new(secret.encode(), tampered, hashlib.sha256).hexdigest() != expected


def test_webhook_extra_headers_are_sent_but_cannot_override_the_contract(client: httpx.Client) -> None:
    headers = {"Authorization": "Bearer fake-api-token-42", "content-type": "text/plain", "X-Team": "ml"}
    with http_receiver([Reply(401, "bad token Bearer fake-api-token-42")]) as hook:
        notifier = WebhookNotifier("ops", hook.url, client=client, headers=headers)
        error = fail(lambda: notifier.send(make_alert()))
        [request] = hook.wait_for(1)
    assert request.headers["authorization"] == "Bearer fake-api-token-42"
    assert request.headers["content-type"] == "application/json" and request.headers["x-team"] == "ml"
    assert error.permanent
    assert "fake-api-token-42" not in str(error) and "fake-api-token-42" not in repr(notifier)


@pytest.mark.parametrize(
    ("reply", "permanent", "retry_after"),
    [
        (Reply(200, ""), None, None),
        (Reply(204, ""), None, None),
        (Reply(404, "not found"), True, None),
        (Reply(410, "gone"), True, None),
        (Reply(422, "bad"), True, None),
        (Reply(301, "", {"Location": "https://elsewhere.example/"}), True, None),
        (Reply(429, "", {"Retry-After": "3"}), False, 3.0),
        (Reply(408, ""), False, None),
        (Reply(502, "bad gateway"), False, None),
    ],
)
def test_webhook_status_mapping(
    client: httpx.Client, reply: Reply, permanent: bool | None, retry_after: float | None
) -> None:
    with http_receiver([reply]) as hook:
        notifier = WebhookNotifier("ops", hook.url, client=client)
        if permanent is None:
            notifier.send(make_alert())
            return
        error = fail(lambda: notifier.send(make_alert()))
    assert error.permanent is permanent and error.retry_after == retry_after
    assert len(str(error)) < 200


def test_webhook_slow_receiver_times_out_as_transient(client: httpx.Client) -> None:
    with http_receiver([Reply(200, delay=0.8)]) as hook:
        notifier = WebhookNotifier("ops", hook.url, client=client, timeout=0.3)
        started = time.monotonic()
        error = fail(lambda: notifier.send(make_alert()))
        elapsed = time.monotonic() - started
    assert not error.permanent and "0.3s" in str(error)
    assert elapsed < 0.75


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after(" 30 ") == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < (parse_retry_after(future) or 0) <= 120
    assert parse_retry_after("later") is None and parse_retry_after(None) is None and parse_retry_after("nan") is None


def test_every_channel_is_a_notifier() -> None:
    channels: list[Notifier] = [
        SlackNotifier("s", "https://hooks.slack.com/services/x"),
        WebhookNotifier("w", "https://example.org/hook"),
        EmailNotifier("e", "smtp.example.org", 587, sender="tbhub@example.org", to=["ml@example.org"]),
    ]
    assert [c.name for c in channels] == ["s", "w", "e"]


# -------------------------------------------------------------------------------------------- Email


def test_email_starttls_and_auth_deliver_one_multipart_message(cert: TlsCert) -> None:
    with smtp_server(security="starttls", cert=cert) as smtp:
        notifier = EmailNotifier(
            "team", smtp.host, smtp.port, sender="tbhub <tbhub@example.org>", to=["ml@example.org", "lead@example.org"],
            username=smtp.user, password=smtp.password, ssl_context=smtp.client_context(), timeout=5,
        )
        notifier.send(make_alert())
        [mail] = smtp.messages
    assert mail.tls and mail.login == smtp.user
    assert mail.mail_from == "tbhub@example.org"
    assert mail.rcpt_tos == ["ml@example.org", "lead@example.org"]
    msg = mail.message
    assert msg["Subject"] == "[tbhub] lora/claims-v2/r16 finished"
    assert msg["To"] == "ml@example.org, lead@example.org"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Tbhub-Alert-Key"] == make_alert().key
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert "Duration: 2h 14m" in text.get_content() and "<table>" in html.get_content()
    assert smtp.password not in repr(notifier)


def test_email_implicit_tls(cert: TlsCert) -> None:
    with smtp_server(security="tls", cert=cert) as smtp:
        EmailNotifier(
            "team", smtp.host, smtp.port, sender="tbhub@example.org", to="ml@example.org", security="tls",
            username=smtp.user, password=smtp.password, ssl_context=smtp.client_context(), timeout=5,
        ).send(make_alert(RunStatus.DIVERGED))
        [mail] = smtp.messages
    assert mail.tls and mail.login == smtp.user and mail.rcpt_tos == ["ml@example.org"]
    assert mail.message["Subject"] == "[tbhub] lora/claims-v2/r16 diverged"


def test_email_plain_relay_without_login() -> None:
    with smtp_server(security="none", auth=False) as smtp:
        EmailNotifier("relay", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"],
                      security="none", timeout=5).send(make_alert(RunStatus.STALLED))
        [mail] = smtp.messages
    assert not mail.tls and mail.login is None


def test_email_wrong_password_is_permanent(cert: TlsCert) -> None:
    with smtp_server(security="starttls", cert=cert) as smtp:
        notifier = EmailNotifier("team", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"],
                                 username=smtp.user, password="wrong-password-123", ssl_context=smtp.client_context(),
                                 timeout=5)
        error = fail(lambda: notifier.send(make_alert()))
        assert smtp.messages == []
    assert error.permanent and "535" in str(error)
    assert "wrong-password-123" not in str(error) and "wrong-password-123" not in repr(notifier)


def test_email_never_falls_back_to_clear_text() -> None:
    with smtp_server(security="none", auth=False) as smtp:
        notifier = EmailNotifier("team", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"],
                                 username="u", password="p4ssword", timeout=5)
        error = fail(lambda: notifier.send(make_alert()))
        assert smtp.messages == []
    assert error.permanent and "STARTTLS" in str(error)


def test_email_untrusted_certificate_is_permanent(cert: TlsCert) -> None:
    with smtp_server(security="starttls", cert=cert) as smtp:
        # The default context trusts the system CAs only: our self-signed certificate must fail.
        notifier = EmailNotifier("team", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"],
                                 username=smtp.user, password=smtp.password, timeout=5)
        error = fail(lambda: notifier.send(make_alert()))
        assert smtp.messages == []
    assert error.permanent and "certificate" in str(error)


def test_email_refused_recipients(cert: TlsCert, caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server(security="starttls", cert=cert) as smtp:
        smtp.handler.refuse_rcpt["nobody@example.org"] = "550 5.1.1 no such user"
        smtp.handler.refuse_rcpt["busy@example.org"] = "450 4.2.1 mailbox busy"

        def notifier(*to: str) -> EmailNotifier:
            return EmailNotifier("team", smtp.host, smtp.port, sender="tbhub@example.org", to=to,
                                 username=smtp.user, password=smtp.password, ssl_context=smtp.client_context(),
                                 timeout=5)

        assert fail(lambda: notifier("nobody@example.org").send(make_alert())).permanent
        assert not fail(lambda: notifier("busy@example.org").send(make_alert())).permanent
        with caplog.at_level(logging.WARNING, logger="tbhub.adapters.notifiers.email"):
            notifier("ml@example.org", "nobody@example.org").send(make_alert())
        [mail] = smtp.messages
    assert mail.rcpt_tos == ["ml@example.org"]
    assert "nobody@example.org" in caplog.text and smtp.password not in caplog.text


@pytest.mark.parametrize(("reply", "permanent"), [("451 4.3.0 try again later", False), ("554 5.6.0 rejected", True)])
def test_email_data_replies_map_by_code(cert: TlsCert, reply: str, permanent: bool) -> None:
    with smtp_server(security="starttls", cert=cert) as smtp:
        smtp.handler.data_reply = reply
        error = fail(lambda: EmailNotifier(
            "team", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"], username=smtp.user,
            password=smtp.password, ssl_context=smtp.client_context(), timeout=5,
        ).send(make_alert()))
    assert error.permanent is permanent and reply.split()[0] in str(error)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_silent_server_times_out_as_transient(security: str, tmp_path: Path) -> None:
    with silent_tcp_server() as (host, port):
        notifier = EmailNotifier("team", host, port, sender="tbhub@example.org", to=["ml@example.org"],
                                 security=security, timeout=1)  # type: ignore[arg-type]
        started = time.monotonic()
        error = fail(lambda: notifier.send(make_alert()))
        elapsed = time.monotonic() - started
    assert not error.permanent and "no answer within 1s" in str(error)
    assert 0.9 < elapsed < 2.5


def test_email_connection_refused_is_transient() -> None:
    notifier = EmailNotifier("team", "127.0.0.1", closed_port(), sender="tbhub@example.org", to=["ml@example.org"],
                             timeout=2)
    error = fail(lambda: notifier.send(make_alert()))
    assert not error.permanent and "refused" in str(error)


def test_email_config_is_checked_up_front() -> None:
    common: dict[str, Any] = {"sender": "tbhub@example.org", "to": ["ml@example.org"]}
    with pytest.raises(ConfigError, match="unencrypted"):
        EmailNotifier("e", "localhost", 25, security="none", username="u", password="p", **common)
    with pytest.raises(ConfigError, match="recipient"):
        EmailNotifier("e", "localhost", 25, sender="tbhub@example.org", to=[])
    with pytest.raises(ConfigError, match="username"):
        EmailNotifier("e", "localhost", 25, password="p", **common)
    assert EmailNotifier("e", "localhost", 25, sender="a@b.c", to="x@y.z").to == ("x@y.z",)


# ------------------------------------------------------------------- hostile names, echoed secrets

NAMES = ["ünïcode run ✓", "cr\r\nlf run", "tab\tand%percent"]


@pytest.mark.parametrize("run", NAMES)
def test_webhook_delivers_any_run_name_with_an_ascii_idempotency_key(client: httpx.Client, run: str) -> None:
    # The key holds the run's name: non-ASCII made httpx fail to encode the header (the alert stayed
    # pending for ever) and CR/LF made it an illegal header (the channel was disabled).
    alert = make_alert(run=run, key=f"lora/ds/{run}:finished:40")
    with http_receiver() as hook:
        notifier = WebhookNotifier("ops", hook.url, client=client)
        notifier.send(alert)
        notifier.send(alert)
        first, again = hook.wait_for(2)
    key = first.headers["idempotency-key"]
    assert key == again.headers["idempotency-key"]  # a retried alert is recognisable
    assert key.isascii() and key.isprintable() and " " not in key
    assert urllib.parse.unquote(key) == alert.key
    assert first.json()["run"] == run and first.json()["key"] == alert.key


@pytest.mark.parametrize("run", NAMES)
def test_slack_and_email_deliver_any_run_name(client: httpx.Client, cert: TlsCert, run: str) -> None:
    alert = make_alert(run=run, key=f"lora/ds/{run}:finished:40")
    with http_receiver() as hook, smtp_server(security="starttls", cert=cert) as smtp:
        SlackNotifier("ml", hook.url + "/services/T/B/x", client=client).send(alert)
        EmailNotifier("team", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"],
                      username=smtp.user, password=smtp.password, ssl_context=smtp.client_context(),
                      timeout=5).send(alert)
        [request] = hook.wait_for(1)
        [mail] = smtp.messages
    assert run in request.json()["text"]
    assert " ".join(run.split()) in mail.message["Subject"]


def test_a_refused_document_fails_the_message_not_the_channel(client: httpx.Client) -> None:
    for status, body in ((400, "invalid_payload"), (413, "too large"), (422, "bad")):
        with http_receiver([Reply(status, body)]) as hook:
            error = fail(lambda: WebhookNotifier("ops", hook.url, client=client).send(make_alert()))
        assert isinstance(error, UndeliverableMessage) and error.permanent, status
    with http_receiver([Reply(404, "no_service")]) as hook:
        error = fail(lambda: SlackNotifier("ml", hook.url + "/services/x", client=client).send(make_alert()))
    assert not isinstance(error, UndeliverableMessage) and error.permanent


def test_a_run_name_that_cannot_be_encoded_fails_that_alert_only(client: httpx.Client) -> None:
    alert = make_alert(run="bad-\udcff\udcfe")  # a folder name that is not UTF-8, as os.fsdecode gives it
    with http_receiver() as hook:
        error = fail(lambda: SlackNotifier("ml", hook.url + "/services/x", client=client).send(alert))
        assert hook.requests == []
    assert isinstance(error, UndeliverableMessage)


@pytest.mark.parametrize("offered", ["PLAIN", "LOGIN"])
def test_smtp_password_echoed_back_in_base64_is_scrubbed(cert: TlsCert, offered: str) -> None:
    # Some servers quote the failed AUTH argument: the password in base64, alone (LOGIN) or as
    # "\0user\0password" (PLAIN). That reply becomes the channel's reason, which viewers read.
    password = "Tr0ub4dor&3-not-the-right-one"
    user = "alerts@example.org"
    other = "LOGIN" if offered == "PLAIN" else "PLAIN"
    with smtp_server(security="starttls", cert=cert, echo_auth=True, exclude_auth=[other]) as smtp:
        notifier = EmailNotifier("team", smtp.host, smtp.port, sender="tbhub@example.org", to=["ml@example.org"],
                                 username=user, password=password, ssl_context=smtp.client_context(), timeout=5)
        error = fail(lambda: notifier.send(make_alert()))
    text = str(error)
    assert error.permanent and "535" in text and "authentication failed for" in text
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    for leaked in (password, plain, login, plain[8:40], login[:20]):
        assert leaked not in text, (leaked, text)


def test_secret_forms_cover_base64_at_any_offset() -> None:
    from tbhub.adapters.notifiers.redaction import secret_forms
    from tbhub.adapters.notifiers.webhook import scrub

    secret = "s3cr3t+/?pässword"
    middle = secret.encode()[2:-2]  # the edges may share a base64 character with their neighbours
    forms = secret_forms(secret, user="me")
    for lead in (b"", b"x", b"xy", b"\0me\0"):
        codecs = ((base64.b64encode, base64.b64decode), (base64.urlsafe_b64encode, base64.urlsafe_b64decode))
        for encode, decode in codecs:
            scrubbed = scrub(f"535 said {encode(lead + secret.encode() + b'tail').decode()} bye", forms)
            for word in scrubbed.replace("…", " ").split():
                for skip in range(4):  # decode what is left at every alignment
                    chunk = word[skip:]
                    chunk = chunk[: len(chunk) // 4 * 4]
                    with contextlib.suppress(ValueError):
                        assert middle not in decode(chunk), (lead, scrubbed)
    assert secret not in scrub(f"x {secret} y", forms)
