"""Rate throttles whose count holds when a client's requests reach several workers at the same instant.

DRF's ``SimpleRateThrottle`` reads the client's list of request times from the cache, decides, and
writes the list back: two workers serving one client at the same moment both read the list before
either writes it, and both let the request through. A burst of N simultaneous requests could pass
N-1 over the rate. Here that read-decide-write runs under a per-client lock taken with the cache's
``add`` (Redis' ``SET NX``; the database cache's INSERT on its primary key), so requests of one client
take turns; different clients never wait for each other.

The lock expires by itself (``LOCK_SECONDS``) should a worker die holding it; that is shorter than a
request waits for it (``WAIT_SECONDS``), so the requests of a client whose previous request died with
its host (the deployment test kills one mid-upload) get the lock, not a 429. A request that cannot
get the lock within ``WAIT_SECONDS`` (a burst of one client far beyond any phone's) is refused as
throttled: on doubt a limit refuses, and the answer is the throttle's usual 429 with Retry-After.
Every app imports its throttles from here (docs/running-in-public.md, "Counters every worker shares").
"""

from __future__ import annotations

import time
import uuid

from rest_framework import throttling

from config.client_ip import client_ip

# A decision holds the lock ~1 ms. A dead worker's lock frees itself after LOCK_SECONDS in Redis, and
# after 1-2 s in Django's database cache (it stores expiry times in whole seconds: measured 1.15-1.83 s).
LOCK_SECONDS = 1
WAIT_SECONDS = 3.0  # longer than a dead worker's lock lasts in either cache (see above)
_FIRST_POLL_SECONDS, _MAX_POLL_SECONDS = 0.0005, 0.005  # a decision holds the lock ~1 ms: look again soon


class _TakingTurns(throttling.SimpleRateThrottle):
    """One decision at a time per cache key. Listed after DRF's class, so that a ScopedRateThrottle
    has read its view's scope and rate before this runs (MRO: DRF's class, this, SimpleRateThrottle)."""

    def get_ident(self, request):
        """The client as config.client_ip decides (the one rule, a validated address), not DRF's copy of it."""
        return client_ip(request)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        lock, token = f"{key}:lock", uuid.uuid4().hex
        deadline, poll = time.monotonic() + WAIT_SECONDS, _FIRST_POLL_SECONDS
        while not self.cache.add(lock, token, LOCK_SECONDS):
            if time.monotonic() >= deadline:
                self.key, self.now = key, self.timer()
                self.history = self.cache.get(key, [])
                return self.throttle_failure()
            time.sleep(poll)
            poll = min(poll * 2, _MAX_POLL_SECONDS)
        try:
            return super().allow_request(request, view)
        finally:
            if self.cache.get(lock) == token:  # not a lock that expired and another request took since
                self.cache.delete(lock)


class ScopedRateThrottle(throttling.ScopedRateThrottle, _TakingTurns):
    """DRF's ScopedRateThrottle (rate by the view's ``throttle_scope``), taking turns per client."""


class UserRateThrottle(throttling.UserRateThrottle, _TakingTurns):
    """DRF's UserRateThrottle (per user, per address when anonymous), taking turns per client."""
