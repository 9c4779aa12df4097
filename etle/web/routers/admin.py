"""Supervisor and admin pages: the audit log (``/audit``, supervisors) and the user list with its
add-user form (``/admin/users``, admins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from etle.errors import StoreError
from etle.web import auth
from etle.web.deps import Actor, WebContext, check_csrf, get_ctx, need, page_actor

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit(request: Request, actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    need(actor, "supervisor")
    after = 0
    rows = ctx.store.actions_after(after, limit=500)
    return ctx.render(request, "audit.html", actor, rows=list(reversed(rows)))


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
