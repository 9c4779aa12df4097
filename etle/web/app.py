"""The officer's desk: a FastAPI app over the ticket store and the evidence store.

Every route but ``/login`` needs a signed session cookie (pages) or a bearer API token (``/api``);
every POST form carries the session's CSRF token; roles rank reviewer < supervisor < admin.

:func:`create_app` only assembles: the shared state (:class:`etle.web.deps.WebContext`, kept as
``app.state.web``), the exception handlers, the routers of :mod:`etle.web.routers` and
:mod:`etle.web.settlement`, and the citizen's ``/konfirmasi`` routes (:mod:`etle.web.citizen`,
which keeps its own state).
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from etle.config.settings import settings
from etle.i18n import translator  # the app's translator (tests import it from here)
from etle.store.repository import TicketStore
from etle.web import auth, settlement
from etle.web.citizen import register as register_citizen
from etle.web.deps import (
    Forbidden,
    NeedLogin,
    WebConfig,
    WebContext,
    forbidden_handler,
    need_login_handler,
)
from etle.web.routers import admin, api, evidence, letters, review
from etle.web.routers import auth as auth_routes

__all__ = ["WebConfig", "app_from_env", "create_app"]


def create_app(config: WebConfig, store: TicketStore | None = None) -> FastAPI:
    store = store or TicketStore(config.db_url)
    auth.ensure_tables(store.engine)
    ctx = WebContext(config, store)

    app = FastAPI(title="etle review API", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = ctx
    app.state.store = store
    app.state.config = config
    app.state.limiter = ctx.limiter

    app.add_exception_handler(NeedLogin, need_login_handler)
    app.add_exception_handler(Forbidden, forbidden_handler)

    for module in (auth_routes, review, evidence, letters, admin, api, settlement):
        app.include_router(module.router)
    register_citizen(app, store=store, secret=config.secret, secure_cookies=config.secure_cookies,
                     bundle_dir=ctx.bundle_dir, translator=translator)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory etle.web.app:app_from_env`` (ETLE_DB, ETLE_EVIDENCE_ROOT, ETLE_WEB_SECRET,
    ETLE_WEB_INSECURE_COOKIES, ETLE_WEB_PUBLIC_URL: :mod:`etle.config.settings`)."""
    env = settings()
    return create_app(WebConfig(
        db_url=env.db,
        evidence_root=env.evidence_root,
        secret=env.web_secret.encode() if env.web_secret else secrets.token_bytes(32),
        secure_cookies=env.web_insecure_cookies != "1",
        public_url=env.web_public_url,
    ))
