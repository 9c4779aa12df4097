"""A registry behind HTTP: ``GET {base_url}/vehicles/{plate}`` answering JSON.

The contract (what an adapter in front of the real registry service must serve):

* ``200`` with a JSON object: the record (keys as the CSV registry: ``plate``, ``owner_name``,
  ``owner_address``, ``vehicle_type``, ``make``, ``vehicle_colour``, ``colour`` for the plate
  colour, ``valid_until``, ``status``);
* ``404``: the plate is not registered;
* anything else (5xx, 429, a timeout, a refused connection, a body that is not a JSON object):
  the registry did not answer.

Why it is built this way: the registry is someone else's service on someone else's network.
A lookup has a timeout; connection failures, timeouts, 5xx and 429 are retried a bounded number
of times with exponential backoff; when it still fails the result is ``unavailable`` with the
reason, and nothing is raised, so a batch of lookups carries on and the tickets simply wait for
the next run.  Answers (``found`` and ``not_found``, never ``unavailable``) are cached in memory
for ``cache_ttl_s`` so a batch with many tickets of one vehicle asks once.  Only the standard
library is used (no extra to install).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from etle.errors import ConfigError
from etle.registry.base import FOUND, NOT_FOUND, UNAVAILABLE, LookupResult, normalise_plate, record_from_mapping

__all__ = ["HttpRegistry"]

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Retry(Exception):
    """A failure worth another attempt (the reason is the message)."""


class _GiveUp(Exception):
    """A failure another attempt will not fix (HTTP 401, a malformed answer)."""


class HttpRegistry:
    """An HTTP registry client with timeout, bounded retries with backoff and a TTL cache.

    ``token`` is sent as ``Authorization: Bearer``; it never appears in :attr:`source`, logs or
    results.  ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        cache_ttl_s: float = 600.0,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"vehicle registry URL {base_url!r} is not an http(s):// URL")
        if parsed.username or parsed.password:
            raise ConfigError("vehicle registry URL must not carry credentials: pass a token (ETLE_REGISTRY_TOKEN)")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or cache_ttl_s < 0:
            raise ConfigError(
                f"vehicle registry: timeout must be > 0 and retries, backoff and cache TTL >= 0 "
                f"(got {timeout_s}, {retries}, {backoff_s}, {cache_ttl_s})")
        self.base_url = base_url.rstrip("/")
        self.source = f"http:{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.cache_ttl_s = cache_ttl_s
        self._token = token
        self._sleep = sleep
        self._clock = clock
        self._cache: dict[str, tuple[float, LookupResult]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpRegistry({self.base_url!r}, timeout_s={self.timeout_s}, retries={self.retries})"

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def lookup(self, plate: str) -> LookupResult:
        key = normalise_plate(plate)
        if not key:
            return LookupResult(key, NOT_FOUND, source=self.source)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                old = hit[1]
                return LookupResult(old.plate, old.status, old.record, old.reason, old.source, old.checked_at, cached=True)
        result = self._fetch(key)
        if result.status != UNAVAILABLE and self.cache_ttl_s > 0:
            with self._lock:
                self._cache[key] = (self._clock() + self.cache_ttl_s, result)
        return result

    def _fetch(self, key: str) -> LookupResult:
        url = f"{self.base_url}/vehicles/{urllib.parse.quote(key, safe='')}"
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * (2 ** (attempt - 1)))
            try:
                return self._once(url, key)
            except _Retry as exc:
                reason = str(exc)
                log.info("registry %s: %s (attempt %d of %d)", self.source, reason, attempt + 1, self.retries + 1)
            except _GiveUp as exc:
                reason = str(exc)
                break
        log.info("registry %s unavailable for %s: %s", self.source, key, reason)
        return LookupResult(key, UNAVAILABLE, reason=reason, source=self.source)

    def _once(self, url: str, key: str) -> LookupResult:
        headers = {"Accept": "application/json", "User-Agent": "etle-registry"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - scheme checked
                body = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                return LookupResult(key, NOT_FOUND, source=self.source)
            if exc.code in _RETRY_STATUSES:
                raise _Retry(f"HTTP {exc.code}") from None
            raise _GiveUp(f"HTTP {exc.code}") from None
        except (TimeoutError, socket.timeout):
            raise _Retry(f"no answer within {self.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Retry(f"no answer within {self.timeout_s:g} s") from None
            raise _Retry(f"cannot connect: {exc.reason}") from None
        except (OSError, ValueError) as exc:  # reset connections, malformed responses
            raise _Retry(f"connection failed: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _GiveUp("the answer is not JSON") from None
        if not isinstance(data, dict):
            raise _GiveUp("the answer is not a JSON object")
        data = {**data, "plate": data.get("plate") or key}
        try:
            record = record_from_mapping(data, f"registry {self.source}", strict=False)
        except ConfigError as exc:
            raise _GiveUp(str(exc)) from None
        if record.plate != key:
            raise _GiveUp(f"asked for {key}, the registry answered {record.plate}")
        return LookupResult(key, FOUND, record, source=self.source)
