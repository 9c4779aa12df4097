"""The JSON API under ``/api/v1`` (tickets, counts, review actions) and its OpenAPI document and
Swagger page under ``/api`` (behind the same login as the API, unlike FastAPI's defaults, which
the app turns off).

Every route takes a bearer API token or the session cookie (writes then need ``X-CSRF-Token``):
:func:`etle.web.deps.api_actor`.  :class:`TicketOut` and :func:`ticket_out` are also the
settlement API's ticket shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from etle.store import lifecycle
from etle.store.repository import TicketView
from etle.web.actions import REJECT_REASONS, do_action, reject_reason, reopen
from etle.web.deps import Actor, WebContext, api_actor, get_ctx, need, parse_filters
from etle.web.plate_reading import plate_reading

router = APIRouter()


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
    #: per character of the plate (or of the reads' consensus where it is unread): the character,
    #: the reads that read it so out of those covering it, what the others read, and whether no
    #: majority agrees (etle.web.plate_reading)
    plate_reading: list[dict[str, Any]] | None = None


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


def ticket_out(t: TicketView, verification: str | None = None) -> TicketOut:
    return TicketOut(
        id=t.id, reference=t.reference, status=t.status, camera_id=t.camera_id, camera_name=t.camera_name,
        location=t.location, rule=t.rule, article=t.article, fine=t.fine, occurred_at=t.occurred_at,
        local_time=t.local_time, plate_text=t.plate_text, plate_confidence=t.plate_confidence,
        plate_candidates=[c.as_dict() for c in t.plate_candidates], verification=verification,
        plate_colour=t.plate_colour, plate_category=t.plate_category, plate_reading=plate_reading(t),
    )


# -- OpenAPI document and docs --------------------------------------------------------------------

@router.get("/api/openapi.json", include_in_schema=False)
def openapi_json(request: Request, actor: Actor = Depends(api_actor)) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/api/docs", include_in_schema=False)
def api_docs(actor: Actor = Depends(api_actor)) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title="etle API")


# -- /api/v1 --------------------------------------------------------------------------------------

@router.get("/api/v1/tickets", response_model=TicketPage, tags=["tickets"])
def api_tickets(request: Request, limit: int = 50, offset: int = 0,
                actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> TicketPage:
    """Tickets matching ``status`` (default pending_review; ``all``), ``camera``, ``rule``, ``plate``,
    ``from`` and ``to`` (YYYY-MM-DD, UTC), newest first."""
    store = ctx.store
    filters = parse_filters(dict(request.query_params))
    limit = max(0, min(limit, 500))
    items = store.list(**filters, limit=limit, offset=max(0, offset))
    return TicketPage(total=store.count_matching(**filters), items=[ticket_out(t) for t in items],
                      counts=store.count_by_status())


@router.get("/api/v1/tickets/{ref}", response_model=TicketOut, tags=["tickets"])
def api_ticket(ref: str, actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> TicketOut:
    t = ctx.ticket_or_404(ref)
    return ticket_out(t, ctx.verification(t))


@router.get("/api/v1/tickets/{ref}/related", tags=["tickets"])
def api_related(ref: str, actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> list[dict[str, Any]]:
    """The vehicle's other tickets (same plate, or same passage), newest first, with
    ``same_passage`` and ``possible_duplicate`` (same passage, or same plate within 2 minutes)."""
    t = ctx.ticket_or_404(ref)
    return [{"reference": r["ticket"].reference, "occurred_at": r["ticket"].occurred_at.isoformat(),
             "camera": r["ticket"].camera_id, "rule": r["ticket"].rule, "plate": r["ticket"].plate_text,
             "status": r["ticket"].status, "same_passage": r["same_passage"], "possible_duplicate": r["duplicate"]}
            for r in ctx.related(t)]


@router.get("/api/v1/tickets/{ref}/actions", tags=["tickets"])
def api_actions(ref: str, actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> list[dict[str, Any]]:
    need(actor, "supervisor")
    t = ctx.ticket_or_404(ref)
    return [{"action": a.action, "from": a.from_status, "to": a.to_status, "actor": a.actor,
             "at": a.at.isoformat(), "reason": a.reason, "data": dict(a.data)} for a in ctx.store.actions(t.id)]


@router.post("/api/v1/tickets/{ref}/reopen", response_model=TicketOut, tags=["review"])
def api_reopen(ref: str, reason: str = "", actor: Actor = Depends(api_actor),
               ctx: WebContext = Depends(get_ctx)) -> TicketOut:
    """Send an approved or rejected ticket back to review (supervisors)."""
    return ticket_out(reopen(ctx.store, ctx.ticket_or_404(ref), actor, reason))


@router.post("/api/v1/tickets/{ref}/approve", response_model=TicketOut, tags=["review"])
def api_approve(ref: str, actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> TicketOut:
    return ticket_out(do_action(ctx.store, ctx.ticket_or_404(ref), actor, "approve"))


@router.post("/api/v1/tickets/{ref}/reject", response_model=TicketOut, tags=["review"])
def api_reject(ref: str, body: RejectIn, actor: Actor = Depends(api_actor),
               ctx: WebContext = Depends(get_ctx)) -> TicketOut:
    t = ctx.ticket_or_404(ref)
    if body.reason not in REJECT_REASONS:
        raise HTTPException(400, "unknown reject reason")
    need(actor, "reviewer")
    try:
        t = ctx.store.transition(t.id, "reject", actor=actor.username, reason=reject_reason(body.reason, body.text),
                                 data={"reason_code": body.reason})
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
    return ticket_out(t)


@router.post("/api/v1/tickets/{ref}/plate", response_model=TicketOut, tags=["review"])
def api_plate(ref: str, body: PlateIn, actor: Actor = Depends(api_actor),
              ctx: WebContext = Depends(get_ctx)) -> TicketOut:
    return ticket_out(do_action(ctx.store, ctx.ticket_or_404(ref), actor, "plate", plate=body.plate))


@router.get("/api/v1/sites", tags=["sites"])
def api_sites(actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> list[dict[str, Any]]:
    """Each edge box's last report to the central store, its age and whether it is silent (supervisors)."""
    from etle.web.routers.admin import site_rows

    need(actor, "supervisor")
    return [{**{k: v for k, v in r.items() if k not in ("reported_at", "age")},
             "reported_at": r["reported_at"].isoformat()} for r in site_rows(ctx.store.site_statuses())]


@router.get("/api/v1/counts", tags=["tickets"])
def api_counts(actor: Actor = Depends(api_actor), ctx: WebContext = Depends(get_ctx)) -> dict[str, int]:
    return ctx.store.count_by_status()
