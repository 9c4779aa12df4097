"""Login, logout and the language switch of the review app.

The login form's CSRF token is tied to a nonce cookie (there is no session yet); failed logins
are counted per client address and per user name (:class:`etle.web.auth.RateLimiter`).
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from etle.i18n import LANGS, translator
from etle.web import auth
from etle.web.deps import (
    LANG_COOKIE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    Actor,
    WebContext,
    check_csrf,
    get_ctx,
    lang_of,
    page_actor,
)

router = APIRouter()


def prelogin_token(ctx: WebContext, nonce: str) -> str:
    return hmac.new(ctx.config.secret, b"login:" + nonce.encode(), "sha256").hexdigest()


def login_page(ctx: WebContext, request: Request, error: str = "", status_code: int = 200,
               nxt: str | None = None) -> HTMLResponse:
    nonce = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(16)
    nxt = nxt or request.query_params.get("next", "/queue")
    resp = ctx.render(request, "login.html", None, status_code=status_code, csrf=prelogin_token(ctx, nonce),
                      error=error, next=nxt if nxt.startswith("/") and not nxt.startswith("//") else "/queue")
    ctx.set_cookie(resp, PRELOGIN_COOKIE, nonce, 3600)
    return resp


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    return login_page(ctx, request)


@router.post("/login", include_in_schema=False)
def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""),
          next: str = Form("/queue"), ctx: WebContext = Depends(get_ctx)) -> Response:
    store, limiter, signer = ctx.store, ctx.limiter, ctx.signer
    nonce = request.cookies.get(PRELOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(csrf, prelogin_token(ctx, nonce)):
        raise HTTPException(403, "CSRF token missing or invalid")
    tr = translator(lang_of(request))
    ip = request.client.host if request.client else "?"
    keys = (f"ip:{ip}", f"user:{username.lower()}")
    if limiter.blocked(*keys):
        return login_page(ctx, request, tr("rate_limited"), 429, next)
    if not username or not auth.check_password(store.engine, username, password) or ctx.role_of(username) is None:
        limiter.fail(*keys)
        return login_page(ctx, request, tr("login_failed"), 401, next)
    limiter.reset(f"user:{username.lower()}")
    cookie, _ = signer.dump(username, lang_of(request))
    target = next if next.startswith("/") and not next.startswith("//") else "/queue"
    resp = RedirectResponse(target, status_code=303)
    ctx.set_cookie(resp, SESSION_COOKIE, cookie, signer.max_age_s)
    resp.delete_cookie(PRELOGIN_COOKIE, path="/")
    return resp


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf: str = Form(""), actor: Actor = Depends(page_actor)) -> Response:
    check_csrf(actor, csrf)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/lang/{lang}", include_in_schema=False)
def set_lang(lang: str, request: Request, actor: Actor = Depends(page_actor),
             ctx: WebContext = Depends(get_ctx)) -> Response:
    back = request.headers.get("referer", "/queue")
    back_path = "/queue"
    if back:
        from urllib.parse import urlsplit
        parts = urlsplit(back)
        if parts.netloc in ("", request.url.netloc) and parts.path.startswith("/"):
            back_path = parts.path + (f"?{parts.query}" if parts.query else "")
    resp = RedirectResponse(back_path, status_code=303)
    ctx.set_cookie(resp, LANG_COOKIE, lang if lang in LANGS else "id", 365 * 86400)
    return resp
