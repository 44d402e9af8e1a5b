"""Alert (status) rules on the hub: the config's rules and the overrides editors set, side by side.

An override belongs to an endpoint, or to one dataset glob of it, and sets some of the config's rule
keys (``stalled_after``, ``max_steps``, ``final_tags``, ``marker_files``, ``watch``, ``threshold``,
``factor``); validated by the config's own model, so a value the config file would refuse is refused
here with the same one-line message. The alert engine reads them on its next evaluation
(``tbhub.app.alerts.rules_config``). Viewers see the rules; editors set and remove overrides.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from tbhub.app.alerts import RULE_KEYS, alerts_with_overrides, check_rule
from tbhub.app.hub import Hub
from tbhub.app.services import RuleOverride
from tbhub.config import setting
from tbhub.core.accounts import Role
from tbhub.core.status import StatusRule
from tbhub.core.units import format_age
from tbhub.errors import UnknownEndpoint, UsageError
from tbhub.interfaces.web.auth import RoleTable, current_user, read_form
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context, who

__all__ = ["access", "router", "rule_scopes"]

#: What each key does, beside its field: the settings table's one-line help (the README's too).
RULE_HELP = {key: setting(f"alerts.{key}").help for key in RULE_KEYS}

router = APIRouter()
access = RoleTable()

LIST_KEYS = ("final_tags", "marker_files", "watch")
GLOB = re.compile(r"^[^/\x00-\x1f]{1,256}$")


def _check_glob(dataset: str) -> str:
    dataset = dataset.strip()
    if dataset and not GLOB.match(dataset):
        raise UsageError(f"dataset glob {dataset!r}: up to 256 characters, no '/'")
    return dataset


def _effective(rule: StatusRule) -> dict[str, Any]:
    """A rule as the config's keys (``stalled_after`` as a duration)."""
    return {
        "stalled_after": format_age(rule.stalled_after_s),
        "stalled_after_s": rule.stalled_after_s,
        "max_steps": rule.max_steps,
        "final_tags": list(rule.final_tags),
        "marker_files": list(rule.marker_files),
        "watch": list(rule.watch),
        "threshold": rule.threshold,
        "factor": rule.factor,
    }


def rule_scopes(hub: Hub, overrides: list[RuleOverride], endpoint: str) -> list[dict[str, Any]]:
    """Each scope of an endpoint that the config or the hub sets (the endpoint itself first): what the
    config sets there, the hub's override (with who and when), the effective rule and each key's source."""
    own = hub.config.alerts.endpoints.get(endpoint)
    configured: dict[str, dict[str, Any]] = {"": {}}
    if own is not None:
        configured[""] = {k: v for k, v in own.model_dump(exclude_unset=True).items() if k in RULE_KEYS}
        for glob, rule in own.datasets.items():
            configured[glob] = rule.model_dump(exclude_unset=True)
    from_hub = {o.dataset: o for o in overrides if o.endpoint == endpoint}
    merged = alerts_with_overrides(hub.config.alerts, overrides).rules_for(endpoint)
    effective = {"": merged.default, **dict(merged.datasets)}
    scopes = []
    for dataset in sorted(set(configured) | set(from_hub), key=lambda d: (d != "", d)):
        override = from_hub.get(dataset)
        config_keys = {k: v for k, v in configured.get(dataset, {}).items() if v is not None}
        hub_keys = override.rule if override else {}
        scopes.append({
            "endpoint": endpoint,
            "dataset": dataset,
            "config": config_keys,
            "override": None if override is None else {
                "rule": hub_keys, "updated_by": override.updated_by, "updated_at": override.updated_at,
            },
            "effective": _effective(effective[dataset]),
            "source": {k: "hub" if k in hub_keys else "config" if k in config_keys else "inherited"
                       for k in RULE_KEYS},
        })
    return scopes


def _form_rule(form: dict[str, str]) -> dict[str, Any]:
    """The keys a form sets, typed as the config's TOML would type them; blank fields are unset."""
    rule: dict[str, Any] = {}
    for key in RULE_KEYS:
        text = form.get(key, "").strip()
        if not text:
            continue
        if key in LIST_KEYS:
            rule[key] = [part.strip() for part in text.split(",") if part.strip()]
        elif key == "max_steps":
            try:
                rule[key] = int(text.replace(",", "").replace("_", ""))
            except ValueError:
                raise UsageError(f"alert rule: max_steps: {text!r} is not a whole number") from None
        elif key in ("threshold", "factor"):
            try:
                rule[key] = float(text)
            except ValueError:
                raise UsageError(f"alert rule: {key}: {text!r} is not a number") from None
        else:
            rule[key] = text
    return rule


class RuleIn(BaseModel):
    dataset: str = ""
    rule: dict[str, Any] = Field(default_factory=dict)


def _save(hub: Hub, endpoint: str, dataset: str, rule: dict[str, Any], by: str) -> RuleOverride:
    hub.spec(endpoint)
    return hub.services.alert_rules.set(endpoint, _check_glob(dataset), check_rule(rule), by)


def _all_scopes(hub: Hub) -> dict[str, list[dict[str, Any]]]:
    overrides = hub.services.alert_rules.overrides()
    return {name: rule_scopes(hub, overrides, name) for name in hub.specs}


def _editable(hub: Hub, request: Request) -> set[str]:
    """The endpoints whose rules this user may change: all for an editor, else those granted."""
    user = current_user(request)
    if user is None:
        return set()
    if user.role >= Role.EDITOR:
        return set(hub.specs)
    if user.id is None:
        return set()
    return {e for e, role in hub.services.accounts.endpoint_roles(user.id).items() if role >= Role.EDITOR}


def _page(hub: Hub, templates: Jinja2Templates, request: Request, error: str | None = None, status: int = 200,
          form: dict[str, str] | None = None) -> Response:
    return templates.TemplateResponse(
        request, "rules.html",
        {**page_context(request), "endpoints": _all_scopes(hub), "keys": RULE_KEYS, "list_keys": LIST_KEYS,
         "help": RULE_HELP, "error": error, "form": form or {}, "editable": _editable(hub, request)},
        status_code=status,
    )


@router.get("/alerts/rules", response_class=HTMLResponse, include_in_schema=False)
@access(Role.VIEWER)
def rules_page(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    return _page(hub, templates, request)


@router.post("/alerts/rules", response_class=HTMLResponse, include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def rule_submit(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    form = await read_form(request)
    try:
        await asyncio.to_thread(_save, hub, form.get("endpoint", ""), form.get("dataset", ""), _form_rule(form),
                                who(request))
    except UsageError as error:
        return await asyncio.to_thread(_page, hub, templates, request, error.message, error.http_status, form)
    return RedirectResponse("/alerts/rules", status_code=303)


@router.post("/alerts/rules/delete", include_in_schema=False)
@access(Role.EDITOR, endpoint="form")
async def rule_delete(request: Request, hub: HubDep) -> Response:
    form = await read_form(request)
    hub.spec(form.get("endpoint", ""))
    await asyncio.to_thread(hub.services.alert_rules.remove, form.get("endpoint", ""),
                            form.get("dataset", "").strip())
    return RedirectResponse("/alerts/rules", status_code=303)


@router.get("/api/alert-rules", tags=["alerts"])
@access(Role.VIEWER)
def api_alert_rules(hub: HubDep) -> dict[str, list[dict[str, Any]]]:
    """Per endpoint, each scope (the endpoint, ``dataset`` "", or a dataset glob) with what the config
    sets, the hub's override (who, when), the effective rule and where each key comes from."""
    return _all_scopes(hub)


@router.put("/api/endpoints/{name}/alert-rules", tags=["alerts"])
@access(Role.EDITOR, endpoint="path")
def api_set_alert_rule(request: Request, name: str, body: RuleIn, hub: HubDep) -> dict[str, Any]:
    """Set the override of the endpoint (``dataset`` "") or of a dataset glob: ``rule`` holds config
    keys (``{"stalled_after": "5m"}``), which win over the config's on the next evaluation; it
    replaces an earlier override of the same scope. Editor."""
    saved = _save(hub, name, body.dataset, body.rule, who(request))
    return {"endpoint": saved.endpoint, "dataset": saved.dataset, "rule": saved.rule,
            "updated_by": saved.updated_by, "updated_at": saved.updated_at}


@router.delete("/api/endpoints/{name}/alert-rules", tags=["alerts"])
@access(Role.EDITOR, endpoint="path")
def api_remove_alert_rule(name: str, hub: HubDep, dataset: str = "") -> dict[str, Any]:
    """Remove an override: the config's rule applies again. 404 when there is none. Editor."""
    hub.spec(name)
    if not hub.services.alert_rules.remove(name, dataset.strip()):
        raise UnknownEndpoint(f"no alert rule override for {name} {dataset!r}")
    return {"removed": {"endpoint": name, "dataset": dataset.strip()}}
