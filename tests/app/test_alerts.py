"""The alert engine in-process, against a real HTTP receiver and real event files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from eventfiles import file_version_event, scalar_event, write_events
from receivers import Reply, http_receiver
from tbhub.adapters.db.store import open_state
from tbhub.app.alerts import AlertEngine, build_channels
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.errors import ConfigError


def write_run(root: Path, relpath: str, values: list[float], *, age_s: float = 0.0) -> None:
    path = root / relpath / "events.out.tfevents.1"
    t = time.time() - age_s
    write_events(
        path, [file_version_event(t), *(scalar_event(s, v, "loss", wall_time=t) for s, v in enumerate(values))]
    )
    os.utime(path, (t, t))


def setup(tmp_path: Path, url: str, extra: str = "") -> tuple[AlertEngine, object, object]:
    cfg_file = tmp_path / "tbhub.toml"
    cfg_file.write_text(
        f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{tmp_path / "logs"}"\n'
        f'[alerts]\nmax_steps = 9\nmax_age = "1h"\n{extra}'
        f'[[notify]]\ntype = "webhook"\nname = "hook"\nurl = "{url}"\n'
    )
    config = load_config(cfg_file)
    state = open_state(config.state.url)
    return AlertEngine(Services(config, state=state)), config, state


def evaluate(engine: AlertEngine, config: object, state: object) -> list[object]:
    (inv,) = scan_endpoints(Services(config, state=state))  # type: ignore[arg-type]
    return engine.evaluate(inv.endpoint, inv.runs)  # type: ignore[return-value]


def test_first_sight_history_is_not_news_and_404_disables(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_run(root, "ds/ancient", [1.0] * 10, age_s=30 * 86400)  # finished a month ago
    write_run(root, "ds/fresh", [1.0] * 10)  # finished just now
    with http_receiver([Reply(404, "no_service")]) as hook:
        engine, config, state = setup(tmp_path, hook.url)
        fired = evaluate(engine, config, state)
        assert [a.run for a in fired] == ["fresh"]  # type: ignore[attr-defined]
        assert evaluate(engine, config, state) == []  # once per change
        assert engine.deliver("hook") == 0
        assert state.channel_states()["hook"][0] is True  # type: ignore[attr-defined]
        assert "404" in (state.channel_states()["hook"][1] or "")  # type: ignore[attr-defined]
        assert engine.deliver("hook") == 0 and len(hook.requests) == 1  # disabled: nothing more is sent
        engine.send_test("hook")  # the receiver answers 200 again: the channel is enabled
        assert state.channel_states()["hook"][0] is False  # type: ignore[attr-defined]
        assert engine.deliver("hook") == 1
        assert [r.json()["run"] for r in hook.requests[2:]] == ["fresh"]
        import subprocess
        import sys

        listed = subprocess.run([sys.executable, "-m", "tbhub", "alerts", "--json", "--config",
                                 str(tmp_path / "tbhub.toml")], capture_output=True, text=True, timeout=60)
        (alert,) = json.loads(listed.stdout)
        assert alert["run"] == "fresh" and alert["status"] == "finished"
        assert alert["deliveries"]["hook"]["outcome"] == "sent" and alert["deliveries"]["hook"]["attempts"] == 2


def test_retry_after_is_honoured_and_old_alerts_expire(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_run(root, "ds/a", [1.0] * 10)
    now = [time.time()]
    with http_receiver([Reply(429, "slow", {"Retry-After": "30"})]) as hook:
        engine, config, state = setup(tmp_path, hook.url)
        engine.clock = lambda: now[0]
        evaluate(engine, config, state)
        assert engine.deliver("hook") == 0
        (pending,) = state.pending_deliveries("hook", ["finished"], 0.0)  # type: ignore[attr-defined]
        assert pending.attempts == 1 and pending.next_at == pytest.approx(now[0] + 30, abs=1)
        now[0] += 10
        assert engine.deliver("hook") == 0 and len(hook.requests) == 1  # still waiting
        now[0] += 25
        assert engine.deliver("hook") == 1 and len(hook.requests) == 2
        write_run(root, "ds/b", [1.0] * 10)
        evaluate(engine, config, state)
        now[0] += 2 * 3600  # the channel was down for longer than max_age
        assert engine.deliver("hook") == 0 and len(hook.requests) == 2
        outcomes = [d["outcome"] for d in state.deliveries()]  # type: ignore[attr-defined]
        assert outcomes == ["retry", "sent", "expired"]


def test_missing_secret_is_one_clear_line(tmp_path: Path) -> None:
    cfg_file = tmp_path / "tbhub.toml"
    cfg_file.write_text(f'[endpoints.a]\nlogdir = "{tmp_path}"\n[[notify]]\ntype = "slack"\nurl_env = "NOPE_UNSET"\n')
    with pytest.raises(ConfigError, match=r"environment variable NOPE_UNSET .* is not set"):
        build_channels(load_config(cfg_file))
    cfg_file.write_text(f'[endpoints.a]\nlogdir = "{tmp_path}"\n[[notify]]\ntype = "slack"\n')
    with pytest.raises(ConfigError, match="needs url, url_env or url_file"):
        load_config(cfg_file)


def test_alert_warmup_waits_for_every_tensorboard_to_be_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import dataclass

    from tbhub.app.background import Warmup
    from tbhub.app.hub import Hub

    @dataclass
    class Child:
        state: str

    class Children:  # what the warm-up reads of the supervisor: the children's states
        def __init__(self) -> None:
            self.states = ["starting", "up"]

        def status(self) -> list[Child]:
            return [Child(s) for s in self.states]

    cfg_file = tmp_path / "tbhub.toml"
    cfg_file.write_text(f'[state]\ndir = "{tmp_path / "st"}"\n[endpoints.a]\nlogdir = "{tmp_path}"\n')
    config = load_config(cfg_file)
    state = open_state(config.state.url)
    children = Children()
    hub = Hub(Services(config, state=state), children)  # type: ignore[arg-type]
    clock = [100.0]
    monkeypatch.setattr("tbhub.app.background.time.monotonic", lambda: clock[0])
    warmup = Warmup(hub, 30.0)
    assert not warmup.over()  # one TensorBoard is still starting
    children.states = ["up", "error"]  # a missing log root never comes up: it does not hold alerts back
    assert not warmup.over()
    clock[0] += 29
    assert not warmup.over()
    clock[0] += 2
    assert warmup.over() and warmup.over()
    assert Warmup(Hub(Services(config, state=state), None), 30.0).over()  # no supervisor: nothing to wait for
    state.dispose()


def test_hostile_run_names_are_delivered_and_never_disable_the_channel(tmp_path: Path) -> None:
    # A non-ASCII name made the Idempotency-Key unencodable (pending for ever, a traceback each pass);
    # CR/LF made it an illegal header, which disabled the channel, again after every `notify test`.
    root = tmp_path / "logs"
    names = ["ünïcode run ✓", "cr\r\nlf run"]
    for name in names:
        write_run(root, f"ds/{name}", [1.0] * 10)
    with http_receiver() as hook:
        engine, config, state = setup(tmp_path, hook.url)
        assert sorted(a.run for a in evaluate(engine, config, state)) == sorted(names)  # type: ignore[attr-defined]
        assert engine.deliver("hook") == 2
        runs = sorted(r.json()["run"] for r in hook.requests)
        # A control character may be stored escaped (as the tables show it); the name is kept whole.
        assert runs[1] == "ünïcode run ✓" and runs[0].startswith("cr") and runs[0].endswith("lf run")
        assert all(r.headers["idempotency-key"].isascii() for r in hook.requests)
        assert state.channel_states().get("hook", (False, None))[0] is False  # type: ignore[attr-defined]


def test_a_refused_alert_fails_alone_and_the_queue_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_run(root, "ds/a", [1.0] * 10)
    write_run(root, "ds/b", [1.0] * 10)
    with http_receiver([Reply(400, "invalid_payload")]) as hook:
        engine, config, state = setup(tmp_path, hook.url)
        evaluate(engine, config, state)
        assert engine.deliver("hook") == 1  # the first was refused, the second went out
        assert engine.deliver("hook") == 0 and len(hook.requests) == 2  # the refused one is not retried
        assert state.channel_states().get("hook", (False, None))[0] is False  # type: ignore[attr-defined]
        outcomes = [d["outcome"] for d in state.deliveries()]  # type: ignore[attr-defined]
        assert outcomes == ["undeliverable", "sent"]


def test_a_notifier_that_breaks_on_one_alert_fails_only_that_alert(tmp_path: Path) -> None:
    from dataclasses import replace

    from tbhub.core.models import Alert

    class Picky:
        """A channel with a bug that one run's name triggers (what the webhook's header encoding was)."""

        kind, name = "webhook", "hook"

        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, alert: Alert) -> None:
            if alert.run == "a":
                raise UnicodeEncodeError("ascii", alert.run, 0, 1, "ordinal not in range(128)")
            self.sent.append(alert.run)

    root = tmp_path / "logs"
    write_run(root, "ds/a", [1.0] * 10)
    write_run(root, "ds/b", [1.0] * 10)
    with http_receiver() as hook:
        engine, config, state = setup(tmp_path, hook.url)
    picky = Picky()
    engine.channels["hook"] = replace(engine.channels["hook"], notifier=picky)
    evaluate(engine, config, state)
    assert engine.deliver("hook") == 1 and picky.sent == ["b"]
    assert engine.deliver("hook") == 0
    assert [d["outcome"] for d in state.deliveries()] == ["undeliverable", "sent"]  # type: ignore[attr-defined]
    assert "UnicodeEncodeError" in (state.deliveries()[0]["error"] or "")  # type: ignore[attr-defined]
