"""The TensorBoard of each endpoint behind the hub: ``/tb/NAME/...`` forwarded to its child process."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tbhub.core.accounts import Role
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import HubDep
from tbhub.interfaces.web.proxy import TensorBoardProxy

__all__ = ["access", "router"]

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]

router = APIRouter(include_in_schema=False)
access = RoleTable()


@router.get("/tb/{name}")
@access(Role.VIEWER)
def tensorboard_bare(name: str, hub: HubDep) -> Response:
    hub.spec(name)
    return RedirectResponse(f"/tb/{name}/", status_code=301)


access.grant("tensorboard_root", Role.VIEWER)


@router.api_route("/tb/{name}/{path:path}", methods=PROXY_METHODS, name="tensorboard_root")
async def tensorboard(request: Request, name: str, path: str, hub: HubDep) -> Response:
    spec = hub.spec(name)
    proxy: TensorBoardProxy = request.app.state.proxy
    return await proxy.forward(request, name, f"http://127.0.0.1:{spec.port}", f"/tb/{name}/{path}")
