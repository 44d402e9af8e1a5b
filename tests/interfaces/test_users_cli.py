"""``tbhub users|tokens|note|tag|bookmarks``: the state database the hub reads, written from the shell."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import open_state
from tbhub.adapters.db.tables import api_tokens
from tbhub.core.accounts import token_digest
from tbhub.interfaces.cli.main import main


@pytest.fixture
def config(tmp_path: Path) -> str:
    (tmp_path / "logs" / "ds" / "r1").mkdir(parents=True)
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{tmp_path / "logs"}"\n')
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    try:
        main(list(args))
    except SystemExit as exit_:
        assert (exit_.code or 0) == code, capsys.readouterr()
    else:
        assert code == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_users_and_tokens(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("long-password\n"))
    run(capsys, "users", "add", "ada", "--role", "admin", "--password-stdin", "-c", config)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    _, err = run(capsys, "users", "add", "bob", "--password-stdin", "-c", config, code=2)
    assert "at least 8" in err
    out, _ = run(capsys, "users", "list", "--json", "-c", config)
    assert [(u["name"], u["role"]) for u in json.loads(out)] == [("ada", "admin")]
    secret, err = run(capsys, "tokens", "create", "ci", "--role", "editor", "-c", config)
    secret = secret.strip()
    assert secret.startswith("tbh_") and "not shown again" in err
    state = open_state(f"sqlite:///{tmp_path / 'state' / 'tbhub.db'}")
    try:
        with state.engine.connect() as c:
            assert c.execute(select(api_tokens.c.token_hash)).scalar() == token_digest(secret)
        assert AccountStore(state.engine).token_user(secret) is not None
        out, _ = run(capsys, "tokens", "list", "--json", "-c", config)
        assert secret not in out and json.loads(out)[0]["name"] == "ci"
        run(capsys, "tokens", "revoke", "1", "-c", config)
        assert AccountStore(state.engine).token_user(secret) is None
        run(capsys, "tokens", "revoke", "1", "-c", config, code=2)
    finally:
        state.dispose()


def test_listing_notes_and_tags_creates_no_state_database(config: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "note", "lora/ds/r1", "-c", config)
    assert "no notes on lora/ds/r1" in out
    out, _ = run(capsys, "tag", "lora/ds/r1", "-c", config)
    assert "no tags" in out
    assert not (tmp_path / "state" / "tbhub.db").exists()
    run(capsys, "tag", "lora/ds/r1", "baseline", "-c", config)  # writing does create it
    assert (tmp_path / "state" / "tbhub.db").is_file()


def test_notes_tags_and_bookmarks(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "note", "lora/ds/r1", "lr too *high*", "-c", config)
    out, _ = run(capsys, "note", "lora/ds/r1", "--json", "-c", config)
    assert json.loads(out)[0]["text"] == "lr too *high*"
    out, _ = run(capsys, "tag", "lora/ds/r1", "baseline", "sweep", "-c", config)
    assert "baseline sweep" in out
    out, _ = run(capsys, "tag", "lora/ds/r1", "sweep", "--remove", "-c", config)
    assert out.strip().endswith(": baseline")
    run(capsys, "note", "nope/ds/r1", "x", "-c", config, code=2)
    run(capsys, "bookmarks", "add", "sweep", "-e", "lora", "--runs", "ds/r.*", "--smoothing", "0.9", "-c", config)
    out, _ = run(capsys, "bookmarks", "list", "--json", "-c", config)
    assert json.loads(out)[0]["url"] == "/tb/lora/#scalars&regexInput=ds%2Fr.%2A&_smoothingWeight=0.9"
    run(capsys, "bookmarks", "rm", "sweep", "-c", config)
    run(capsys, "bookmarks", "rm", "sweep", "-c", config, code=2)


def test_note_edit_keeps_the_author(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "note", "lora/ds/r1", "first take", "--json", "-c", config)
    note = json.loads(out)
    run(capsys, "note", "lora/ds/r2", "another run's", "-c", config)
    out, _ = run(capsys, "note", "lora/ds/r1", "second take", "--edit", str(note["id"]), "-c", config)
    assert out.strip() == f"edited note {note['id']} on lora/ds/r1"
    out, _ = run(capsys, "note", "lora/ds/r1", "--json", "-c", config)
    (edited,) = json.loads(out)
    assert (edited["id"], edited["text"], edited["author"], edited["at"]) == (note["id"], "second take",
                                                                             note["author"], note["at"])
    assert edited["edited_by"] and edited["edited_at"] >= note["at"]
    _, err = run(capsys, "note", "lora/ds/r2", "hijack", "--edit", str(note["id"]), "-c", config, code=2)
    assert f"no note {note['id']} on lora/ds/r2" in err
    _, err = run(capsys, "note", "lora/ds/r1", "--edit", str(note["id"]), "-c", config, code=2)
    assert "needs the note's new text" in err
    out, _ = run(capsys, "note", "lora/ds/r1", "-c", config)
    assert "second take" in out and "edited by" in out


def test_roles_per_endpoint_from_the_shell(config: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("long-password\n"))
    run(capsys, "users", "add", "ada", "--password-stdin", "-c", config)
    out, _ = run(capsys, "users", "grant", "ada", "lora", "editor", "-c", config)
    assert out.strip() == "ada is editor on lora"
    _, err = run(capsys, "users", "grant", "ada", "nope", "editor", "-c", config, code=2)
    assert "nope" in err
    _, err = run(capsys, "users", "grant", "ada", "lora", "viewer", "-c", config, code=2)
    assert "viewer everywhere already" in err
    out, _ = run(capsys, "users", "list", "--json", "-c", config)
    assert json.loads(out)[0]["endpoints"] == {"lora": "editor"}
    run(capsys, "users", "ungrant", "ada", "lora", "-c", config)
    _, err = run(capsys, "users", "ungrant", "ada", "lora", "-c", config, code=2)
    assert "no role granted on lora" in err
    out, _ = run(capsys, "users", "list", "--json", "-c", config)
    assert json.loads(out)[0]["endpoints"] == {}


def test_tokens_limited_to_endpoints_and_to_their_creators_role(config: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("long-password\n"))
    run(capsys, "users", "add", "val", "--role", "editor", "--password-stdin", "-c", config)
    secret, err = run(capsys, "tokens", "create", "scraper", "-e", "lora", "--by", "val", "-c", config)
    assert "viewer on lora" in err
    _, err = run(capsys, "tokens", "create", "wide", "--role", "admin", "--by", "val", "-c", config, code=2)
    assert err.strip() == "error: val's role is editor: a token they create may be editor at most, not admin"
    _, err = run(capsys, "tokens", "create", "x", "-e", "nope", "-c", config, code=2)
    assert err.strip().count("\n") == 0 and "nope" in err
    _, err = run(capsys, "tokens", "create", "x", "--by", "ghost", "-c", config, code=2)
    assert err.strip().count("\n") == 0 and "ghost" in err
    run(capsys, "tokens", "create", "ops", "--role", "admin", "-c", config)  # the shell owns the database
    out, _ = run(capsys, "tokens", "list", "--json", "-c", config)
    assert [(t["name"], t["role"], t["endpoints"], t["created_by"]) for t in json.loads(out)] == [
        ("scraper", "viewer", ["lora"], "val"), ("ops", "admin", None, json.loads(out)[1]["created_by"])]
    out, _ = run(capsys, "tokens", "list", "-c", config)
    assert "endpoints" in out and "lora" in out and "all" in out
    state = open_state(f"sqlite:///{tmp_path / 'state' / 'tbhub.db'}")
    try:
        user = AccountStore(state.engine).token_user(secret.strip())
        assert user is not None and user.endpoints == frozenset({"lora"})
    finally:
        state.dispose()
