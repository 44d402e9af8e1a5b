"""Notes and tags on runs, and shared bookmarks, in the state database.

Notes and tags are keyed by (endpoint, relpath) and have no link to the scan index: removing,
archiving or restoring a run leaves them alone, so a restored run finds its notes again. Pins stay
where they always were (``StateStore.pin``), because retention reads them there.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.tables import bookmarks, notes, run_tags
from tbhub.core.bookmarks import Bookmark
from tbhub.errors import UnknownEndpoint, UsageError

__all__ = ["NOTE_MAX", "TAG", "AnnotationStore", "Note"]

log = logging.getLogger(__name__)
TAG = re.compile(r"^[\w][\w.:/+-]{0,63}$")
NOTE_MAX = 20_000


@dataclass(frozen=True, slots=True)
class Note:
    """A note on a run; an edit keeps ``author`` and ``at`` and records ``edited_by`` and ``edited_at``."""

    id: int
    endpoint: str
    relpath: str
    text: str
    author: str
    at: float
    edited_by: str | None = None
    edited_at: float | None = None


def _note_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise UsageError("the note is empty")
    if len(text) > NOTE_MAX:
        raise UsageError(f"a note holds at most {NOTE_MAX:,} characters")
    return text


def _note(row: Row[Any]) -> Note:
    return Note(row.id, row.endpoint, row.relpath, row.text, row.author, row.at, row.edited_by, row.edited_at)


class AnnotationStore:
    """Notes, tags and bookmarks on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- notes ----------------------------------------------------------------------------------
    def add_note(self, endpoint: str, relpath: str, text: str, author: str) -> Note:
        text = _note_text(text)
        now = time.time()
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(notes).values(endpoint=endpoint, relpath=relpath, text=text, author=author, at=now)
            )
            note_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return Note(note_id, endpoint, relpath, text, author, now)

    def notes(self, endpoint: str, relpath: str | None = None) -> list[Note]:
        """Notes of one run (or of every run of the endpoint), oldest first."""
        query = select(notes).where(notes.c.endpoint == endpoint)
        if relpath is not None:
            query = query.where(notes.c.relpath == relpath)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(notes.c.at, notes.c.id))
            return [_note(r) for r in rows]

    def note(self, note_id: int) -> Note | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(notes).where(notes.c.id == note_id)).first()
        return None if row is None else _note(row)

    def edit_note(self, note_id: int, text: str, editor: str, *, endpoint: str | None = None,
                  relpath: str | None = None) -> Note:
        """Replace a note's text; the author and time stay, the editor and the edit's time are kept.

        ``endpoint`` and ``relpath``, when given, must be the note's: an edit never moves to another
        run's note by a wrong id. ``UnknownEndpoint`` (HTTP 404) when there is no such note.
        """
        text = _note_text(text)
        where = _note_where(note_id, endpoint, relpath)
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(notes).where(*where).values(text=text, edited_by=editor, edited_at=time.time())
            ).rowcount
            row = connection.execute(select(notes).where(notes.c.id == note_id)).first() if changed else None
        if row is None:
            on = f" on {endpoint}/{relpath}" if endpoint is not None and relpath is not None else ""
            raise UnknownEndpoint(f"no note {note_id}{on}")
        return _note(row)

    def remove_note(self, note_id: int, *, endpoint: str | None = None, relpath: str | None = None) -> bool:
        """Remove a note (only if it is on ``endpoint`` and ``relpath``, when given); ``False`` if none."""
        where = _note_where(note_id, endpoint, relpath)
        with self.engine.begin() as connection:
            return bool(connection.execute(delete(notes).where(*where)).rowcount)

    # -- tags -----------------------------------------------------------------------------------
    def tag(self, endpoint: str, relpath: str, tag: str, by: str) -> bool:
        """Tag a run; ``False`` when it had the tag already."""
        tag = tag.strip()
        if not TAG.match(tag):
            raise UsageError(f"tag {tag!r}: letters, digits and . : / + - _ (no spaces, up to 64)")
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(run_tags).values(endpoint=endpoint, relpath=relpath, tag=tag, added_by=by,
                                            added_at=time.time())
                )
        except IntegrityError:
            return False
        return True

    def untag(self, endpoint: str, relpath: str, tag: str) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(run_tags).where(run_tags.c.endpoint == endpoint, run_tags.c.relpath == relpath,
                                       run_tags.c.tag == tag.strip())
            )
            return bool(result.rowcount)

    def tags(self, endpoint: str) -> dict[str, list[str]]:
        """Tags per run (relpath) of one endpoint, sorted."""
        out: dict[str, list[str]] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(run_tags.c.relpath, run_tags.c.tag).where(run_tags.c.endpoint == endpoint)
                .order_by(run_tags.c.relpath, run_tags.c.tag)
            )
            for relpath, tag in rows:
                out.setdefault(relpath, []).append(tag)
        return out

    # -- bookmarks ------------------------------------------------------------------------------
    def add_bookmark(self, bookmark: Bookmark) -> Bookmark:
        """Save a bookmark; ``UsageError`` when the name is taken."""
        now = time.time()
        values = {
            "name": bookmark.name, "owner": bookmark.owner, "description": bookmark.description,
            "endpoint": bookmark.endpoint, "dashboard": bookmark.dashboard, "run_filter": bookmark.run_filter,
            "tag_filter": bookmark.tag_filter, "smoothing": bookmark.smoothing, "page": bookmark.page,
            "created_at": now,
        }
        try:
            with self.engine.begin() as connection:
                result = connection.execute(insert(bookmarks).values(**values))
                bookmark_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            raise UsageError(f"a bookmark named {bookmark.name!r} exists already") from None
        return Bookmark(**{**values, "id": bookmark_id})  # type: ignore[arg-type]

    def bookmarks(self) -> list[Bookmark]:
        """Every bookmark, by name. One saved before a rule tightened (a page that leaves the hub, say)
        is left out with a warning: it must neither be shown as a link nor break the list."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(bookmarks).order_by(bookmarks.c.name))
            out = []
            for row in rows:
                try:
                    out.append(Bookmark(**dict(row._mapping)))
                except ValueError as error:
                    log.warning("bookmark %s is not shown: %s", row.id, error)
            return out

    def remove_bookmark(self, key: str) -> bool:
        """Remove by name or by id."""
        with self.engine.begin() as connection:
            where = bookmarks.c.name == key
            if key.isdigit():
                where = where | (bookmarks.c.id == int(key))
            return bool(connection.execute(delete(bookmarks).where(where)).rowcount)


def _note_where(note_id: int, endpoint: str | None, relpath: str | None) -> list[ColumnElement[bool]]:
    """The note ``note_id``, and only if it is on ``endpoint`` and ``relpath`` (each when given)."""
    where = [notes.c.id == note_id]
    if endpoint is not None:
        where.append(notes.c.endpoint == endpoint)
    if relpath is not None:
        where.append(notes.c.relpath == relpath)
    return where
