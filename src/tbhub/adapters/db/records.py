"""Records (frozen dataclasses) as table rows and back, for tables whose columns carry the fields' names.

``names`` lists the fields that hold names from the file system (relpaths, datasets, runs): they are
stored through ``names.to_db`` and read back through ``names.from_db``, so that every name survives
the database, undecodable bytes included. A row may have columns the record lacks (an ``id``); every
field of the record must be a column of the row.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row

from tbhub.adapters.db.names import from_db, to_db

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["from_row", "row_values"]

R = TypeVar("R", bound="DataclassInstance")


def row_values(record: DataclassInstance, *, names: Collection[str] = (), skip: Collection[str] = ()) -> dict[str, Any]:
    """The column values of ``record``: every field but ``skip``, ``names`` in their database form."""
    values = {f.name: getattr(record, f.name) for f in fields(record) if f.name not in skip}
    for name in names:
        values[name] = to_db(values[name])
    return values


def from_row(kind: type[R], row: Row[Any], *, names: Collection[str] = ()) -> R:
    """The ``kind`` record a row holds (the inverse of ``row_values``)."""
    columns = row._mapping
    return kind(**{f.name: from_db(columns[f.name]) if f.name in names else columns[f.name] for f in fields(kind)})
