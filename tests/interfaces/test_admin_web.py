"""Note edits, admin clean and retention, and alert rule overrides on the real app, in process.

Real event files in a real log root, a real SQLite state database, the real alert engine; requests
with a session cookie and its CSRF token, or an API token, as a browser or a script sends them.
"""

from __future__ import annotations

import html
import os
import re
import time
import warnings
from pathlib import Path

import pytest
from fastapi import FastAPI

from eventfiles import scalar_event, write_events, write_scalar_file
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.annotations import AnnotationStore
from tbhub.adapters.db.store import StateStore
from tbhub.app.alerts import AlertEngine
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import (
    AlertsConfig,
    Config,
    EndpointAlertsConfig,
    EndpointConfig,
    EndpointRetentionConfig,
    RetentionConfig,
    StateConfig,
    setting,
)
from tbhub.core.accounts import Role
from tbhub.interfaces.web.app import create_app
from tbhub.interfaces.web.auth import SESSION_COOKIE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient asks for httpx2 once, at import
    from starlette.testclient import TestClient

HTML = {"accept": "text/html"}
EVENT_FILE = "events.out.tfevents.1700000000.host.1.0"


def age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """chat/old (40 days), chat/older (60), chat/pinned (50), chat/live (written now), claims/keep (90)."""
    root = tmp_path / "logs"
    for name, days in {"chat/old": 40, "chat/older": 60, "chat/pinned": 50, "chat/live": 0, "claims/keep": 90}.items():
        write_scalar_file(root / name, range(30))
        if days:
            age(root / name, days)
    return root


def make_app(tmp_path: Path, state: StateStore, root: Path, **config: object) -> FastAPI:
    cfg = Config(state=StateConfig(dir=tmp_path / "state"), endpoints={"lora": EndpointConfig(logdir=str(root))},
                 **config)  # type: ignore[arg-type]
    hub = Hub(Services(cfg, state=state), None)
    hub.refresh("lora")
    return create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)


def signed_in(app: FastAPI, state: StateStore, role: str) -> tuple[TestClient, str]:
    """A client with a session of a user named after ``role``, and the CSRF token of that session."""
    accounts = AccountStore(state.engine)
    if accounts.user(role) is None:
        accounts.add_user(role, Role.parse(role), "password-" + role)
    user = accounts.authenticate(role, "password-" + role)
    assert user is not None
    token, session = accounts.start_session(user, 3600)
    client = TestClient(app, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, token)
    return client, session.csrf


def fields(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """A form with repeated fields (checkboxes sharing a name), as httpx sends it."""
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name} in the page"
    return found.group(1)


# -- notes -------------------------------------------------------------------------------------------


def test_editors_edit_notes_on_the_run_page_and_the_api(tmp_path: Path, state: StateStore, root: Path) -> None:
    app = make_app(tmp_path, state, root)
    notes = AnnotationStore(state.engine)
    note = notes.add_note("lora", "chat/old", "lr too high", "ada")
    other = notes.add_note("lora", "chat/older", "keep", "ada")
    editor, csrf = signed_in(app, state, "editor")
    viewer, viewer_csrf = signed_in(app, state, "viewer")
    form = {"endpoint": "lora", "run": "chat/old", "text": "<script>alert(1)</script> lr **halved**"}
    with editor, viewer:
        page = editor.get("/runs/lora/chat/old", headers=HTML).text
        assert f'action="/notes/{note.id}/edit"' in page and ">lr too high</textarea>" in page
        assert editor.post(f"/notes/{note.id}/edit", data=form).status_code == 403  # no CSRF token
        assert viewer.post(f"/notes/{note.id}/edit", data={**form, "csrf": viewer_csrf}).status_code == 403
        # Another run's note cannot be edited through this run's form.
        assert editor.post(f"/notes/{other.id}/edit", data={**form, "csrf": csrf}).status_code == 404
        done = editor.post(f"/notes/{note.id}/edit", data={**form, "csrf": csrf})
        assert done.status_code == 303 and done.headers["location"] == f"/runs/lora/chat/old#note-{note.id}"
        page = editor.get("/runs/lora/chat/old", headers=HTML).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; lr <strong>halved</strong>" in page
        assert re.search(r"ada · <time datetime=\"[^\"]+\"[^>]*>[^<]* ago</time> "
                         r"<span class=\"dim note-edited\">· edited by editor <time ", page)
        assert 'action="/notes/' not in viewer.get("/runs/lora/chat/old", headers=HTML).text  # no forms for viewers

        secret, _ = AccountStore(state.engine).create_token("ci", Role.EDITOR, "test")
        bearer = {"authorization": f"Bearer {secret}"}
        edited = editor.patch(f"/api/endpoints/lora/notes/{note.id}", json={"text": "from CI"}, headers=bearer)
        assert edited.status_code == 200
        body = edited.json()
        assert (body["text"], body["author"], body["edited_by"], body["at"]) == ("from CI", "ada", "token:ci", note.at)
        empty = editor.patch(f"/api/endpoints/lora/notes/{note.id}", json={"text": "  "}, headers=bearer)
        assert empty.status_code == 400
        assert editor.patch("/api/endpoints/lora/notes/999", json={"text": "x"}, headers=bearer).status_code == 404
    assert [(n.text, n.author, n.edited_by) for n in notes.notes("lora")] == [("from CI", "ada", "token:ci"),
                                                                               ("keep", "ada", None)]


# -- clean ---------------------------------------------------------------------------------------------


def test_admin_clean_previews_then_deletes_only_after_confirmation(tmp_path: Path, state: StateStore,
                                                                    root: Path) -> None:
    app = make_app(tmp_path, state, root)
    state.pin("lora", "chat/pinned", "bob")
    admin, csrf = signed_in(app, state, "admin")
    picked = [("run", p) for p in ("chat/old", "chat/older", "chat/pinned", "chat/live")]
    with admin:
        page = admin.get("/endpoints/lora/clean?select=old", headers=HTML).text
        for relpath in ("chat/old", "chat/older", "chat/pinned", "claims/keep"):  # the CLI's "old" selection
            assert re.search(rf'value="{relpath}" id="pick-\d+" checked', page)
        assert not re.search(r'value="chat/live" id="pick-\d+" checked', page)
        assert admin.get("/endpoints/lora/clean?select=9-12", headers=HTML).status_code == 400

        choice = [*picked, ("mode", "delete"), ("csrf", csrf)]
        preview = admin.post("/endpoints/lora/clean/preview", data=fields(choice))
        assert preview.status_code == 200
        text = preview.text
        assert "<strong>2 runs," in text and "Nothing has been touched yet" in text
        skipped = text[text.index('id="preview-skipped"'):]
        assert "chat/pinned" in skipped and "pinned by bob" in skipped
        assert "chat/live" in skipped and "active: written to in the last 10 minutes" in skipped
        assert all((root / "chat" / r).is_dir() for r in ("old", "older", "pinned", "live"))

        digest = hidden(text, "plan")
        execute = [*picked, ("mode", "delete"), ("plan", digest), ("csrf", csrf)]
        # No confirmation, a forged digest, a GET: nothing is deleted.
        url = "/endpoints/lora/clean/execute"
        assert admin.post(url, data=fields(execute)).status_code == 400
        forged = [*execute[:-2], ("plan", "0" * 32), ("confirm", "yes"), ("csrf", csrf)]
        assert admin.post(url, data=fields(forged)).status_code == 409
        assert admin.get(url, headers=HTML).status_code == 405
        assert admin.post(url, data=fields([*execute[:-1], ("confirm", "yes")])).status_code == 403  # no CSRF
        assert (root / "chat" / "old").is_dir() and (root / "chat" / "older").is_dir()

        done = admin.post("/endpoints/lora/clean/execute", data=fields([*execute, ("confirm", "yes")]))
        assert done.status_code == 200 and "deleted 2, failed 0" in done.text
        # The index already lost them: the runs page no longer lists them.
        listed = {r["relpath"] for r in admin.get("/api/endpoints/lora/runs").json()}
        assert listed == {"chat/pinned", "chat/live", "claims/keep"}
    assert not (root / "chat" / "old").exists() and not (root / "chat" / "older").exists()
    assert all((root / p).is_dir() for p in ("chat/pinned", "chat/live", "claims/keep"))
    history = state.deletions()
    assert sorted((h.relpath, h.actor, h.command, h.outcome) for h in history) == [
        ("chat/old", "admin (hub)", "clean", "deleted"), ("chat/older", "admin (hub)", "clean", "deleted")]


def test_a_run_that_changed_since_the_preview_is_not_deleted(tmp_path: Path, state: StateStore, root: Path) -> None:
    app = make_app(tmp_path, state, root)
    admin, csrf = signed_in(app, state, "admin")
    with admin:
        form = [("run", "chat/old"), ("mode", "delete"), ("csrf", csrf)]
        digest = hidden(admin.post("/endpoints/lora/clean/preview", data=fields(form)).text, "plan")
        # The job resumes: new events land in the run after the admin looked at the preview.
        write_events(root / "chat" / "old" / EVENT_FILE, [scalar_event(31, 0.1)], append=True)
        again = admin.post("/endpoints/lora/clean/execute", data=fields([*form, ("plan", digest), ("confirm", "yes")]))
        assert again.status_code == 409 and "changed since the preview" in again.text
        assert "active: written to in the last 10 minutes" in again.text  # the new preview says why
    assert (root / "chat" / "old").is_dir() and state.deletions() == []


def test_admin_clean_archives_first_and_honours_limits(tmp_path: Path, state: StateStore, root: Path) -> None:
    cold = tmp_path / "cold"
    retention = RetentionConfig(policies={"lora": EndpointRetentionConfig(keep_days=3650, archive_to=str(cold),
                                                                          max_delete=1)})
    app = make_app(tmp_path, state, root, retention=retention)
    admin, csrf = signed_in(app, state, "admin")
    with admin:
        page = admin.get("/endpoints/lora/clean", headers=HTML).text
        assert f'<option value="{cold}">' in page  # the policy's archive folder is offered
        two = [("run", "chat/old"), ("run", "chat/older"), ("mode", "archive"), ("archive_to", str(cold)),
               ("csrf", csrf)]
        refused = admin.post("/endpoints/lora/clean/preview", data=fields(two))
        assert refused.status_code == 400 and "more than the limit of 1" in refused.text
        # The form may lower the configured limit, never raise it.
        raised = admin.post("/endpoints/lora/clean/preview", data=fields([*two, ("max_delete", "5")]))
        assert raised.status_code == 400 and "more than the limit of 1" in raised.text
        inside = admin.post("/endpoints/lora/clean/preview",
                            data=fields([("run", "chat/old"), ("mode", "archive"), ("archive_to", str(root / "chat")),
                                  ("csrf", csrf)]))
        assert inside.status_code == 400 and "overlaps the log root" in inside.text
        around = admin.post("/endpoints/lora/clean/preview",
                            data=fields([("run", "chat/old"), ("mode", "archive"), ("archive_to", str(tmp_path)),
                                         ("csrf", csrf)]))
        assert around.status_code == 400 and "overlaps the log root" in around.text  # it would hold the root
        remote = admin.post("/endpoints/lora/clean/preview",
                            data=fields([("run", "chat/old"), ("mode", "archive"), ("archive_to", "s3://cold/lora/"),
                                         ("csrf", csrf)]))
        assert remote.status_code == 200 and "archived to <code>s3://cold/lora</code>" in remote.text
        relative = admin.post("/endpoints/lora/clean/preview",
                              data=fields([("run", "chat/old"), ("mode", "archive"), ("archive_to", "cold"),
                                           ("csrf", csrf)]))
        assert relative.status_code == 400 and "give an absolute path" in relative.text
        escape = admin.post("/endpoints/lora/clean/preview", data=fields([("run", "../logs/chat/old"), ("csrf", csrf)]))
        assert escape.status_code == 400 and "no run" in escape.text

        one = [("run", "chat/old"), ("mode", "archive"), ("archive_to", str(cold)), ("csrf", csrf)]
        preview = admin.post("/endpoints/lora/clean/preview", data=fields(one))
        assert "archived to <code>" in preview.text
        done = admin.post("/endpoints/lora/clean/execute",
                          data=fields([*one, ("plan", hidden(preview.text, "plan")), ("confirm", "yes")]))
        assert done.status_code == 200 and "deleted 1, failed 0" in done.text
    archives = list(cold.rglob("*.tar.*"))
    assert len(archives) == 1 and "old--" in archives[0].name and not (root / "chat" / "old").exists()
    (record,) = state.deletions()
    assert record.archive == str(archives[0]) and record.actor == "admin (hub)"


def test_admin_clean_api_for_scripts(tmp_path: Path, state: StateStore, root: Path) -> None:
    app = make_app(tmp_path, state, root)
    secret, _ = AccountStore(state.engine).create_token("janitor", Role.ADMIN, "test")
    editor_secret, _ = AccountStore(state.engine).create_token("notes", Role.EDITOR, "test")
    with TestClient(app) as client:
        bearer = {"authorization": f"Bearer {secret}"}
        body = {"runs": ["chat/old", "chat/live"]}
        assert client.post("/api/endpoints/lora/clean", json=body,
                           headers={"authorization": f"Bearer {editor_secret}"}).status_code == 403
        plan = client.post("/api/endpoints/lora/clean", json=body, headers=bearer).json()
        assert plan["dry_run"] and [r["relpath"] for r in plan["runs"]] == ["chat/old"]
        assert plan["skipped"][0]["relpath"] == "chat/live" and (root / "chat" / "old").is_dir()
        stale = client.post("/api/endpoints/lora/clean", json={**body, "dry_run": False, "plan": "x"}, headers=bearer)
        assert stale.status_code == 409 and (root / "chat" / "old").is_dir()
        done = client.post("/api/endpoints/lora/clean", json={**body, "dry_run": False, "plan": plan["plan"]},
                           headers=bearer).json()
        assert (done["deleted"], done["failed"], done["runs"][0]["relpath"]) == (1, 0, "chat/old")
        history = client.get("/api/history", headers=bearer).json()
        assert [(h["relpath"], h["actor"]) for h in history] == [("chat/old", "token:janitor (hub)")]
    assert not (root / "chat" / "old").exists() and (root / "chat" / "live").is_dir()


# -- retention -------------------------------------------------------------------------------------------


def test_admin_applies_retention_from_the_hub(tmp_path: Path, state: StateStore, root: Path) -> None:
    cold = tmp_path / "cold"
    retention = RetentionConfig(policies={"lora": EndpointRetentionConfig(keep_days=45, archive_to=str(cold))})
    app = make_app(tmp_path, state, root, retention=retention)
    state.pin("lora", "chat/pinned", "bob")
    admin, csrf = signed_in(app, state, "admin")
    with admin:
        page = admin.get("/admin/retention", headers=HTML).text
        delete = page[page.index('id="retention-delete"'):page.index('id="retention-keep"')]
        assert 'data-run="lora/chat/older"' in delete and 'data-run="lora/claims/keep"' in delete
        assert "chat/pinned" not in delete and "chat/old<" not in delete and "Would be removed: 2 runs" in page
        digest = hidden(page, "plan")
        assert admin.post("/admin/retention/apply", data={"plan": digest, "csrf": csrf}).status_code == 400
        stale = {"plan": "0", "confirm": "yes", "csrf": csrf}
        assert admin.post("/admin/retention/apply", data=stale).status_code == 409
        assert (root / "chat" / "older").is_dir() and state.retention_history() == []
        applied = admin.post("/admin/retention/apply", data={"plan": digest, "confirm": "yes", "csrf": csrf})
        assert applied.status_code == 200 and "Applied: removed 2 runs" in applied.text
    assert not (root / "chat" / "older").exists() and not (root / "claims" / "keep").exists()
    assert (root / "chat" / "pinned").is_dir() and (root / "chat" / "old").is_dir()
    assert len(list(cold.rglob("*.tar.*"))) == 2
    (application,) = state.retention_history()
    assert (application.trigger, application.actor, application.deleted) == ("hub", "admin (hub)", 2)
    assert {(d.actor, d.command) for d in state.deletions()} == {("admin (hub)", "retention (hub)")}


def test_retention_apply_waits_for_the_lease(tmp_path: Path, state: StateStore, root: Path) -> None:
    retention = RetentionConfig(policies={"lora": EndpointRetentionConfig(keep_days=45)})
    app = make_app(tmp_path, state, root, retention=retention)
    secret, _ = AccountStore(state.engine).create_token("ops", Role.ADMIN, "test")
    bearer = {"authorization": f"Bearer {secret}"}
    with TestClient(app) as client:
        plan = client.get("/api/retention/plan", headers=bearer).json()
        assert {d["relpath"] for d in plan["delete"]} == {"chat/older", "chat/pinned", "claims/keep"}
        assert state.acquire_lease("retention", "another-server", 60)
        busy = client.post("/api/retention/apply", json={"plan": plan["plan"]}, headers=bearer)
        assert busy.status_code == 409 and "another process" in busy.json()["error"]
        assert (root / "chat" / "older").is_dir()
        # A clean from the hub waits for the same lease.
        held = client.post("/api/endpoints/lora/clean", json={"runs": ["chat/old"], "dry_run": False}, headers=bearer)
        assert held.status_code == 409 and (root / "chat" / "old").is_dir()
        state.release_lease("retention", "another-server")
        done = client.post("/api/retention/apply", json={"plan": plan["plan"]}, headers=bearer).json()
        assert done["applied"] and done["report"]["deleted"] == 3


# -- alert rules ----------------------------------------------------------------------------------------


def test_editor_overrides_change_the_engines_verdict(tmp_path: Path, state: StateStore, root: Path) -> None:
    live = root / "chat" / "live"
    t = time.time() - 10 * 60  # ten minutes without events: running under the default 15m
    for p in [*live.rglob("*"), live]:
        os.utime(p, (t, t))
    alerts = AlertsConfig(endpoints={"lora": EndpointAlertsConfig(max_steps=10_000)})
    app = make_app(tmp_path, state, root, alerts=alerts)
    hub: Hub = Hub(Services(Config(state=StateConfig(dir=tmp_path / "state"), alerts=alerts,
                                   endpoints={"lora": EndpointConfig(logdir=str(root))}), state=state), None)
    engine = AlertEngine(hub.services, channels=[])

    def status() -> str:
        engine.evaluate(hub.specs["lora"], hub.runs("lora"))
        return state.load_run_states("lora")["chat/live"][0]

    assert status() == "running"
    editor, csrf = signed_in(app, state, "editor")
    viewer, viewer_csrf = signed_in(app, state, "viewer")
    rule = {"endpoint": "lora", "dataset": "", "stalled_after": "5m"}
    with editor, viewer:
        assert viewer.post("/alerts/rules", data={**rule, "csrf": viewer_csrf}).status_code == 403
        assert editor.post("/alerts/rules", data=rule).status_code == 403  # no CSRF token
        for bad, message in (({"stalled_after": "soon"}, "alert rule: stalled_after: 'soon' is not a duration"),
                             ({"factor": "0.5"}, "alert rule: factor: Input should be greater than 1"),
                             ({"marker_files": "a/DONE"}, "marker file 'a/DONE' must be a plain file name"),
                             ({"stalled_after": ""}, "set at least one of")):
            refused = editor.post("/alerts/rules", data={**rule, **bad, "csrf": csrf})
            assert refused.status_code == 400 and message in html.unescape(refused.text)
        assert status() == "running"
        assert editor.post("/alerts/rules", data={**rule, "csrf": csrf}).status_code == 303
        assert status() == "stalled"  # the next evaluation uses the override

        page = viewer.get("/alerts/rules", headers=HTML).text
        scope = page[page.index('data-scope=""'):page.index("</tr>", page.index('data-scope=""'))]
        assert re.search(r'data-key="stalled_after">5m\s*<span class="dim">\(hub\)', scope)
        assert re.search(r'data-key="max_steps">10000\s*<span class="dim">\(config\)', scope)
        assert "hub: editor," in scope and 'action="/alerts/rules"' not in page  # viewers only read
        # An editor's form says what each key does (the settings table's help) and starts folded.
        page = editor.get("/alerts/rules", headers=HTML).text
        assert '<details class="filter-box rule-new-box"><summary>New override for lora' in page
        for key in ("stalled_after", "max_steps", "final_tags", "marker_files", "watch", "threshold", "factor"):
            help_text = re.search(rf'<small class="help" id="new-lora-{key}-help">([^<]*)</small>', page)
            assert help_text and help_text.group(1).startswith(setting(f"alerts.{key}").help), key
        # A blank field keeps the value the endpoint has now: each placeholder shows it.
        assert re.search(r'id="new-lora-stalled_after"[^>]*placeholder="5m"', page)
        assert re.search(r'id="new-lora-max_steps"[^>]*placeholder="10000"', page)
        assert re.search(r'id="new-lora-watch"[^>]*placeholder="\*loss\*"', page)
        rules = viewer.get("/api/alert-rules").json()["lora"][0]
        assert rules["override"]["rule"] == {"stalled_after": "5m"} and rules["override"]["updated_by"] == "editor"
        assert rules["source"]["stalled_after"] == "hub" and rules["source"]["max_steps"] == "config"
        assert rules["effective"]["stalled_after_s"] == 300 and rules["effective"]["max_steps"] == 10_000

        # A dataset glob's override: most specific wins; the API validates like the config.
        secret, _ = AccountStore(state.engine).create_token("bot", Role.EDITOR, "test")
        bearer = {"authorization": f"Bearer {secret}"}
        bad = editor.put("/api/endpoints/lora/alert-rules", json={"dataset": "ch*", "rule": {"max_step": 5}},
                         headers=bearer)
        assert bad.status_code == 400 and bad.json()["error"] == "alert rule: max_step: unknown key"
        ok = editor.put("/api/endpoints/lora/alert-rules", json={"dataset": "ch*", "rule": {"max_steps": 20}},
                        headers=bearer)
        assert ok.status_code == 200 and ok.json()["updated_by"] == "token:bot"
        assert status() == "finished"  # step 29 reaches the glob's max_steps 20
        assert editor.delete("/api/endpoints/lora/alert-rules?dataset=ch*", headers=bearer).status_code == 200
        assert status() == "stalled"
        removed = editor.post("/alerts/rules/delete", data={"endpoint": "lora", "dataset": "", "csrf": csrf})
        assert removed.status_code == 303
        assert status() == "running"  # back to the config's 15 minutes


# -- roles per endpoint -----------------------------------------------------------------------------------


def test_roles_per_endpoint(tmp_path: Path, state: StateStore, root: Path) -> None:
    router = tmp_path / "router-logs"
    write_scalar_file(router / "moe" / "r1", range(30))
    age(router / "moe" / "r1", 30)
    cfg = Config(state=StateConfig(dir=tmp_path / "state"),
                 endpoints={"lora": EndpointConfig(logdir=str(root)), "router": EndpointConfig(logdir=str(router))})
    hub = Hub(Services(cfg, state=state), None)
    hub.refresh("lora")
    hub.refresh("router")
    app = create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)
    accounts = AccountStore(state.engine)
    ada, ada_csrf = signed_in(app, state, "viewer")  # a viewer everywhere ...
    accounts.grant("viewer", "lora", Role.EDITOR, "root")  # ... and an editor of lora's runs
    bob, bob_csrf = signed_in(app, state, "editor")
    accounts.grant("editor", "router", Role.ADMIN, "root")  # an editor who cleans router's log root
    notes = AnnotationStore(state.engine)
    router_note = notes.add_note("router", "moe/r1", "router's", "carl")
    with ada, bob:
        note = {"run": "chat/old", "text": "ada's", "csrf": ada_csrf}
        assert ada.post("/notes", data={**note, "endpoint": "lora", "csrf": "forged"}).status_code == 403
        assert ada.post("/notes", data={**note, "endpoint": "lora"}).status_code == 303
        assert ada.post("/notes", data={**note, "endpoint": "router", "run": "moe/r1"}).status_code == 403
        api = {"x-csrf-token": ada_csrf}
        added = ada.post("/api/endpoints/lora/notes", json={"run": "chat/old", "text": "x"}, headers=api)
        assert added.status_code == 201
        assert ada.post("/api/endpoints/router/notes", json={"run": "moe/r1", "text": "x"},
                        headers=api).status_code == 403
        # The role was checked on the form's endpoint: a note of another endpoint stays.
        ada.post(f"/notes/{router_note.id}/delete", data={"endpoint": "lora", "run": "chat/old", "csrf": ada_csrf})
        ada.post(f"/notes/{router_note.id}/edit", data={"endpoint": "lora", "run": "chat/old", "text": "mine",
                                                        "csrf": ada_csrf})
        assert notes.note(router_note.id) == router_note
        assert 'id="note-form"' in ada.get("/runs/lora/chat/old", headers=HTML).text
        assert 'id="note-form"' not in ada.get("/runs/router/moe/r1", headers=HTML).text
        rule = {"dataset": "", "stalled_after": "5m", "csrf": ada_csrf}
        assert ada.post("/alerts/rules", data={**rule, "endpoint": "lora"}).status_code == 303
        assert ada.post("/alerts/rules", data={**rule, "endpoint": "router"}).status_code == 403
        rules = ada.get("/alerts/rules", headers=HTML).text
        assert 'data-new="lora"' in rules and 'data-new="router"' not in rules
        assert ada.post("/bookmarks", data={"name": "b", "page": "/", "csrf": ada_csrf}).status_code == 403  # shared
        assert ada.get("/endpoints/lora/clean", headers=HTML).status_code == 403

        assert bob.get("/endpoints/router/clean", headers=HTML).status_code == 200
        assert bob.get("/endpoints/lora/clean", headers=HTML).status_code == 403
        assert 'id="clean-link"' in bob.get("/endpoints/router", headers=HTML).text
        assert 'id="clean-link"' not in bob.get("/endpoints/lora", headers=HTML).text
        assert bob.get("/admin/retention", headers=HTML).status_code == 403  # every endpoint's: not granted
        preview = bob.post("/endpoints/router/clean/preview", data={"run": "moe/r1", "csrf": bob_csrf})
        done = bob.post("/endpoints/router/clean/execute",
                        data={"run": "moe/r1", "plan": hidden(preview.text, "plan"), "confirm": "yes",
                              "csrf": bob_csrf})
        assert done.status_code == 200 and not (router / "moe" / "r1").exists()

        accounts.revoke_grant("viewer", "lora")
        assert ada.post("/notes", data={**note, "endpoint": "lora"}).status_code == 403
    assert [n.text for n in notes.notes("lora")] == ["ada's", "x"]


def test_an_endpoint_admin_archives_only_into_the_configured_archive_folders(
    tmp_path: Path, state: StateStore, root: Path
) -> None:
    cold, elsewhere = tmp_path / "cold", tmp_path / "anywhere"
    retention = RetentionConfig(policies={"lora": EndpointRetentionConfig(keep_days=3650, archive_to=str(cold))})
    app = make_app(tmp_path, state, root, retention=retention)
    bob, bob_csrf = signed_in(app, state, "editor")
    AccountStore(state.engine).grant("editor", "lora", Role.ADMIN, "root")  # admin of lora only
    ada, ada_csrf = signed_in(app, state, "admin")  # admin of everything
    with bob, ada:
        def preview(client: TestClient, csrf: str, place: Path) -> tuple[int, str]:
            answer = client.post("/endpoints/lora/clean/preview", data=fields(
                [("run", "chat/old"), ("mode", "archive"), ("archive_to", str(place)), ("csrf", csrf)]))
            return answer.status_code, answer.text

        status, text = preview(bob, bob_csrf, elsewhere)
        assert status == 403 and "not one of the configured archive folders" in html.unescape(text)
        api = bob.post("/api/endpoints/lora/clean", json={"runs": ["chat/old"], "archive_to": str(elsewhere)},
                       headers={"x-csrf-token": bob_csrf})
        assert api.status_code == 403
        assert preview(bob, bob_csrf, cold)[0] == 200
        assert preview(bob, bob_csrf, cold / "lora")[0] == 200  # inside a configured folder
        assert preview(ada, ada_csrf, elsewhere)[0] == 200  # a full admin chooses freely
    accounts = AccountStore(state.engine)
    limited, _ = accounts.create_token("lora-ops", Role.ADMIN, "test", endpoints=["lora"])
    unlimited, _ = accounts.create_token("ops", Role.ADMIN, "test")
    with TestClient(app) as client:
        def api(secret: str) -> int:
            return client.post("/api/endpoints/lora/clean", json={"runs": ["chat/old"], "archive_to": str(elsewhere)},
                               headers={"authorization": f"Bearer {secret}"}).status_code
        assert api(limited) == 403  # an admin token of one endpoint is an endpoint admin
        assert api(unlimited) == 200  # a dry run by default
    assert (root / "chat" / "old").is_dir() and not elsewhere.exists()
