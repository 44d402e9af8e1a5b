"""Health checks, public: ``/healthz`` (the process answers) and ``/readyz`` (every TensorBoard does)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import BackgroundDep, HubDep

__all__ = ["access", "router"]

router = APIRouter(tags=["health"])
access = RoleTable()  # empty: both routes are in auth.PUBLIC


@router.get("/healthz")
def healthz(background: BackgroundDep) -> dict[str, Any]:
    """The hub process answers; ``leader`` says whether this replica runs the background jobs."""
    leadership = background.leadership
    return {"status": "ok", "replica": leadership.holder, "leader": leadership.is_leader}


@router.get("/readyz")
def readyz(hub: HubDep) -> Response:
    """200 when every endpoint's TensorBoard answers, else 503 with each state."""
    states = {}
    for name in hub.specs:
        child = hub.child(name)
        states[name] = str(child.state) if child is not None else "unsupervised"
    ready = all(s in ("up", "unsupervised") for s in states.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "endpoints": states},
        status_code=200 if ready else 503,
    )
