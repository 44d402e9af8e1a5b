"""Run the CLI in process, as the interface tests do."""

from __future__ import annotations

import pytest

from tbhub.interfaces.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``tbhub ARGS`` in process: its exit code, stdout and stderr."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
