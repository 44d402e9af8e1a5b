"""What a route receives through FastAPI dependencies: the hub, the page templates and the common page context.

``create_app`` keeps the hub, its background and the templates in ``app.state``; routes never reach
them through closures or module globals, so one process can hold several apps (the tests do).
The dependencies are ``async``: they only read ``app.state``, which needs no worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from tbhub import __version__
from tbhub.app.background import Background
from tbhub.app.hub import Hub
from tbhub.core.accounts import Role
from tbhub.interfaces.web.auth import current_user

__all__ = [
    "BackgroundDep", "HubDep", "TemplatesDep", "get_background", "get_hub", "get_templates", "page_context", "who",
]


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def get_background(request: Request) -> Background:
    background: Background = request.app.state.background
    return background


async def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


HubDep = Annotated[Hub, Depends(get_hub)]
BackgroundDep = Annotated[Background, Depends(get_background)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


def who(request: Request) -> str:
    """The name a change is recorded under."""
    user = current_user(request)
    return user.name if user else "anonymous"


def page_context(request: Request) -> dict[str, Any]:
    """What every page's template reads: the version, display settings, who is signed in and may do what."""
    hub: Hub = request.app.state.hub
    user = current_user(request)
    return {
        "request": request,
        "version": __version__,
        "display": hub.config.display,
        "user": user,
        "csrf": request.state.csrf,
        "auth": hub.config.auth.enabled,
        "can_edit": user is not None and user.role >= Role.EDITOR,
        "is_admin": user is not None and user.role >= Role.ADMIN,
    }
