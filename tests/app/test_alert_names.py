"""The alert engine with a run folder name that is not UTF-8: alerted, stored and delivered escaped."""

from __future__ import annotations

import os
import time
from pathlib import Path

from eventfiles import file_version_event, scalar_event, write_events
from receivers import http_receiver
from tbhub.adapters.db.store import open_state
from tbhub.app.alerts import AlertEngine
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.config import load_config


def test_a_non_utf8_run_name_is_alerted_and_delivered_escaped(tmp_path: Path) -> None:
    run = os.path.join(os.fsencode(tmp_path / "logs" / "ds"), b"bad-\xff\xfe")
    path = Path(os.fsdecode(run)) / "events.out.tfevents.1"
    t = time.time()
    write_events(path, [file_version_event(t), *(scalar_event(s, 1.0, "loss", wall_time=t) for s in range(10))])
    with http_receiver() as hook:
        cfg_file = tmp_path / "tbhub.toml"
        cfg_file.write_text(
            f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{tmp_path / "logs"}"\n'
            f'[alerts]\nmax_steps = 9\nmax_age = "1h"\n'
            f'[[notify]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.url}"\n'
        )
        config = load_config(cfg_file)
        state = open_state(config.state.url)
        try:
            engine = AlertEngine(Services(config, state=state))
            (inv,) = scan_endpoints(Services(config, state=state))
            (alert,) = engine.evaluate(inv.endpoint, inv.runs)
            assert alert.status.value == "finished"
            assert engine.evaluate(inv.endpoint, inv.runs) == []  # the run's state was stored: once per change
            assert engine.deliver("hook") == 1
            (stored,) = state.alerts()
            # The link filters the escaped name as a regex (its backslashes escaped): ^ds/bad-\\xff\\xfe(/|$)
            assert stored.run == "bad-\\xff\\xfe" and "bad-%5C%5Cxff%5C%5Cxfe%28%2F%7C%24%29" in (stored.url or "")
            assert hook.requests[0].json()["run"] == "bad-\\xff\\xfe"
        finally:
            state.dispose()
