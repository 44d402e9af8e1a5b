"""Notes, tags and pins on runs, and shared bookmarks: the run page's forms and the API.

Reading needs a viewer; every change needs an editor (the ``RoleTable`` entries below). Forms post
back and redirect (POST/redirect/GET); the API answers JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from tbhub.app.hub import Hub
from tbhub.app.services import Note
from tbhub.core.accounts import Role
from tbhub.core.bookmarks import DASHBOARDS, Bookmark
from tbhub.errors import UnknownEndpoint, UsageError
from tbhub.interfaces.web.auth import RoleTable, read_form
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context, who

__all__ = ["access", "router"]

router = APIRouter()
access = RoleTable()


def _note_json(note: Note) -> dict[str, Any]:
    return {"id": note.id, "run": note.relpath, "text": note.text, "author": note.author, "at": note.at,
            "edited_by": note.edited_by, "edited_at": note.edited_at}


def _bookmark_json(b: Bookmark) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "owner": b.owner, "description": b.description, "endpoint": b.endpoint,
            "dashboard": b.dashboard, "run_filter": b.run_filter, "tag_filter": b.tag_filter,
            "smoothing": b.smoothing, "page": b.page, "url": b.url, "created_at": b.created_at}


class NoteIn(BaseModel):
    run: str
    text: str


class NoteEdit(BaseModel):
    text: str


class TagIn(BaseModel):
    run: str
    tag: str
    remove: bool = False


class PinIn(BaseModel):
    run: str
    pinned: bool = True


class BookmarkIn(BaseModel):
    name: str
    description: str = ""
    endpoint: str | None = None
    dashboard: str = "scalars"
    run_filter: str = ""
    tag_filter: str = ""
    smoothing: float | None = None
    page: str | None = None


def _known_run(hub: Hub, endpoint: str, relpath: str) -> None:
    """The endpoint must exist; the run may be gone (archived runs keep their notes)."""
    hub.spec(endpoint)
    relpath = relpath.strip("/")
    if not relpath or ".." in relpath.split("/"):
        raise UsageError(f"no run {relpath!r}")


def _run_url(endpoint: str, relpath: str) -> str:
    return f"/runs/{quote(endpoint)}/{quote(relpath.strip('/'))}"


async def _run_form(request: Request, hub: Hub) -> tuple[dict[str, str], str, str]:
    """A run page's form: (its fields, the endpoint, the run's relpath), the run checked by ``_known_run``."""
    form = await read_form(request)
    endpoint, run = form.get("endpoint", ""), form.get("run", "")
    _known_run(hub, endpoint, run)
    return form, endpoint, run.strip("/")


def _back_to_run(endpoint: str, relpath: str, anchor: str = "") -> Response:
    return RedirectResponse(_run_url(endpoint, relpath) + anchor, status_code=303)


def _set_tag(hub: Hub, endpoint: str, relpath: str, tag: str, remove: bool, by: str) -> None:
    if remove:
        hub.services.annotations.untag(endpoint, relpath, tag)
    else:
        hub.services.annotations.tag(endpoint, relpath, tag, by)


def _set_pin(hub: Hub, endpoint: str, relpath: str, pinned: bool, by: str) -> None:
    if pinned:
        hub.state.pin(endpoint, relpath, by)
    else:
        hub.state.unpin(endpoint, relpath)


# -- the run page's forms (the page itself: routes/runs.py) ----------------------------------
@router.post("/notes", include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def note_submit(request: Request, hub: HubDep) -> Response:
    form, endpoint, run = await _run_form(request, hub)
    await asyncio.to_thread(hub.services.annotations.add_note, endpoint, run, form.get("text", ""), who(request))
    return _back_to_run(endpoint, run)


@router.post("/notes/{note_id}/edit", include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def note_edit(request: Request, note_id: int, hub: HubDep) -> Response:
    form, endpoint, run = await _run_form(request, hub)
    await asyncio.to_thread(hub.services.annotations.edit_note, note_id, form.get("text", ""), who(request),
                            endpoint=endpoint, relpath=run)
    return _back_to_run(endpoint, run, f"#note-{note_id}")


@router.post("/notes/{note_id}/delete", include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def note_delete(request: Request, note_id: int, hub: HubDep) -> Response:
    _, endpoint, run = await _run_form(request, hub)
    # The note must be this run's: the form's endpoint is what the role was checked on.
    await asyncio.to_thread(hub.services.annotations.remove_note, note_id, endpoint=endpoint, relpath=run)
    return _back_to_run(endpoint, run)


@router.post("/tags", include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def tag_submit(request: Request, hub: HubDep) -> Response:
    form, endpoint, run = await _run_form(request, hub)
    remove = form.get("remove", "") in ("true", "1", "on")
    await asyncio.to_thread(_set_tag, hub, endpoint, run, form.get("tag", ""), remove, who(request))
    return _back_to_run(endpoint, run)


@router.post("/pins", include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def pin_submit(request: Request, hub: HubDep) -> Response:
    form, endpoint, run = await _run_form(request, hub)
    pinned = form.get("pinned", "") in ("true", "1", "on")
    await asyncio.to_thread(_set_pin, hub, endpoint, run, pinned, who(request))
    return _back_to_run(endpoint, run)


# -- the API --------------------------------------------------------------------------------------
@router.get("/api/endpoints/{name}/notes", tags=["notes"])
@access(Role.VIEWER)
def api_notes(name: str, hub: HubDep, run: str | None = None) -> list[dict[str, Any]]:
    """Notes on the endpoint's runs (or on one ``run``), oldest first, with author and time."""
    hub.spec(name)
    return [_note_json(n) for n in hub.services.annotations.notes(name, run.strip("/") if run else None)]


@router.post("/api/endpoints/{name}/notes", tags=["notes"], status_code=201)
@access(Role.EDITOR, endpoint="path")
def api_add_note(request: Request, name: str, body: NoteIn, hub: HubDep) -> dict[str, Any]:
    """Add a note (markdown, shown sanitized) to a run. Editor."""
    _known_run(hub, name, body.run)
    return _note_json(hub.services.annotations.add_note(name, body.run.strip("/"), body.text, who(request)))


@router.patch("/api/endpoints/{name}/notes/{note_id}", tags=["notes"])
@access(Role.EDITOR, endpoint="path")
def api_edit_note(request: Request, name: str, note_id: int, body: NoteEdit, hub: HubDep) -> dict[str, Any]:
    """Replace a note's text. The author and time stay; ``edited_by`` and ``edited_at`` record the
    edit. 404 when the endpoint has no such note. Editor."""
    hub.spec(name)
    return _note_json(hub.services.annotations.edit_note(note_id, body.text, who(request), endpoint=name))


@router.post("/api/endpoints/{name}/tags", tags=["notes"])
@access(Role.EDITOR, endpoint="path")
def api_tag(request: Request, name: str, body: TagIn, hub: HubDep) -> dict[str, Any]:
    """Add (or with ``remove``, remove) a tag on a run. Editor."""
    _known_run(hub, name, body.run)
    _set_tag(hub, name, body.run.strip("/"), body.tag, body.remove, who(request))
    return {"run": body.run, "tags": hub.services.annotations.tags(name).get(body.run.strip("/"), [])}


@router.post("/api/endpoints/{name}/pins", tags=["notes"])
@access(Role.EDITOR, endpoint="path")
def api_pin(request: Request, name: str, body: PinIn, hub: HubDep) -> dict[str, Any]:
    """Pin (or unpin) a run: retention never removes a pinned run. Editor."""
    _known_run(hub, name, body.run)
    _set_pin(hub, name, body.run.strip("/"), body.pinned, who(request))
    return {"run": body.run, "pinned": body.pinned}


# -- bookmarks ------------------------------------------------------------------------------------
def _new_bookmark(hub: Hub, owner: str, data: BookmarkIn) -> Bookmark:
    if data.endpoint:
        hub.spec(data.endpoint)
    try:
        bookmark = Bookmark(
            data.name.strip(), owner, data.description.strip(), data.endpoint or None, data.dashboard,
            data.run_filter, data.tag_filter, data.smoothing, data.page or None,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    return hub.services.annotations.add_bookmark(bookmark)


@router.get("/bookmarks", response_class=HTMLResponse, include_in_schema=False)
@access(Role.VIEWER)
def bookmarks_page(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    return templates.TemplateResponse(
        request, "bookmarks.html",
        {**page_context(request), "bookmarks": hub.services.annotations.bookmarks(), "endpoints": list(hub.specs),
         "dashboards": DASHBOARDS},
    )


@router.post("/bookmarks", include_in_schema=False)
@access(Role.EDITOR)
async def bookmark_submit(request: Request, hub: HubDep) -> Response:
    form = await read_form(request)
    smoothing = form.get("smoothing", "").strip()
    try:
        weight = float(smoothing) if smoothing else None
    except ValueError:
        raise UsageError(f"smoothing {smoothing!r} is not a number") from None
    data = BookmarkIn(
        name=form.get("name", ""), description=form.get("description", ""),
        endpoint=form.get("endpoint") or None, dashboard=form.get("dashboard") or "scalars",
        run_filter=form.get("run_filter", ""), tag_filter=form.get("tag_filter", ""), smoothing=weight,
        page=form.get("page") or None,
    )
    await asyncio.to_thread(_new_bookmark, hub, who(request), data)
    return RedirectResponse("/bookmarks", status_code=303)


@router.post("/bookmarks/{key}/delete", include_in_schema=False)
@access(Role.EDITOR)
def bookmark_delete(key: str, hub: HubDep) -> Response:
    hub.services.annotations.remove_bookmark(key)
    return RedirectResponse("/bookmarks", status_code=303)


@router.get("/api/bookmarks", tags=["bookmarks"])
@access(Role.VIEWER)
def api_bookmarks(hub: HubDep) -> list[dict[str, Any]]:
    """Shared bookmarks with the URL each opens."""
    return [_bookmark_json(b) for b in hub.services.annotations.bookmarks()]


@router.post("/api/bookmarks", tags=["bookmarks"], status_code=201)
@access(Role.EDITOR)
def api_add_bookmark(request: Request, body: BookmarkIn, hub: HubDep) -> dict[str, Any]:
    """Save a bookmark: a TensorBoard view (``endpoint`` and filters) or a hub ``page``. Editor."""
    return _bookmark_json(_new_bookmark(hub, who(request), body))


@router.delete("/api/bookmarks/{key}", tags=["bookmarks"])
@access(Role.EDITOR)
def api_remove_bookmark(key: str, hub: HubDep) -> dict[str, Any]:
    """Remove a bookmark by id or name. Editor."""
    if not hub.services.annotations.remove_bookmark(key):
        raise UnknownEndpoint(f"no bookmark {key!r}")
    return {"removed": key}
