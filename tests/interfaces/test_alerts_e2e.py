"""Alerts end to end: runs written live go NaN, stall and finish while ``tbhub serve`` watches them.

Real receivers: a local HTTP receiver for the webhook and Slack formats, aiosmtpd with STARTTLS and
AUTH, and a silent SMTP server that never answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import serve, wait_for

from eventfiles import file_version_event, scalar_event, write_events
from receivers import Reply, http_receiver, self_signed_cert, silent_tcp_server, smtp_server

pytestmark = pytest.mark.slow
SECRET = "s3cret-for-hmac"


class LiveRun:
    """A training job appending loss values to its event file in a thread."""

    def __init__(self, root: Path, relpath: str, values: list[float], every: float = 0.25) -> None:
        self.path = root / relpath / "events.out.tfevents.1800000000.host.1.0"
        self.values, self.every = values, every
        write_events(self.path, [file_version_event(time.time())])
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for step, value in enumerate(self.values):
            write_events(self.path, [scalar_event(step, value, "train/loss", wall_time=time.time())], append=True)
            time.sleep(self.every)


@pytest.fixture
def channels(tmp_path: Path) -> Iterator[dict[str, object]]:
    cert = self_signed_cert(tmp_path)
    # The webhook fails twice (429 with Retry-After, then 500) before it recovers.
    with http_receiver([Reply(429, "slow down", {"Retry-After": "1"}), Reply(500, "oops")]) as hook, \
            http_receiver() as slack, smtp_server(security="starttls", cert=cert) as smtp, \
            silent_tcp_server() as (silent_host, silent_port):
        yield {"hook": hook, "slack": slack, "smtp": smtp, "cert": cert, "silent": (silent_host, silent_port)}


def notify_config(ch: dict[str, object], tmp_path: Path) -> str:
    smtp = ch["smtp"]
    cert = ch["cert"]
    silent_host, silent_port = ch["silent"]  # type: ignore[misc]
    (tmp_path / "smtp-password").write_text(smtp.password)  # type: ignore[attr-defined]
    return (
        '[alerts]\nstalled_after = "5s"\nmax_steps = 40\n'
        f'[[notify]]\ntype = "webhook"\nname = "hook"\nurl = "{ch["hook"].url}/tbhub"\n'  # type: ignore[attr-defined]
        'secret_env = "TBHUB_TEST_SECRET"\n'
        f'[[notify]]\ntype = "slack"\nname = "slack"\nurl_env = "TBHUB_TEST_SLACK"\non = ["diverged", "finished"]\n'
        f'[[notify]]\ntype = "email"\nname = "mail"\nhost = "{smtp.host}"\nport = {smtp.port}\n'  # type: ignore[attr-defined]
        f'username = "{smtp.user}"\npassword_file = "{tmp_path / "smtp-password"}"\n'  # type: ignore[attr-defined]
        f'sender = "tbhub@test"\nto = ["ml-team@test"]\non = ["finished"]\nca_file = "{cert.cert}"\n'  # type: ignore[attr-defined]
        f'[[notify]]\ntype = "email"\nname = "dead-mail"\nhost = "{silent_host}"\nport = {silent_port}\n'
        'security = "none"\nto = ["nobody@test"]\ntimeout = 1.0\n'
    )


def test_nan_stall_finish_arrive_once_each_and_survive_restart(
    tmp_path: Path, channels: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, slack, smtp = channels["hook"], channels["slack"], channels["smtp"]
    monkeypatch.setenv("TBHUB_TEST_SECRET", SECRET)
    monkeypatch.setenv("TBHUB_TEST_SLACK", f"{slack.url}/services/T000/B000/XXXXSECRET")  # type: ignore[attr-defined]
    root = tmp_path / "logs"
    root.mkdir()
    extra = notify_config(channels, tmp_path)
    with serve(tmp_path / "srv", {"lora": root}, extra_config=extra) as server:
        runs = [
            LiveRun(root, "ds/nan-run", [2.0, 1.5, 1.2, 1.1, 1.0, 0.9, float("nan"), float("nan")]),
            LiveRun(root, "ds/stall-run", [2.0, 1.8, 1.7, 1.6]),
            LiveRun(root, "ds/done-run", [1.0 / (s + 1) for s in range(41)], every=0.1),
        ]
        for run in runs:
            run.thread.start()
        statuses = {}

        def three_alerts() -> list[dict[str, object]] | None:
            alerts = server.get("/api/alerts").json()
            return alerts if {a["status"] for a in alerts} == {"diverged", "stalled", "finished"} else None

        alerts = wait_for(three_alerts, 60, "diverged, stalled and finished alerts")
        statuses = {a["run"]: a["status"] for a in alerts}
        assert statuses == {"nan-run": "diverged", "stall-run": "stalled", "done-run": "finished"}
        diverged = next(a for a in alerts if a["status"] == "diverged")
        assert diverged["details"]["tag"] == "train/loss" and diverged["details"]["step"] == 6
        finished = next(a for a in alerts if a["status"] == "finished")
        assert finished["details"]["last_step"] == 40
        assert finished["details"]["scalars"]["train/loss"]["best"] == pytest.approx(1 / 41)
        assert finished["url"].endswith("/tb/lora/#scalars&regexInput=%5Eds%2Fdone-run%28%2F%7C%24%29")

        # webhook: three alerts, after a 429 and a 500: five requests, three distinct keys, signed
        def webhook_done() -> bool:
            return len({r.headers.get("idempotency-key") for r in hook.requests if r.status == 200}) == 3  # type: ignore[attr-defined]

        wait_for(webhook_done, 60, "the webhook to recover and receive all three")
        ok = [r for r in hook.requests if r.status == 200]  # type: ignore[attr-defined]
        assert len(ok) == 3 and [r.status for r in hook.requests[:2]] == [429, 500]  # type: ignore[attr-defined]
        for request in ok:
            expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
            assert request.headers["x-tbhub-signature"] == f"sha256={expected}"
        assert sorted(r.json()["status"] for r in ok) == ["diverged", "finished", "stalled"]
        # Slack: diverged and finished only, Block Kit with a text fallback
        wait_for(lambda: len(slack.requests) >= 2, 30, "two Slack messages")  # type: ignore[attr-defined]
        slack_bodies = [r.json() for r in slack.requests]  # type: ignore[attr-defined]
        assert len(slack_bodies) == 2 and all("blocks" in b and b["text"] for b in slack_bodies)
        # email over STARTTLS + AUTH: the finished run only
        wait_for(lambda: len(smtp.messages) == 1, 30, "the finished email")  # type: ignore[attr-defined]
        mail = smtp.messages[0].message  # type: ignore[attr-defined]
        assert "done-run finished" in mail["Subject"] and mail["To"] == "ml-team@test"
        # the dead SMTP server times out, is retried, and never blocks the rest
        channels_state = {c["name"]: c for c in server.get("/api/channels").json()}
        assert channels_state["hook"]["disabled"] is False
        dead = [d for a in server.get("/api/alerts").json() for n, d in a["deliveries"].items() if n == "dead-mail"]
        assert dead and all(d["outcome"] == "retry" for d in dead)
        assert server.get("/healthz").status_code == 200
        page = server.get("/alerts").text
        assert "nan-run" in page and "diverged" in page
        runs_page = server.get("/endpoints/lora").text
        assert "badge status diverged" in runs_page
        secret_url = "XXXXSECRET"
        assert secret_url not in page and secret_url not in server.get("/api/alerts").text
        counts = (len(hook.requests), len(slack.requests), len(smtp.messages))  # type: ignore[attr-defined]
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(15)
        assert secret_url not in server.output() and SECRET not in server.output()

    # A restart with the same state database sends nothing again.
    with serve(tmp_path / "srv", {"lora": root}, extra_config=extra) as again:
        wait_for(lambda: again.get("/api/endpoints/lora").json()["last_scan"] is not None, 30, "a scan")
        time.sleep(4)  # several scan + evaluate + deliver cycles
        assert (len(hook.requests), len(slack.requests), len(smtp.messages)) == counts  # type: ignore[attr-defined]
        assert len(again.get("/api/alerts").json()) == 3


def finished_run(root: Path, relpath: str) -> None:
    """A run that reached ``max_steps`` (40) just now."""
    now = time.time()
    write_events(root / relpath / "events.out.tfevents.1800000000.host.1.0",
                 [file_version_event(now), *(scalar_event(s, 1.0 / (s + 1), "train/loss", wall_time=now)
                                             for s in range(41))])


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tbhub", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_hostile_run_names_are_delivered_and_never_disable_the_channel(tmp_path: Path) -> None:
    # Today's sample data has `ünïcode run ✓`: its Idempotency-Key could not be encoded, so the alert
    # stayed pending with a traceback every second; a name with CR/LF disabled the channel for good,
    # again after every `notify test`.
    root = tmp_path / "logs"
    names = ["ünïcode run ✓", "cr\r\nlf run"]
    for name in names:
        finished_run(root, f"ds/{name}")
    extra = ('[alerts]\nstalled_after = "1h"\nmax_steps = 40\n'
             '[[notify]]\ntype = "webhook"\nname = "hook"\nurl = "{url}/tbhub"\n')
    with http_receiver() as hook:
        with serve(tmp_path / "srv", {"lora": root}, extra_config=extra.format(url=hook.url)) as server:
            wait_for(lambda: len(hook.requests) >= 2, 45, "both alerts at the webhook")
            keys = [r.headers["idempotency-key"] for r in hook.requests]
            assert all(k.isascii() and k.isprintable() and " " not in k for k in keys) and len(set(keys)) == 2
            assert "ünïcode run ✓" in {r.json()["run"] for r in hook.requests}
            test = cli(server.config, "notify", "test", "hook")
            assert test.returncode == 0, test.stdout + test.stderr
            time.sleep(3)  # several delivery passes
            (channel,) = server.get("/api/channels").json()
            assert channel["disabled"] is False, channel
            deliveries = [a["deliveries"]["hook"]["outcome"] for a in server.get("/api/alerts").json()]
            assert deliveries == ["sent", "sent"]
            assert len(hook.requests) == 3  # the two alerts once each, and the test message
        assert "Traceback" not in server.output()


def test_smtp_password_echoed_by_the_server_never_shows(tmp_path: Path) -> None:
    # A server that quotes the failed AUTH argument sends back the password in base64; that reply
    # became the CLI's output, a line of the serve log and the channel's reason, which viewers read.
    cert = self_signed_cert(tmp_path)
    password = "hunter2-but-longer-and-wrong"
    (tmp_path / "smtp-password").write_text(password)
    root = tmp_path / "logs"
    finished_run(root, "ds/done-run")
    with smtp_server(security="starttls", cert=cert, echo_auth=True, exclude_auth=["LOGIN"]) as smtp:
        user = smtp.user
        extra = ('[alerts]\nstalled_after = "1h"\nmax_steps = 40\n'
                 f'[[notify]]\ntype = "email"\nname = "mail"\nhost = "{smtp.host}"\nport = {smtp.port}\n'
                 f'username = "{user}"\npassword_file = "{tmp_path / "smtp-password"}"\n'
                 f'sender = "tbhub@test"\nto = ["ml-team@test"]\nca_file = "{cert.cert}"\n')
        with serve(tmp_path / "srv", {"lora": root}, extra_config=extra) as server:
            channel = wait_for(lambda: server.get("/api/channels").json()[0]["disabled"] and
                               server.get("/api/channels").json()[0], 45, "the login to be refused")
            test = cli(server.config, "notify", "test", "mail")
            shown = {"reason": channel["reason"], "cli": test.stdout + test.stderr}
        shown["log"] = server.output()
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    assert "535" in shown["reason"] and "535" in shown["cli"] and test.returncode == 1
    for where, text in shown.items():
        for leaked in (password, plain, base64.b64encode(password.encode()).decode()):
            assert leaked not in text, f"{where}: {text}"
        assert plain[16:48] not in text, f"{where}: {text}"
