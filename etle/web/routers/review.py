"""The review pages: the queue (filters, paging), the ticket page, and its approve, reopen, reject
and plate-correction forms (each checks the session's CSRF token; results redirect back to the
ticket with a message)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from etle import articles
from etle.store import lifecycle
from etle.store.models import PENDING_REVIEW
from etle.web import auth
from etle.web.actions import REJECT_REASONS, do_action, reject_reason, reopen
from etle.web.plate_reading import plate_needs_a_look, plate_reading
from etle.web.deps import (
    DUPLICATE_WINDOW_S,
    Actor,
    WebContext,
    check_csrf,
    get_ctx,
    need,
    page_actor,
    parse_filters,
)

PAGE_SIZE = 25


router = APIRouter()


@router.get("/", include_in_schema=False)
def root(actor: Actor = Depends(page_actor)) -> Response:
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue", response_class=HTMLResponse, include_in_schema=False)
def queue(request: Request, actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    store = ctx.store
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
    marked = {tk.reference for tk in tickets if plate_needs_a_look(tk)}
    duplicates = store.possible_duplicates(tickets, window_s=DUPLICATE_WINDOW_S)
    return ctx.render(request, "queue.html", actor, tickets=tickets, total=total, page=page, marked=marked,
                      duplicates=duplicates,
                      pages=max(1, math.ceil(total / PAGE_SIZE)), counts=counts, statuses=lifecycle.STATUSES,
                      params=params, status=params.get("status", PENDING_REVIEW),
                      cameras=store.camera_ids(), rules=sorted(articles.table()),
                      qs=lambda **kw: urlencode({**keep, **{k: v for k, v in kw.items()}}),
                      today=datetime.now(timezone.utc).date().isoformat())


@router.get("/tickets/{ref}", response_class=HTMLResponse, include_in_schema=False)
def ticket_page(ref: str, request: Request, actor: Actor = Depends(page_actor),
                ctx: WebContext = Depends(get_ctx)) -> HTMLResponse:
    store = ctx.store
    t = ctx.ticket_or_404(ref)
    pending = [p for p in store.list(status=PENDING_REVIEW, limit=2) if p.id != t.id]
    files = {f.name for f in t.evidence_files if f.pruned_at is None}
    reads = store.plate_reads(t.id)
    original = next((r.text for r in reads if r.source != "reviewer" and r.chosen), None)
    return ctx.render(request, "ticket.html", actor, tk=t, state=ctx.verification(t), files=files,
                      reads=reads, original=original, details=ctx.violation_details(t), time_origin=ctx.time_origin(t), reading=plate_reading(t),
                      related=ctx.related(t), clip_omitted=(ctx.manifest(t).get("extra") or {}).get("clip_omitted"),
                      actions=store.actions(t.id) if auth.RANK[actor.role] >= auth.RANK["supervisor"] else None,
                      next_ticket=pending[0] if pending else None, reasons=REJECT_REASONS,
                      msg=request.query_params.get("msg", ""))


@router.post("/tickets/{ref}/approve", include_in_schema=False)
def approve_form(ref: str, csrf: str = Form(""), next: str = Form(""), actor: Actor = Depends(page_actor),
                 ctx: WebContext = Depends(get_ctx)) -> Response:
    check_csrf(actor, csrf)
    t = do_action(ctx.store, ctx.ticket_or_404(ref), actor, "approve")
    return RedirectResponse(f"/tickets/{t.reference}?msg=approved", status_code=303)


@router.post("/tickets/{ref}/reopen", include_in_schema=False)
def reopen_form(ref: str, reason: str = Form(""), csrf: str = Form(""), actor: Actor = Depends(page_actor),
                ctx: WebContext = Depends(get_ctx)) -> Response:
    check_csrf(actor, csrf)
    t = reopen(ctx.store, ctx.ticket_or_404(ref), actor, reason)
    return RedirectResponse(f"/tickets/{t.reference}?msg=reopened", status_code=303)


@router.post("/tickets/{ref}/reject", include_in_schema=False)
def reject_form(ref: str, reason: str = Form(""), other: str = Form(""), csrf: str = Form(""),
                actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> Response:
    check_csrf(actor, csrf)
    t = ctx.ticket_or_404(ref)
    if reason not in REJECT_REASONS:
        raise HTTPException(400, "unknown reject reason")
    need(actor, "reviewer")
    try:
        t = ctx.store.transition(t.id, "reject", actor=actor.username, reason=reject_reason(reason, other),
                                 data={"reason_code": reason})
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse(f"/tickets/{t.reference}?msg=rejected", status_code=303)


@router.post("/tickets/{ref}/plate", include_in_schema=False)
def plate_form(ref: str, plate: str = Form(""), csrf: str = Form(""), actor: Actor = Depends(page_actor),
               ctx: WebContext = Depends(get_ctx)) -> Response:
    check_csrf(actor, csrf)
    t = do_action(ctx.store, ctx.ticket_or_404(ref), actor, "plate", plate=plate)
    return RedirectResponse(f"/tickets/{t.reference}?msg=plate", status_code=303)
