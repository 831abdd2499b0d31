"""The per-key rate limit: a sliding-window counter (the weighted two-window approximation).

Requests are counted in fixed one-minute windows (epoch minutes), but a request is judged against an estimate
of how many were made in the last 60 seconds: the current window's count plus the previous window's count
weighted by the share of the previous window still inside those 60 seconds::

    estimate = previous * (60 s - elapsed) / 60 s + current        (elapsed: time since this window began)

A request is admitted while `estimate < limit` (the previous window's weighted share counts in whole
requests: a fraction of a request is not one), and only an admitted request is counted. This is the approach
Cloudflare describes in "How we built rate limiting capable of scaling to millions of domains"; it costs two
small counters per key, which the single Lua round trip of `cache.RedisStore.admit` reads and increments, and
`cache.LocalStore` does the same under its lock. (Requiring `estimate + 1 <= limit` instead would refuse a
key with a limit of 1 for two minutes after each request, and a key retrying steadily would get `limit - 1`.)

What it guarantees, and what it does not:

- No boundary burst. With a fixed window a client could send the limit at 59.9 s and again at 60.1 s; here,
  at 60.1 s the previous window still weighs 59.9/60 of its count, so after `limit` requests at 59.9 s only
  the share that slid out, `limit * 0.1 / 60` rounded up (1 for limits up to 600), fits.
- Gradual recovery. As the previous window slides out, its weight falls linearly, so capacity comes back a
  little at a time instead of all at once on the minute.
- It is an estimate that assumes the previous window's requests were spread evenly. A burst early in a
  window keeps weighing until the next window ends (stricter than the truth: after `limit` requests at once,
  the full budget is back within two minutes, not one); a burst at the very end of a window followed by an
  even trickle can reach about twice the limit over one rolling minute, but never as a burst. Only a log of
  every request's time is exact, at a cost proportional to the limit per key.
- Refused requests are not counted. Counting them would keep a client that retries faster than its limit
  out for as long as it retries, since the previous window's weight would never drain; the fixed window it
  replaces at least started afresh every minute. Not counting them keeps that property: a hammering client is
  admitted at its limit, never locked out, and `Retry-After` does not grow with its retries.

Time is whole milliseconds since the epoch, from `django.utils.timezone.now()` (tests control it there), and
every comparison is done in integers scaled by the window length, so Lua and Python agree exactly.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WINDOW_SECONDS = 60
WINDOW_MS = WINDOW_SECONDS * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_position(now: datetime) -> tuple[int, int]:
    """(the window `now` falls in, milliseconds since that window began)."""
    return divmod((now - _EPOCH) // timedelta(milliseconds=1), WINDOW_MS)


def fits(*, limit: int, previous: int, current: int, elapsed_ms: int) -> bool:
    """Whether one more request fits: `previous * (W - elapsed) / W + current < limit`, in integers.

    `cache._ADMIT_LUA` evaluates the same expression.
    """
    return previous * (WINDOW_MS - elapsed_ms) < (limit - current) * WINDOW_MS


def wait_ms(*, limit: int, previous: int, current: int, elapsed_ms: int) -> int:
    """Milliseconds until one more request fits, if no other request is admitted meanwhile (0: it fits now).

    The estimate only falls as time passes (and is continuous across a window boundary, where the current
    window becomes the previous one at full weight), so the first moment it fits is found in closed form.
    """
    if fits(limit=limit, previous=previous, current=current, elapsed_ms=elapsed_ms):
        return 0
    room = limit - current  # what the previous window may weigh, short of it, for a request to fit in this window
    if room > 0 and previous > 0:
        # previous * (W - elapsed - wait) < room * W, that is <= room * W - 1 in whole numbers
        wait = WINDOW_MS - elapsed_ms - (room * WINDOW_MS - 1) // previous
        if elapsed_ms + wait < WINDOW_MS:
            return wait
    # Not in this window: in the next one this window's count is the previous one and nothing is counted yet,
    # so a request fits once current * (W - elapsed') < limit * W.
    into_next = max(0, WINDOW_MS - (limit * WINDOW_MS - 1) // current) if current else 0
    return WINDOW_MS - elapsed_ms + into_next


@dataclass(frozen=True)
class RateDecision:
    """How one request fared against its key's limit, and the counts it was judged on.

    `current` includes this request when it was admitted (and counted); a refused request is in neither count.
    """

    limit: int
    admitted: bool
    previous: int
    current: int
    elapsed_ms: int

    @property
    def retry_after(self) -> int:
        """Whole seconds, at least 1, after which a request would be admitted if none is made meanwhile."""
        wait = wait_ms(limit=self.limit, previous=self.previous, current=self.current, elapsed_ms=self.elapsed_ms)
        return max(1, math.ceil(wait / 1000))
