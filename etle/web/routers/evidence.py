"""A ticket's evidence files for logged-in officers (``/tickets/<ref>/files/<name>``): only the
bundle's known file names, only inside the evidence root (:meth:`etle.web.deps.WebContext.evidence_file`),
never cached."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from etle.web.deps import Actor, WebContext, get_ctx, page_actor

router = APIRouter()


@router.get("/tickets/{ref}/files/{name}", include_in_schema=False)
def ticket_file(ref: str, name: str, actor: Actor = Depends(page_actor), ctx: WebContext = Depends(get_ctx)) -> Response:
    t = ctx.ticket_or_404(ref)
    path = ctx.evidence_file(t, name)
    media = {".jpg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4", ".json": "application/json"}
    return FileResponse(path, media_type=media.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})
