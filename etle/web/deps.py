"""What the review app's routers share: its settings, state, and the login, CSRF and role checks.

:func:`etle.web.app.create_app` builds one :class:`WebContext` (the config, the ticket store, the
session signer, the login rate limiter, the Jinja2 templates and the evidence root) and keeps it
as ``app.state.web``; routes reach it through the :func:`get_ctx` dependency and the logged-in
user through :func:`page_actor` (pages: session cookie, a login redirect otherwise) or
:func:`api_actor` (``/api``: a bearer token, or the session cookie plus ``X-CSRF-Token`` on
writes).  :func:`need` raises :class:`Forbidden` below a role (reviewer < supervisor < admin);
:func:`check_csrf` checks a form's token against the session's.  The two exception handlers
turn :class:`NeedLogin` and :class:`Forbidden` into responses.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from etle import articles
from etle.evidence.builder import verify_bundle
from etle.evidence.offload import offloaded_names
from etle.i18n import LANGS, translator
from etle.ingest.live import LIVE_ORIGIN
from etle.ingest.sources import STREAM_ORIGIN
from etle.letters.dates import CONFIRM_DAYS
from etle.store import lifecycle
from etle.store.models import PENDING_REVIEW
from etle.store.repository import TicketStore, TicketView
from etle.web import auth

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "etle_session"
PRELOGIN_COOKIE = "etle_prelogin"
LANG_COOKIE = "etle_lang"
EVIDENCE_NAMES = {"overview.jpg", "original.png", "closeup.jpg", "plate.jpg", "clip.mp4", "manifest.json"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


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


class WebContext:
    """The app's shared state (``app.state.web``) and the helpers that need it."""

    def __init__(self, config: WebConfig, store: TicketStore) -> None:
        self.config = config
        self.store = store
        self.signer = auth.SessionSigner(config.secret)
        self.limiter = auth.RateLimiter(config.login_limit, config.login_window_s)
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                               autoescape=select_autoescape(["html", "xml"], default=True))
        self.ev_root = config.evidence_root.resolve() if config.evidence_root else None

    def role_of(self, username: str) -> str | None:
        for u in self.store.users():
            if u.username == username and u.active:
                return u.role
        return None

    def session_actor(self, request: Request) -> Actor | None:
        data = self.signer.load(request.cookies.get(SESSION_COOKIE))
        if data is None:
            return None
        role = self.role_of(data.username)
        return Actor(data.username, role, data.csrf) if role else None

    def set_cookie(self, resp: Response, name: str, value: str, max_age: int | None = None) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, secure=self.config.secure_cookies,
                        samesite="strict", path="/")

    def render(self, request: Request, name: str, actor: Actor | None, status_code: int = 200,
               **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        tr = translator(lang)
        html = self.env.get_template(name).render(
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

    def ticket_or_404(self, ref: str) -> TicketView:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", ref):
            raise HTTPException(404, "no such ticket")
        t = self.store.get(ref)
        if t is None:
            raise HTTPException(404, "no such ticket")
        return t

    def bundle_dir(self, t: TicketView) -> Path | None:
        ev_root = self.ev_root
        if not t.evidence_path:
            return None
        folder = Path(t.evidence_path)
        if ev_root is not None and not folder.is_absolute():
            folder = ev_root / folder
        folder = folder.resolve()
        if ev_root is not None and not folder.is_relative_to(ev_root):
            return None
        return folder

    def evidence_file(self, t: TicketView, name: str) -> Path:
        ev_root = self.ev_root
        if not _SAFE_NAME.fullmatch(name) or ".." in name:
            raise HTTPException(404, "no such evidence file")
        listed = {f.name for f in t.evidence_files if f.pruned_at is None} or EVIDENCE_NAMES
        if name not in listed or name not in EVIDENCE_NAMES:
            raise HTTPException(404, "no such evidence file")
        folder = self.bundle_dir(t)
        if folder is None:
            raise HTTPException(404, "no such evidence file")
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or (ev_root is not None and not path.is_relative_to(ev_root)):
            raise HTTPException(404, "no such evidence file")
        if not path.is_file():
            raise HTTPException(404, "no such evidence file")
        return path

    def verification(self, t: TicketView) -> str:
        folder = self.bundle_dir(t)
        if folder is None or not folder.is_dir():
            return "missing"
        problems = verify_bundle(folder, manifest_sha256=t.manifest_sha256 or None)
        if problems and t.offloaded_at is not None and t.synced_at is not None:
            # an edge box freed the media (etle.evidence.offload): only their absence may differ
            held = offloaded_names(folder)
            problems = [p for p in problems if p not in {f"{n}: missing" for n in held}]
            return "offloaded" if not problems else "altered"
        return "verified" if not problems else "altered"

    def manifest(self, t: TicketView) -> dict[str, Any]:
        """The ticket's evidence manifest; empty when unreadable."""
        folder = self.bundle_dir(t)
        if folder is None:
            return {}
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return manifest if isinstance(manifest, dict) else {}

    def violation_details(self, t: TicketView) -> dict[str, Any]:
        """What the rule recorded about the violation (the evidence manifest's ``violation.details``:
        a measured speed, the reasons a plate was flagged, ``review_only``); empty when unreadable."""
        details = (self.manifest(t).get("violation") or {}).get("details")
        return details if isinstance(details, dict) else {}

    def related(self, t: TicketView) -> list[dict[str, Any]]:
        """Other tickets of the same vehicle (:meth:`TicketStore.related`), each with ``duplicate``
        where it may be the same act: the same passage (another rule on one track), or the same
        plate within :data:`DUPLICATE_WINDOW_S` (two cameras, or one passage split in two runs)."""
        out = []
        for other in self.store.related(t.id):
            same_passage = (other.camera_id, other.source, other.run_id, other.track_id) == (
                t.camera_id, t.source, t.run_id, t.track_id)
            gap = abs((other.occurred_at - t.occurred_at).total_seconds())
            out.append({"ticket": other, "same_passage": same_passage,
                        "duplicate": same_passage or gap <= DUPLICATE_WINDOW_S, "gap_s": gap})
        return out

    def time_origin(self, t: TicketView) -> dict[str, Any] | None:
        """Where the ticket's time came from (the manifest's ``extra.wall_start_origin``: the
        recording's start, plus the frame's time in it) as ``{"key": i18n key, "weak": bool, "part":
        file or None}``; ``weak`` where that start is a guess the officer should check against the
        picture before approving (a container's creation_time, a file's modification time)."""
        extra = self.manifest(t).get("extra")
        if not isinstance(extra, dict) or not isinstance(extra.get("wall_start_origin"), str):
            return None
        key = TIME_ORIGINS.get(extra["wall_start_origin"], "origin_unknown")
        note = "origin_weak_note" if key in WEAK_ORIGINS else None
        if key == "origin_live" and extra.get("box_clock_synchronized") is False:
            key, note = "origin_live_unsynced", "origin_unsynced_note"  # the box's clock was not set by NTP
        part = extra.get("part")
        return {"key": key, "weak": note is not None, "note": note,
                "part": f"{Path(part).name} @ {extra.get('part_pts', 0):.1f} s" if isinstance(part, str) else None}


#: tickets of one plate closer in time than this may be one act ticketed twice (the review page says so)
DUPLICATE_WINDOW_S = 120.0

#: the origins a run records (etle.ingest.sources, etle.clock) -> the review page's words for them
TIME_ORIGINS = {
    LIVE_ORIGIN: "origin_live",
    STREAM_ORIGIN: "origin_live",
    "given": "origin_given",
    "the clock in the picture (OSD)": "origin_osd",
    "the file name": "origin_name",
    "container creation_time": "origin_creation",
    "file modification time": "origin_mtime",
}
WEAK_ORIGINS = frozenset({"origin_creation", "origin_mtime", "origin_unknown"})


# -- helpers without state ------------------------------------------------------------------------

def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "id")
    return lang if lang in LANGS else "id"


def need(actor: Actor, role: str) -> None:
    if auth.RANK.get(actor.role, -1) < auth.RANK[role]:
        raise Forbidden()


def check_csrf(actor: Actor, token: str) -> None:
    if not token or not hmac.compare_digest(token, actor.csrf):
        raise HTTPException(403, "CSRF token missing or invalid")


def rule_title(rule: str, lang: str) -> str:
    a = articles.article_for(rule)
    if a is None:
        return rule
    return (a.title_en if lang == "en" else a.title_id) or rule


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


# -- dependencies ---------------------------------------------------------------------------------

def get_ctx(request: Request) -> WebContext:
    return request.app.state.web


def page_actor(request: Request, ctx: WebContext = Depends(get_ctx)) -> Actor:
    actor = ctx.session_actor(request)
    if actor is None:
        raise NeedLogin()
    return actor


def api_actor(request: Request, ctx: WebContext = Depends(get_ctx)) -> Actor:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        name = auth.token_user(ctx.store.engine, header[7:].strip())
        role = ctx.role_of(name) if name else None
        if role:
            return Actor(name, role, via_token=True)
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    actor = ctx.session_actor(request)
    if actor is None:
        raise HTTPException(401, "login or a bearer token required", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(sent, actor.csrf):
            raise HTTPException(403, "CSRF token missing or invalid")
    return actor


# -- error handling -------------------------------------------------------------------------------

async def need_login_handler(request: Request, exc: NeedLogin) -> Response:
    if request.method == "GET":
        return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
    return HTMLResponse("login required", status_code=401)


async def forbidden_handler(request: Request, exc: Forbidden) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "forbidden"}, status_code=403)
    return HTMLResponse(translator(lang_of(request))("forbidden"), status_code=403)
