"""Flaws of ccxt.pro's WebSocket client, mended for the collector's sockets (collector/ccxt_collector.py
mixes these into its client and exchange classes). All showed under a step of the host clock (issue
24), whose stalls and reconnects of every feed at once make such races likely.

`MonotonicPong`: ccxt's client stamps each pong with the wall clock (`lastPong =
Exchange.milliseconds()`, in its client and in the venues' pong handlers) and its ping loop ends
the socket when `lastPong + keepAlive × maxPingPongMisses < milliseconds()`. A forward step of the
host clock past that limit (10 s by default: an NTP step, `date -s`) therefore ended every socket
of every venue at once, and after a backward step a dead socket went unnoticed for as long as the
step. `MonotonicPong` keeps the time of the last pong on the monotonic clock and reads it back in
the wall clock of the moment, so ccxt's own test measures the real age of the pong whatever the
wall clock did meanwhile.

`ClosedStaysClosed`: ccxt's `close()` of a client still connecting finds no socket to close; the
connection then completes and sends the subscriptions anyway. That socket, gone from the exchange's
`clients`, went on delivering frames nobody would close, and they were taken for the frames of the
feed's next session: book deltas before that session's snapshot (`no_book` in
`silver.orderbook_unserved`) and every delta twice (a sequence break "u=N after u=N"). A closed client
now handles no frame, and a connection that completes after its close is closed at once.

`ForgetsOnlyItsOwnClient`: ccxt's exchange forgets `clients[client.url]` when a client reports its
close, whichever client that entry is by then. A socket the collector closed (a feed's session
ended) reports its close a moment later, after another feed may have opened the next socket to the
same url: that live socket was forgotten, never closed, and kept delivering while the next watch
opened a third one subscribed to the same topics, so every delta came twice (Bybit "u=N after u=N",
OKX "invalid nonce") and the books resynced without end. Only the client in the entry is forgotten.

`ForgetsOnlyItsOwnClient` also keeps ccxt's redial backoff (after a failed connection) on the
monotonic clock: ccxt stores the wall-clock time until which a url may not be dialled, so a step back
after a failed dial held the next one for the step's length (two minutes for 120 s).

`monotonic_throttle`: ccxt's rate limiter (its leaky bucket, before REST calls and sends on a
socket) refills by the wall-clock time between its checks. A step back while requests waited made
that negative: the bucket owed the step's worth of tokens (120 s), so Binance's REST snapshot and the
OKX/Bybit resubscriptions waited two minutes and the books were not served again.
"""

from __future__ import annotations

import time
from typing import Any


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000  # what ccxt's Exchange.milliseconds() reads


class MonotonicPong:
    """Mixin for ccxt's ws Client: `lastPong` stored as a monotonic instant."""

    _pong_monotonic: float | None = None

    @property
    def lastPong(self) -> int | None:  # noqa: N802 - ccxt's attribute
        if self._pong_monotonic is None:
            return None
        return _wall_ms() - round((time.monotonic() - self._pong_monotonic) * 1000)

    @lastPong.setter
    def lastPong(self, value: int | None) -> None:  # noqa: N802
        # a wall-clock ms value (ccxt's now, or a venue's pong time) → the monotonic instant it names
        if value is None:
            self._pong_monotonic = None
        else:
            self._pong_monotonic = time.monotonic() - (_wall_ms() - value) / 1000


class ClosedStaysClosed:
    """Mixin for ccxt's ws Client: once `close()` was called, no frame is handled and no socket stays."""

    daedalus_closed = False

    async def close(self, code: int = 1000) -> Any:
        self.daedalus_closed = True
        return await super().close(code)  # type: ignore[misc]

    async def open(self, session: Any, backoff_delay: float = 0) -> None:
        await super().open(session, backoff_delay)  # type: ignore[misc]
        if self.daedalus_closed and not self.closed():  # type: ignore[attr-defined]
            await self.aiohttp_close()  # type: ignore[attr-defined]

    def handle_message(self, message: Any) -> None:
        if self.daedalus_closed:
            return  # its feeds' sessions ended with their disconnect events; a new session has its own socket
        super().handle_message(message)  # type: ignore[misc]


class ForgetsOnlyItsOwnClient:
    """Mixin for a ccxt.pro exchange: a client's close forgets that client, not its url's successor;
    the redial backoff on the monotonic clock."""

    clients: dict[str, Any]
    ws_dial_backoff: dict[str, Any]
    _dial_after: dict[str, float] | None = None  # url -> monotonic time before which no dial

    def on_error(self, client: Any, error: Any) -> None:
        dial_failed = getattr(client, "dial_failed", False)  # only then does ccxt set a backoff
        super().on_error(client, error)  # type: ignore[misc]
        state = (getattr(self, "ws_dial_backoff", None) or {}).get(client.url)
        if dial_failed and state is not None:  # ccxt's wall-clock `until` → a monotonic instant
            self._dial_after = self._dial_after or {}
            self._dial_after[client.url] = time.monotonic() + (state["until"] - _wall_ms()) / 1000

    def ws_dial_delay(self, url: str) -> float:
        if not (getattr(self, "ws_dial_backoff", None) or {}).get(url):
            return 0  # dialled since (ccxt clears its entry on a connection)
        return max(0.0, (self._dial_after or {}).get(url, 0.0) - time.monotonic())

    def on_close(self, client: Any, error: Any) -> None:
        if (self.clients or {}).get(client.url) is not client:
            return  # an older socket of this url: the current one stays
        super().on_close(client, error)  # type: ignore[misc]


def monotonic_throttle() -> None:
    """ccxt's Throttler on the monotonic clock (it only measures time between its own checks)."""
    from ccxt.async_support.base import throttler

    throttler.time = time.monotonic  # the module's `from time import time`
