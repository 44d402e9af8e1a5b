"""Accounts, notes, tags and bookmarks in the state database, on SQLite and on a real PostgreSQL.

Every store test takes ``state``: a fresh SQLite file and a fresh PostgreSQL database (``tests/pg.py``;
the server starts once, only when a ``postgresql`` case runs), so each behaviour holds on both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import insert, select

from pg import fresh_postgres_url, postgres_server  # noqa: F401  (pytest fixtures)
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.alert_rules import AlertRuleStore
from tbhub.adapters.db.annotations import AnnotationStore
from tbhub.adapters.db.store import HEAD_REVISION, MIGRATIONS, StateStore, open_state
from tbhub.adapters.db.tables import api_tokens, notes, sessions, setup_tokens, users
from tbhub.core.accounts import Role, hash_password, token_digest, verify_password
from tbhub.core.bookmarks import Bookmark, tensorboard_url
from tbhub.errors import UsageError

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = str(request.getfixturevalue("fresh_postgres_url"))
    store = open_state(url)
    try:
        yield store
    finally:
        store.dispose()


def test_passwords_are_scrypt_hashes_checked_in_constant_time() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("Correct horse", stored)
    assert not verify_password("x", "not a hash")
    assert hash_password("correct horse") != stored  # salted


def test_users_roles_and_login(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    assert not accounts.has_admin()
    accounts.add_user("ada", Role.ADMIN, "s3cret-pass")
    accounts.add_user("bob", Role.VIEWER, "hunter22")
    assert accounts.has_admin()
    with pytest.raises(UsageError, match="exists already"):
        accounts.add_user("ada", Role.VIEWER, "x")
    assert [(u.name, u.role) for u in accounts.users()] == [("ada", Role.ADMIN), ("bob", Role.VIEWER)]
    assert accounts.authenticate("ada", "wrong") is None
    assert accounts.authenticate("nobody", "s3cret-pass") is None
    user = accounts.authenticate("ada", "s3cret-pass")
    assert user is not None and user.role is Role.ADMIN
    with state.engine.connect() as c:
        assert "s3cret-pass" not in str(c.execute(select(users.c.password_hash)).all())


def test_sessions_expire_and_are_hashed_at_rest(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    accounts.add_user("ada", Role.EDITOR, "pw")
    user = accounts.authenticate("ada", "pw")
    assert user is not None
    cookie, session = accounts.start_session(user, ttl_s=60)
    assert accounts.session(cookie) == session
    assert accounts.session(cookie, now=time.time() + 61) is None  # expired: refused and removed
    assert accounts.session(cookie) is None
    cookie, _ = accounts.start_session(user, ttl_s=60)
    with state.engine.connect() as c:
        stored = c.execute(select(sessions.c.token_hash)).scalars().all()
    assert stored == [token_digest(cookie)] and cookie not in stored
    accounts.set_password("ada", "new")
    assert accounts.session(cookie) is None  # a new password ends every session


def test_api_tokens_are_shown_once_and_stored_hashed(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    secret, token = accounts.create_token("ci", Role.EDITOR, "tester")
    assert secret.startswith("tbh_")
    with state.engine.connect() as c:
        rows = c.execute(select(api_tokens)).all()
    assert secret not in str(rows) and rows[0].token_hash == token_digest(secret)
    user = accounts.token_user(secret)
    assert user is not None and (user.name, user.role, user.via) == ("token:ci", Role.EDITOR, "token")
    assert accounts.revoke_token(token.id)
    assert not accounts.revoke_token(token.id)
    assert accounts.token_user(secret) is None


def test_setup_link_creates_one_admin_once(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    link = accounts.create_setup_token()
    with state.engine.connect() as c:
        assert c.execute(select(setup_tokens.c.token_hash)).scalar() == token_digest(link)
    assert accounts.setup_token_valid(link)
    accounts.use_setup_token(link, "root", "pw")
    assert accounts.has_admin() and not accounts.setup_token_valid(link)
    with pytest.raises(UsageError, match="used already"):
        accounts.use_setup_token(link, "mallory", "pw")


def test_notes_and_tags_are_kept_apart_from_the_index(state: StateStore) -> None:
    notes = AnnotationStore(state.engine)
    notes.add_note("lora", "alpaca/r16", "lr too **high**", "ada")
    notes.add_note("lora", "alpaca/r16", "second", "bob")
    assert notes.tag("lora", "alpaca/r16", "baseline", "ada")
    assert not notes.tag("lora", "alpaca/r16", "baseline", "ada")
    with pytest.raises(UsageError):
        notes.tag("lora", "alpaca/r16", "two words", "ada")
    state.forget_endpoint("lora")  # the index goes; notes and tags stay
    assert [(n.text, n.author) for n in notes.notes("lora", "alpaca/r16")] == [("lr too **high**", "ada"),
                                                                               ("second", "bob")]
    assert notes.tags("lora") == {"alpaca/r16": ["baseline"]}
    assert notes.untag("lora", "alpaca/r16", "baseline") and notes.tags("lora") == {}


def test_bookmarks_build_the_tensorboard_fragment(state: StateStore) -> None:
    store = AnnotationStore(state.engine)
    saved = store.add_bookmark(Bookmark("lr sweep", "ada", "the r16 runs", endpoint="lora", run_filter="alpaca/r16.*",
                                        tag_filter="loss|lr", smoothing=0.8))
    assert saved.url == "/tb/lora/#scalars&regexInput=alpaca%2Fr16.%2A&tagFilter=loss%7Clr&_smoothingWeight=0.8"
    store.add_bookmark(Bookmark("losses", "bob", page="/compare?tags=loss"))
    with pytest.raises(UsageError):
        store.add_bookmark(Bookmark("losses", "bob", page="/"))
    assert [b.name for b in store.bookmarks()] == ["losses", "lr sweep"]
    assert store.remove_bookmark("losses") and not store.remove_bookmark("losses")
    assert tensorboard_url("a", "timeseries") == "/tb/a/#timeseries"
    for bad in ({"page": "//evil.example"}, {"endpoint": "a", "run_filter": "("}, {"endpoint": "a", "smoothing": 1.5}):
        with pytest.raises(ValueError):
            Bookmark("x", "o", **bad)  # type: ignore[arg-type]


def test_a_refused_name_leaves_the_setup_link_usable(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    link = accounts.create_setup_token()
    with pytest.raises(UsageError, match="user name"):
        accounts.use_setup_token(link, "two words", "long-password")
    assert accounts.setup_token_valid(link) and not accounts.has_admin()
    accounts.add_user("taken", Role.VIEWER, "long-password")
    with pytest.raises(UsageError, match="exists already"):
        accounts.use_setup_token(link, "taken", "long-password")
    assert accounts.setup_token_valid(link)  # the failed insert rolled the link back too
    accounts.use_setup_token(link, "root", "long-password")
    assert accounts.has_admin() and not accounts.setup_token_valid(link)


def test_editing_a_note_keeps_its_author_and_records_the_editor(state: StateStore) -> None:
    store = AnnotationStore(state.engine)
    first = store.add_note("lora", "alpaca/r16", "lr too high", "ada")
    other = store.add_note("lora", "alpaca/r32", "fine", "ada")
    edited = store.edit_note(first.id, "  lr too **high**: halve it  ", "bob", endpoint="lora", relpath="alpaca/r16")
    assert (edited.id, edited.text) == (first.id, "lr too **high**: halve it")
    assert (edited.author, edited.at) == ("ada", first.at)
    assert edited.edited_by == "bob" and edited.edited_at is not None and edited.edited_at >= first.at
    assert store.notes("lora", "alpaca/r16") == [edited] and store.note(first.id) == edited
    assert store.note(other.id) == other and other.edited_by is None  # untouched
    with pytest.raises(UsageError, match="no note"):  # the id of another run's note
        store.edit_note(other.id, "hijack", "eve", endpoint="lora", relpath="alpaca/r16")
    with pytest.raises(UsageError, match="no note"):
        store.edit_note(9999, "x", "eve")
    with pytest.raises(UsageError, match="empty"):
        store.edit_note(first.id, "   ", "bob")
    assert store.note(other.id) == other and store.note(first.id) == edited


def test_alert_rule_overrides_one_per_scope(state: StateStore) -> None:
    rules = AlertRuleStore(state.engine)
    assert rules.overrides() == []
    first = rules.set("lora", "", {"stalled_after": "5m"}, "ada")
    rules.set("lora", "claims-*", {"watch": ["*loss*", "grad_norm"], "threshold": 4.5}, "bob")
    rules.set("router", "", {"max_steps": 1000}, "ada")
    again = rules.set("lora", "", {"factor": 3.0}, "bob")  # replaces the scope's keys, same row
    assert again.id == first.id
    got = [(o.endpoint, o.dataset, o.rule, o.updated_by) for o in rules.overrides()]
    assert got == [("lora", "", {"factor": 3.0}, "bob"),
                   ("lora", "claims-*", {"threshold": 4.5, "watch": ["*loss*", "grad_norm"]}, "bob"),
                   ("router", "", {"max_steps": 1000}, "ada")]
    assert [o.dataset for o in rules.overrides("lora")] == ["", "claims-*"]
    assert rules.remove("lora", "claims-*") and not rules.remove("lora", "claims-*")
    assert [(o.endpoint, o.dataset) for o in rules.overrides()] == [("lora", ""), ("router", "")]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def test_notes_from_before_0007_survive_the_upgrade_and_can_be_edited(url: str) -> None:
    old = open_state(url, migrate=False)
    try:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with old.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0006")
        with old.engine.begin() as connection:  # into 0006's notes table, which has no edit columns
            connection.execute(insert(notes).values(endpoint="lora", relpath="a/r", text="old note", author="ada",
                                                    at=1.0))
        assert old.current_revision() == "0006"
    finally:
        old.dispose()
    state = open_state(url)  # what a new version's first start does
    try:
        assert state.current_revision() == HEAD_REVISION
        store = AnnotationStore(state.engine)
        (note,) = store.notes("lora", "a/r")
        assert (note.text, note.author, note.at, note.edited_by, note.edited_at) == ("old note", "ada", 1.0, None, None)
        edited = store.edit_note(note.id, "new text", "bob")
        assert (edited.author, edited.edited_by) == ("ada", "bob")
        AlertRuleStore(state.engine).set("lora", "", {"max_steps": 5}, "bob")
        assert AlertRuleStore(state.engine).overrides()[0].rule == {"max_steps": 5}
    finally:
        state.dispose()


def test_roles_per_endpoint_only_raise_a_users_role(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    ada = accounts.add_user("ada", Role.VIEWER, "long-password")
    accounts.add_user("bob", Role.EDITOR, "long-password")
    accounts.grant("ada", "lora", Role.EDITOR, "root")
    accounts.grant("ada", "router", Role.EDITOR, "root")
    accounts.grant("ada", "router", Role.ADMIN, "root")  # replaces
    with pytest.raises(UsageError, match="editor everywhere already"):
        accounts.grant("bob", "lora", Role.VIEWER, "root")
    with pytest.raises(UsageError, match="no user"):
        accounts.grant("nobody", "lora", Role.ADMIN, "root")
    assert accounts.endpoint_roles(ada.id) == {"lora": Role.EDITOR, "router": Role.ADMIN}
    assert accounts.endpoint_role(ada.id, "lora") is Role.EDITOR and accounts.endpoint_role(ada.id, "x") is None
    assert [(g.user, g.endpoint, g.role) for g in accounts.grants()] == [("ada", "lora", Role.EDITOR),
                                                                         ("ada", "router", Role.ADMIN)]
    assert accounts.revoke_grant("ada", "lora") and not accounts.revoke_grant("ada", "lora")
    accounts.remove_user("ada")  # takes the grants along
    assert accounts.grants() == []
