"""Site signing keys: the public keys that evidence manifests are verified against.

:class:`SiteKeysMixin` holds the :class:`etle.store.repository.TicketStore` methods that
register (idempotently) and read the manifest-signing public keys of the sites.
"""

from __future__ import annotations

from sqlalchemy import select

from etle.errors import StoreError
from etle.store.base import StoreBase, _now
from etle.store.models import SiteKey


class SiteKeysMixin(StoreBase):
    """Registering and reading site signing keys."""

    def register_site_key(self, key_id: str, public_key_b64: str, *, site: str = "") -> None:
        """Remember a manifest-signing public key (idempotent)."""
        self._retrying("register a site key", lambda: self._register_site_key(key_id, public_key_b64, site))

    def _register_site_key(self, key_id: str, public_key_b64: str, site: str) -> None:
        with self._session("register a site key") as session:
            found = session.get(SiteKey, key_id)
            if found is None:
                session.add(SiteKey(key_id=key_id, public_key=public_key_b64, site=site, created_at=_now()))
            elif found.public_key != public_key_b64:
                raise StoreError(f"site key {key_id} is already registered with different key material")

    def site_keys(self) -> dict[str, str]:
        """``{key_id: base64 public key}`` of every registered site key."""
        with self._session("read site keys") as session:
            return {k.key_id: k.public_key for k in session.scalars(select(SiteKey))}
