"""The officer's desk: a FastAPI app over the ticket store and the evidence store.

Every route but ``/login`` needs a signed session cookie (pages) or a bearer API token (``/api``);
every POST form carries the session's CSRF token; roles rank reviewer < supervisor < admin.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from etle import articles
from etle.errors import StoreError
from etle.evidence.builder import verify_bundle
from etle.privacy import PrivacyError, public_image
from etle.store import lifecycle
from etle.store.models import PENDING_REVIEW
from etle.store.repository import TicketStore, TicketView
from etle.i18n import LANGS, catalogue, translator  # noqa: F401 - the app's translator
from etle.web import auth
from etle.letters.dates import CONFIRM_DAYS, notice_dates, ticket_zone
from etle.letters.pdf import render_letters

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "etle_session"
PRELOGIN_COOKIE = "etle_prelogin"
LANG_COOKIE = "etle_lang"
PAGE_SIZE = 25
REJECT_REASONS = ("wrong_plate", "occluded", "emergency", "not_violation", "duplicate", "other")
EVIDENCE_NAMES = {"overview.jpg", "original.png", "closeup.jpg", "plate.jpg", "clip.mp4", "manifest.json"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PLATE = re.compile(r"^[A-Z0-9]{1,12}$")


@dataclass
class WebConfig:
    db_url: str
    evidence_root: Path | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    secure_cookies: bool = True
    public_url: str = ""
    confirm_days: int = CONFIRM_DAYS
    login_limit: int = 5
    login_window_s: float = 300.0


class Forbidden(Exception):
    pass


class NeedLogin(Exception):
    pass


@dataclass
class Actor:
    username: str
    role: str
    csrf: str = ""
    via_token: bool = False


# -- API models ---------------------------------------------------------------------------------

class TicketOut(BaseModel):
    id: int
    reference: str
    status: str
    camera_id: str
    camera_name: str
    location: str
    rule: str
    article: str | None
    fine: int | None
    occurred_at: datetime
    local_time: str
    plate_text: str
    plate_confidence: float
    plate_candidates: list[dict[str, Any]]
    plate_colour: str = ""
    plate_category: str = ""
    verification: str | None = None


class TicketPage(BaseModel):
    total: int
    items: list[TicketOut]
    counts: dict[str, int]


class RejectIn(BaseModel):
    reason: str
    text: str = ""


class PlateIn(BaseModel):
    plate: str
    reason: str = ""


def _ticket_out(t: TicketView, verification: str | None = None) -> TicketOut:
    return TicketOut(
        id=t.id, reference=t.reference, status=t.status, camera_id=t.camera_id, camera_name=t.camera_name,
        location=t.location, rule=t.rule, article=t.article, fine=t.fine, occurred_at=t.occurred_at,
        local_time=t.local_time, plate_text=t.plate_text, plate_confidence=t.plate_confidence,
        plate_candidates=[c.as_dict() for c in t.plate_candidates], verification=verification,
        plate_colour=t.plate_colour, plate_category=t.plate_category,
    )


def create_app(config: WebConfig, store: TicketStore | None = None) -> FastAPI:
    store = store or TicketStore(config.db_url)
    auth.ensure_tables(store.engine)
    signer = auth.SessionSigner(config.secret)
    limiter = auth.RateLimiter(config.login_limit, config.login_window_s)
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(["html", "xml"], default=True))
    ev_root = config.evidence_root.resolve() if config.evidence_root else None

    app = FastAPI(title="etle review API", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.config = config
    app.state.limiter = limiter

    # -- helpers -------------------------------------------------------------------------------

    def lang_of(request: Request) -> str:
        lang = request.cookies.get(LANG_COOKIE, "id")
        return lang if lang in LANGS else "id"

    def role_of(username: str) -> str | None:
        for u in store.users():
            if u.username == username and u.active:
                return u.role
        return None

    def session_actor(request: Request) -> Actor | None:
        data = signer.load(request.cookies.get(SESSION_COOKIE))
        if data is None:
            return None
        role = role_of(data.username)
        return Actor(data.username, role, data.csrf) if role else None

    def page_actor(request: Request) -> Actor:
        actor = session_actor(request)
        if actor is None:
            raise NeedLogin()
        return actor

    def api_actor(request: Request) -> Actor:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            name = auth.token_user(store.engine, header[7:].strip())
            role = role_of(name) if name else None
            if role:
                return Actor(name, role, via_token=True)
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        actor = session_actor(request)
        if actor is None:
            raise HTTPException(401, "login or a bearer token required", headers={"WWW-Authenticate": "Bearer"})
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent, actor.csrf):
                raise HTTPException(403, "CSRF token missing or invalid")
        return actor

    def need(actor: Actor, role: str) -> None:
        if auth.RANK.get(actor.role, -1) < auth.RANK[role]:
            raise Forbidden()

    def check_csrf(actor: Actor, token: str) -> None:
        if not token or not hmac.compare_digest(token, actor.csrf):
            raise HTTPException(403, "CSRF token missing or invalid")

    def render(request: Request, name: str, actor: Actor | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        tr = translator(lang)
        html = env.get_template(name).render(
            t=tr, lang=lang, actor=actor, request=request, rule_title=lambda r: rule_title(r, lang),
            rupiah=lambda v: "-" if v is None else "Rp " + f"{v:,}".replace(",", "."), **ctx)
        resp = HTMLResponse(html, status_code=status_code)
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def rule_title(rule: str, lang: str) -> str:
        a = articles.article_for(rule)
        if a is None:
            return rule
        return (a.title_en if lang == "en" else a.title_id) or rule

    def ticket_or_404(ref: str) -> TicketView:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", ref):
            raise HTTPException(404, "no such ticket")
        t = store.get(ref)
        if t is None:
            raise HTTPException(404, "no such ticket")
        return t

    def bundle_dir(t: TicketView) -> Path | None:
        if not t.evidence_path:
            return None
        folder = Path(t.evidence_path)
        if ev_root is not None and not folder.is_absolute():
            folder = ev_root / folder
        folder = folder.resolve()
        if ev_root is not None and not folder.is_relative_to(ev_root):
            return None
        return folder

    def evidence_file(t: TicketView, name: str) -> Path:
        if not _SAFE_NAME.fullmatch(name) or ".." in name:
            raise HTTPException(404, "no such evidence file")
        listed = {f.name for f in t.evidence_files if f.pruned_at is None} or EVIDENCE_NAMES
        if name not in listed or name not in EVIDENCE_NAMES:
            raise HTTPException(404, "no such evidence file")
        folder = bundle_dir(t)
        if folder is None:
            raise HTTPException(404, "no such evidence file")
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or (ev_root is not None and not path.is_relative_to(ev_root)):
            raise HTTPException(404, "no such evidence file")
        if not path.is_file():
            raise HTTPException(404, "no such evidence file")
        return path

    def verification(t: TicketView) -> str:
        folder = bundle_dir(t)
        if folder is None or not folder.is_dir():
            return "missing"
        return "verified" if not verify_bundle(folder, manifest_sha256=t.manifest_sha256 or None) else "altered"

    def violation_details(t: TicketView) -> dict[str, Any]:
        """What the rule recorded about the violation (the evidence manifest's ``violation.details``:
        a measured speed, the reasons a plate was flagged, ``review_only``); empty when unreadable."""
        folder = bundle_dir(t)
        if folder is None:
            return {}
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        details = (manifest.get("violation") or {}).get("details") if isinstance(manifest, dict) else None
        return details if isinstance(details, dict) else {}

    def parse_filters(params: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        status = params.get("status", PENDING_REVIEW)
        if status and status != "all":
            if status not in lifecycle.STATUSES:
                raise HTTPException(400, "unknown status")
            out["status"] = status
        for key in ("camera", "rule", "plate"):
            value = (params.get(key) or "").strip()
            if value:
                out[key] = value[:64]
        for key, param, extra in (("since", "from", 0), ("until", "to", 1)):
            value = (params.get(param) or "").strip()
            if value:
                try:
                    day = date.fromisoformat(value)
                except ValueError:
                    raise HTTPException(400, f"{param}: not a date (YYYY-MM-DD)") from None
                out[key] = datetime.combine(day + timedelta(days=extra), time(), tzinfo=timezone.utc)
        return out

    def reviewer_of(t: TicketView) -> str:
        for a in reversed(store.actions(t.id)):
            if a.action == "approve":
                return a.actor
        return "-"

    def letter_items(tickets: list[TicketView], request: Request) -> list[dict[str, Any]]:
        lang = lang_of(request)
        base = (config.public_url or str(request.base_url)).rstrip("/")
        items = []
        for t in tickets:
            photo = None
            try:
                photo = evidence_file(t, "overview.jpg")
            except HTTPException:
                pass
            if photo is not None:  # a letter leaves the desk: only the blurred public copy
                try:
                    photo = public_image(photo.parent, "overview.jpg")
                except PrivacyError as exc:
                    raise HTTPException(503, f"letter refused: no blurred copy of the evidence photo ({exc})") from exc
            issued = t.status_changed_at or datetime.now(timezone.utc)
            sent = store.notices(ticket=t.id)
            if sent:  # the letter as registered for the post: its dates, not today's
                notice, deadline = sent[-1].notice_date, sent[-1].deadline
            else:
                zone = ticket_zone(store.camera_timezone(t.camera_id), t.local_time)
                notice, deadline = notice_dates(datetime.now(timezone.utc), zone, config.confirm_days)
            items.append({"ticket": t, "rule_title": rule_title(t.rule, lang), "photo": photo,
                          "confirm_url": f"{base}/konfirmasi/{t.reference}", "issued": issued,
                          "reviewer": reviewer_of(t), "notice_date": notice, "deadline": deadline})
        return items

    def pdf_response(data: bytes, filename: str) -> Response:
        return Response(data, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "Cache-Control": "no-store"})

    # -- error handling ------------------------------------------------------------------------

    @app.exception_handler(NeedLogin)
    async def _need_login(request: Request, exc: NeedLogin) -> Response:
        if request.method == "GET":
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
        return HTMLResponse("login required", status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "forbidden"}, status_code=403)
        return HTMLResponse(translator(lang_of(request))("forbidden"), status_code=403)

    # -- login / logout ------------------------------------------------------------------------

    def prelogin_token(nonce: str) -> str:
        return hmac.new(config.secret, b"login:" + nonce.encode(), "sha256").hexdigest()

    def set_cookie(resp: Response, name: str, value: str, max_age: int | None = None) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, secure=config.secure_cookies,
                        samesite="strict", path="/")

    def login_page(request: Request, error: str = "", status_code: int = 200, nxt: str | None = None) -> HTMLResponse:
        nonce = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(16)
        nxt = nxt or request.query_params.get("next", "/queue")
        resp = render(request, "login.html", None, status_code=status_code, csrf=prelogin_token(nonce),
                      error=error, next=nxt if nxt.startswith("/") and not nxt.startswith("//") else "/queue")
        set_cookie(resp, PRELOGIN_COOKIE, nonce, 3600)
        return resp

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        return login_page(request)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""),
              next: str = Form("/queue")) -> Response:
        nonce = request.cookies.get(PRELOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(csrf, prelogin_token(nonce)):
            raise HTTPException(403, "CSRF token missing or invalid")
        tr = translator(lang_of(request))
        ip = request.client.host if request.client else "?"
        keys = (f"ip:{ip}", f"user:{username.lower()}")
        if limiter.blocked(*keys):
            return login_page(request, tr("rate_limited"), 429, next)
        if not username or not auth.check_password(store.engine, username, password) or role_of(username) is None:
            limiter.fail(*keys)
            return login_page(request, tr("login_failed"), 401, next)
        limiter.reset(f"user:{username.lower()}")
        cookie, _ = signer.dump(username, lang_of(request))
        target = next if next.startswith("/") and not next.startswith("//") else "/queue"
        resp = RedirectResponse(target, status_code=303)
        set_cookie(resp, SESSION_COOKIE, cookie, signer.max_age_s)
        resp.delete_cookie(PRELOGIN_COOKIE, path="/")
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form(""), actor: Actor = Depends(page_actor)) -> Response:
        check_csrf(actor, csrf)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @app.get("/lang/{lang}", include_in_schema=False)
    def set_lang(lang: str, request: Request, actor: Actor = Depends(page_actor)) -> Response:
        back = request.headers.get("referer", "/queue")
        back_path = "/queue"
        if back:
            from urllib.parse import urlsplit
            parts = urlsplit(back)
            if parts.netloc in ("", request.url.netloc) and parts.path.startswith("/"):
                back_path = parts.path + (f"?{parts.query}" if parts.query else "")
        resp = RedirectResponse(back_path, status_code=303)
        set_cookie(resp, LANG_COOKIE, lang if lang in LANGS else "id", 365 * 86400)
        return resp

    # -- pages ---------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root(actor: Actor = Depends(page_actor)) -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse, include_in_schema=False)
    def queue(request: Request, actor: Actor = Depends(page_actor)) -> HTMLResponse:
        params = dict(request.query_params)
        filters = parse_filters(params)
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        total = store.count_matching(**filters)
        tickets = store.list(**filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        counts = store.count_by_status()
        keep = {k: v for k, v in params.items() if k != "page" and v}
        return render(request, "queue.html", actor, tickets=tickets, total=total, page=page,
                      pages=max(1, math.ceil(total / PAGE_SIZE)), counts=counts, statuses=lifecycle.STATUSES,
                      params=params, status=params.get("status", PENDING_REVIEW),
                      cameras=store.camera_ids(), rules=sorted(articles.table()),
                      qs=lambda **kw: urlencode({**keep, **{k: v for k, v in kw.items()}}),
                      today=datetime.now(timezone.utc).date().isoformat())

    @app.get("/tickets/{ref}", response_class=HTMLResponse, include_in_schema=False)
    def ticket_page(ref: str, request: Request, actor: Actor = Depends(page_actor)) -> HTMLResponse:
        t = ticket_or_404(ref)
        pending = [p for p in store.list(status=PENDING_REVIEW, limit=2) if p.id != t.id]
        files = {f.name for f in t.evidence_files if f.pruned_at is None}
        reads = store.plate_reads(t.id)
        original = next((r.text for r in reads if r.source != "reviewer" and r.chosen), None)
        return render(request, "ticket.html", actor, tk=t, state=verification(t), files=files,
                      reads=reads, original=original, details=violation_details(t),
                      actions=store.actions(t.id) if auth.RANK[actor.role] >= auth.RANK["supervisor"] else None,
                      next_ticket=pending[0] if pending else None, reasons=REJECT_REASONS,
                      msg=request.query_params.get("msg", ""))

    @app.get("/tickets/{ref}/files/{name}", include_in_schema=False)
    def ticket_file(ref: str, name: str, actor: Actor = Depends(page_actor)) -> Response:
        t = ticket_or_404(ref)
        path = evidence_file(t, name)
        media = {".jpg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4", ".json": "application/json"}
        return FileResponse(path, media_type=media.get(path.suffix, "application/octet-stream"),
                            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})

    def do_action(t: TicketView, actor: Actor, action: str, reason: str = "", plate: str = "") -> TicketView:
        need(actor, "reviewer")
        try:
            if action == "approve":
                return store.transition(t.id, "approve", actor=actor.username)
            if action == "reject":
                if reason not in REJECT_REASONS:
                    raise HTTPException(400, "unknown reject reason")
                return store.transition(t.id, "reject", actor=actor.username, reason=reason,
                                        data={"reason_code": reason})
            if action == "plate":
                norm = "".join(plate.split()).replace("-", "").upper()
                if not _PLATE.fullmatch(norm):
                    raise HTTPException(400, "a plate is 1-12 letters and digits")
                return store.correct_plate(t.id, norm, actor=actor.username, reason=reason)
        except lifecycle.TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(400, str(exc)) from exc
        raise HTTPException(404, "unknown action")

    def reject_reason(code: str, text: str) -> str:
        text = " ".join(text.split())[:500]
        if code == "other":
            return f"other: {text}" if text else "other"
        return code

    @app.post("/tickets/{ref}/approve", include_in_schema=False)
    def approve_form(ref: str, csrf: str = Form(""), next: str = Form(""), actor: Actor = Depends(page_actor)) -> Response:
        check_csrf(actor, csrf)
        t = do_action(ticket_or_404(ref), actor, "approve")
        return RedirectResponse(f"/tickets/{t.reference}?msg=approved", status_code=303)

    def reopen(t: TicketView, actor: Actor, reason: str) -> TicketView:
        need(actor, "supervisor")
        try:
            return store.transition(t.id, "reopen", actor=actor.username, reason=" ".join(reason.split())[:500])
        except lifecycle.TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.post("/tickets/{ref}/reopen", include_in_schema=False)
    def reopen_form(ref: str, reason: str = Form(""), csrf: str = Form(""), actor: Actor = Depends(page_actor)) -> Response:
        check_csrf(actor, csrf)
        t = reopen(ticket_or_404(ref), actor, reason)
        return RedirectResponse(f"/tickets/{t.reference}?msg=reopened", status_code=303)

    @app.post("/tickets/{ref}/reject", include_in_schema=False)
    def reject_form(ref: str, reason: str = Form(""), other: str = Form(""), csrf: str = Form(""),
                    actor: Actor = Depends(page_actor)) -> Response:
        check_csrf(actor, csrf)
        t = ticket_or_404(ref)
        if reason not in REJECT_REASONS:
            raise HTTPException(400, "unknown reject reason")
        need(actor, "reviewer")
        try:
            t = store.transition(t.id, "reject", actor=actor.username, reason=reject_reason(reason, other),
                                 data={"reason_code": reason})
        except lifecycle.TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        return RedirectResponse(f"/tickets/{t.reference}?msg=rejected", status_code=303)

    @app.post("/tickets/{ref}/plate", include_in_schema=False)
    def plate_form(ref: str, plate: str = Form(""), csrf: str = Form(""), actor: Actor = Depends(page_actor)) -> Response:
        check_csrf(actor, csrf)
        t = do_action(ticket_or_404(ref), actor, "plate", plate=plate)
        return RedirectResponse(f"/tickets/{t.reference}?msg=plate", status_code=303)

    @app.get("/tickets/{ref}/letter.pdf", include_in_schema=False)
    def letter(ref: str, request: Request, actor: Actor = Depends(page_actor)) -> Response:
        t = ticket_or_404(ref)
        if t.status in (PENDING_REVIEW, lifecycle.REJECTED):
            raise HTTPException(409, "letters are made for approved tickets only")
        data = render_letters(letter_items([t], request), tr=translator(lang_of(request)), lang=lang_of(request))
        return pdf_response(data, f"{t.reference}.pdf")

    @app.get("/letters/{day}.pdf", include_in_schema=False)
    def day_letters(day: str, request: Request, actor: Actor = Depends(page_actor)) -> Response:
        try:
            d = date.fromisoformat(day)
        except ValueError:
            raise HTTPException(400, "not a date") from None
        start = datetime.combine(d, time(), tzinfo=timezone.utc)
        approved = [t for t in store.list(status=lifecycle.APPROVED, limit=10000)
                    if t.status_changed_at and start <= t.status_changed_at.replace(
                        tzinfo=t.status_changed_at.tzinfo or timezone.utc) < start + timedelta(days=1)]
        approved.sort(key=lambda t: t.reference)
        data = render_letters(letter_items(approved, request), tr=translator(lang_of(request)), lang=lang_of(request))
        return pdf_response(data, f"etle-letters-{d.isoformat()}.pdf")

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit(request: Request, actor: Actor = Depends(page_actor)) -> HTMLResponse:
        need(actor, "supervisor")
        after = 0
        rows = store.actions_after(after, limit=500)
        return render(request, "audit.html", actor, rows=list(reversed(rows)))

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request, actor: Actor = Depends(page_actor)) -> HTMLResponse:
        need(actor, "admin")
        return render(request, "users.html", actor, users=store.users(), roles=auth.ROLES,
                      cameras=store.camera_ids(), msg=request.query_params.get("msg", ""))

    @app.post("/admin/users", include_in_schema=False)
    def users_add(username: str = Form(""), password: str = Form(""), role: str = Form("reviewer"),
                  csrf: str = Form(""), actor: Actor = Depends(page_actor)) -> Response:
        check_csrf(actor, csrf)
        need(actor, "admin")
        if role not in auth.ROLES:
            raise HTTPException(400, "unknown role")
        try:
            store.add_user(username, role=role)
            auth.set_password(store.engine, username.strip(), password)
        except (StoreError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return RedirectResponse("/admin/users?msg=ok", status_code=303)

    # -- JSON API ------------------------------------------------------------------------------

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_json(actor: Actor = Depends(api_actor)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(actor: Actor = Depends(api_actor)) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="etle API")

    @app.get("/api/v1/tickets", response_model=TicketPage, tags=["tickets"])
    def api_tickets(request: Request, limit: int = 50, offset: int = 0,
                    actor: Actor = Depends(api_actor)) -> TicketPage:
        """Tickets matching ``status`` (default pending_review; ``all``), ``camera``, ``rule``, ``plate``,
        ``from`` and ``to`` (YYYY-MM-DD, UTC), newest first."""
        filters = parse_filters(dict(request.query_params))
        limit = max(0, min(limit, 500))
        items = store.list(**filters, limit=limit, offset=max(0, offset))
        return TicketPage(total=store.count_matching(**filters), items=[_ticket_out(t) for t in items],
                          counts=store.count_by_status())

    @app.get("/api/v1/tickets/{ref}", response_model=TicketOut, tags=["tickets"])
    def api_ticket(ref: str, actor: Actor = Depends(api_actor)) -> TicketOut:
        t = ticket_or_404(ref)
        return _ticket_out(t, verification(t))

    @app.get("/api/v1/tickets/{ref}/actions", tags=["tickets"])
    def api_actions(ref: str, actor: Actor = Depends(api_actor)) -> list[dict[str, Any]]:
        need(actor, "supervisor")
        t = ticket_or_404(ref)
        return [{"action": a.action, "from": a.from_status, "to": a.to_status, "actor": a.actor,
                 "at": a.at.isoformat(), "reason": a.reason, "data": dict(a.data)} for a in store.actions(t.id)]

    @app.post("/api/v1/tickets/{ref}/reopen", response_model=TicketOut, tags=["review"])
    def api_reopen(ref: str, reason: str = "", actor: Actor = Depends(api_actor)) -> TicketOut:
        """Send an approved or rejected ticket back to review (supervisors)."""
        return _ticket_out(reopen(ticket_or_404(ref), actor, reason))

    @app.post("/api/v1/tickets/{ref}/approve", response_model=TicketOut, tags=["review"])
    def api_approve(ref: str, actor: Actor = Depends(api_actor)) -> TicketOut:
        return _ticket_out(do_action(ticket_or_404(ref), actor, "approve"))

    @app.post("/api/v1/tickets/{ref}/reject", response_model=TicketOut, tags=["review"])
    def api_reject(ref: str, body: RejectIn, actor: Actor = Depends(api_actor)) -> TicketOut:
        t = ticket_or_404(ref)
        if body.reason not in REJECT_REASONS:
            raise HTTPException(400, "unknown reject reason")
        need(actor, "reviewer")
        try:
            t = store.transition(t.id, "reject", actor=actor.username, reason=reject_reason(body.reason, body.text),
                                 data={"reason_code": body.reason})
        except lifecycle.TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        return _ticket_out(t)

    @app.post("/api/v1/tickets/{ref}/plate", response_model=TicketOut, tags=["review"])
    def api_plate(ref: str, body: PlateIn, actor: Actor = Depends(api_actor)) -> TicketOut:
        return _ticket_out(do_action(ticket_or_404(ref), actor, "plate", plate=body.plate))

    @app.get("/api/v1/counts", tags=["tickets"])
    def api_counts(actor: Actor = Depends(api_actor)) -> dict[str, int]:
        return store.count_by_status()

    from etle.web.settlement import register as register_settlement

    register_settlement(app, store=store, page_actor=page_actor, api_actor=api_actor, need=need,
                        check_csrf=check_csrf, ticket_or_404=ticket_or_404, render=render, ticket_out=_ticket_out)
    from etle.web.citizen import register as register_citizen

    register_citizen(app, store=store, secret=config.secret, secure_cookies=config.secure_cookies,
                     bundle_dir=bundle_dir, translator=translator)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory etle.web.app:app_from_env`` (ETLE_DB, ETLE_EVIDENCE_ROOT, ETLE_WEB_SECRET)."""
    secret = os.environ.get("ETLE_WEB_SECRET")
    root = os.environ.get("ETLE_EVIDENCE_ROOT")
    return create_app(WebConfig(
        db_url=os.environ.get("ETLE_DB", "sqlite:///etle.db"),
        evidence_root=Path(root) if root else None,
        secret=secret.encode() if secret else secrets.token_bytes(32),
        secure_cookies=os.environ.get("ETLE_WEB_INSECURE_COOKIES", "") != "1",
        public_url=os.environ.get("ETLE_WEB_PUBLIC_URL", ""),
    ))
