"""The store's users: the reviewers and operators that actions are recorded under.

:class:`UsersMixin` holds the :class:`etle.store.repository.TicketStore` methods that add and
list users (``system:<component>`` actors need no user row, see ``StoreBase._user_id``).
"""

from __future__ import annotations

import builtins

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from etle.errors import StoreError
from etle.store import lifecycle
from etle.store.base import StoreBase, _now
from etle.store.models import User
from etle.store.views import UserView


class UsersMixin(StoreBase):
    """Adding and listing users."""

    def add_user(self, username: str, *, display_name: str = "", role: str = "reviewer") -> UserView:
        """Add a user; :class:`StoreError` when the username is taken or malformed."""
        name = username.strip()
        if not name or name.startswith(lifecycle.SYSTEM_PREFIX) or len(name) > 64:
            raise StoreError(f"invalid username {username!r}")
        row = User(username=name, display_name=display_name, role=role, active=True, created_at=_now())
        try:
            with self._session("add a user") as session:
                session.add(row)
        except IntegrityError as exc:
            raise StoreError(f"user {name!r} already exists") from exc
        return UserView(row.id, row.username, row.display_name, row.role, row.active, row.created_at)

    def users(self) -> builtins.list[UserView]:
        with self._session("list users") as session:
            return [UserView(u.id, u.username, u.display_name, u.role, u.active, u.created_at)
                    for u in session.scalars(select(User).order_by(User.username))]
