"""The review app's routes, one :class:`fastapi.APIRouter` per area, included by
:func:`etle.web.app.create_app` in this order:

- :mod:`~etle.web.routers.auth`: login, logout, the language switch;
- :mod:`~etle.web.routers.review`: the queue, the ticket page and its approve/reject/plate/reopen forms;
- :mod:`~etle.web.routers.evidence`: a ticket's evidence files;
- :mod:`~etle.web.routers.letters`: a ticket's letter and a day's letters (PDF);
- :mod:`~etle.web.routers.admin`: the audit log and the user list;
- :mod:`~etle.web.routers.api`: the JSON API under ``/api/v1`` and its OpenAPI docs;

then :mod:`etle.web.settlement`'s router (confirmations, payments, blocking).  Shared state and
checks come from :mod:`etle.web.deps`; review actions used by pages and API from
:mod:`etle.web.actions`.
"""
