"""Supervisor and admin pages: the audit log (``/audit``, supervisors), the edge boxes as they
last reported (``/sites``, supervisors) and the user list with its add-user form
(``/admin/users``, admins)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from etle.errors import StoreError
from etle.web import auth
from etle.web.deps import Actor, WebContext, check_csrf, get_ctx, need, page_actor

router = APIRouter()

#: a site that has not reported for longer than this is marked silent (its uplink, power or etle is down)
SILENT_AFTER_S = 600.0


def site_rows(statuses: list[Any], now: datetime | None = None) -> list[dict[str, Any]]:
    """The rows of ``/sites`` (and ``/api/v1/sites``): each report with its age, silence, the
    cameras down and the disk and clock in brief."""
    moment = now or datetime.now(timezone.utc)
    rows = []
    for st in statuses:
        age_s = max(0.0, (moment - st.reported_at).total_seconds())
        cams = st.data.get("cameras") or {}
        storage = st.data.get("storage") or {}
        rows.append({
            "site": st.site, "reported_at": st.reported_at, "age_s": round(age_s, 1), "age": _age(age_s),
            "silent": age_s > SILENT_AFTER_S, "data": st.data,
            "cameras_total": len(cams), "cameras_ok": sum(1 for c in cams.values() if c.get("ok")),
            "cameras_down": sorted(cid for cid, c in cams.items() if not c.get("ok")),
            "disk_free": storage.get("free_gb"), "disk_state": storage.get("state", "?"),
            "clock": (st.data.get("clock") or {}).get("synchronized"),
        })
    return rows


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit(request: Request, actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    need(actor, "supervisor")
    after = 0
    rows = ctx.store.actions_after(after, limit=500)
    return ctx.render(request, "audit.html", actor, rows=list(reversed(rows)))


@router.get("/sites", response_class=HTMLResponse, include_in_schema=False)
def sites(request: Request, actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    """The edge boxes as they last reported at a store-and-forward round (supervisors)."""
    need(actor, "supervisor")
    return ctx.render(request, "sites.html", actor, sites=site_rows(ctx.store.site_statuses()))


@router.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
def users_page(request: Request, actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    need(actor, "admin")
    store = ctx.store
    return ctx.render(request, "users.html", actor, users=store.users(), roles=auth.ROLES,
                      cameras=store.camera_ids(), msg=request.query_params.get("msg", ""))


@router.post("/admin/users", include_in_schema=False)
def users_add(username: str = Form(""), password: str = Form(""), role: str = Form("reviewer"),
              csrf: str = Form(""), actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> Response:
    check_csrf(actor, csrf)
    need(actor, "admin")
    if role not in auth.ROLES:
        raise HTTPException(400, "unknown role")
    try:
        ctx.store.add_user(username, role=role)
        auth.set_password(ctx.store.engine, username.strip(), password)
    except (StoreError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
    return RedirectResponse("/admin/users?msg=ok", status_code=303)
