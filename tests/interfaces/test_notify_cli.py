"""``tbhub notify test``: what it prints and what it leaves behind, against a real HTTP receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_cli

from receivers import Reply, http_receiver


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{tmp_path}"\n'
                    f'[[notify]]\ntype = "webhook"\nname = "hook"\nurl = "{url}/in"\n')
    return path


def test_a_failed_test_message_is_one_line_and_never_disables_the_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The receiver's answer is quoted in the message: as console markup, "[/]" crashed the command.
    with http_receiver([Reply(410, "gone [/] [bold]for good"), Reply(400, "invalid_payload")]) as hook:
        cfg = str(config(tmp_path, hook.url))
        for expected in ("HTTP 410 gone [/] [bold]for good", "HTTP 400 invalid_payload"):
            code, out, err = run_cli(capsys, "notify", "test", "hook", "--config", cfg)
            assert code == 1 and "Traceback" not in out + err
            assert "not delivered:" in out and expected in out
            code, out, _ = run_cli(capsys, "notify", "list", "--json", "--config", cfg)
            (channel,) = json.loads(out)
            assert channel["disabled"] is False
        code, out, _ = run_cli(capsys, "notify", "test", "hook", "--config", cfg)
        assert code == 0 and "delivered" in out
