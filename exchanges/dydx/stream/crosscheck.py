"""The indexer's top of book checked against the full-node stream's, with the stream's lead.

The indexer builds its book from the order messages of its own full node (v4-chain
``indexer/services/vulcan``, published by ``indexer/services/socks`` in batches flushed
every 250 ms), so it shows, some time later, a top of book the stream already had. For
every change of the indexer's best bid (or ask) price, :class:`CrossCheck` looks for that
price among the stream's best bids (asks) of the last ``window_s`` seconds:

- found: the two agree; ``indexer time - the time the stream's top became that price`` is
  the stream's LEAD for that change (negative when the indexer was first);
- not found: a DISAGREEMENT (counted, logged with both prices: the first per market at
  once, then at most one line per ``log_every_s`` with the running count). Causes: a node
  sees orders in a different order than the indexer's node (each node's book is its own,
  v4-documentation ``full_node_streaming.md``), the indexer's book crossed or stale
  (nautilus_trader #2075), or a level the indexer left out while uncrossing.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from decimal import Decimal

from loguru import logger

NS = 1_000_000_000


class CrossCheck:
    """Stream-versus-indexer top-of-book comparison per market and side.

    :param window_s: how far back a stream top still counts as agreeing (seconds).
    :param log_every_s: at most one disagreement line per market per this many seconds.

    ``stats()`` returns ``checks``, ``agreements``, ``disagreements`` and the lead
    (``lead_ms_median``, ``lead_ms_p90``, ``lead_samples``) over the last 10,000 agreements.
    """

    def __init__(self, window_s: float = 10.0, log_every_s: float = 30.0):
        self.window_ns = int(window_s * NS)
        self.log_every_s = log_every_s
        self._stream: dict[tuple[str, str], deque] = {}
        self._indexer: dict[tuple[str, str], Decimal | None] = {}
        self._logged: dict[str, float] = {}
        self.leads_ns: deque = deque(maxlen=10_000)
        self.counts = {"checks": 0, "agreements": 0, "disagreements": 0}
        self.per_market: dict[str, int] = {}

    def on_stream_top(self, ticker: str, ts_ns: int, bid: Decimal | None, ask: Decimal | None) -> None:
        """Record the stream's top of book at ``ts_ns`` (only price changes are kept)."""
        for side, price in (("bid", bid), ("ask", ask)):
            hist = self._stream.setdefault((ticker, side), deque())
            if price is not None and (not hist or hist[-1][1] != price):
                hist.append((ts_ns, price))
            while len(hist) > 1 and hist[1][0] < ts_ns - self.window_ns:
                hist.popleft()  # keep the newest entry older than the window: it is still the top

    def on_indexer_top(self, ticker: str, ts_ns: int, bid: Decimal | None, ask: Decimal | None) -> int:
        """Compare the indexer's top of book at ``ts_ns`` with the stream's recent tops.

        Only a changed price (per side) is checked. :returns: the disagreements found (0-2).
        """
        bad = 0
        for side, price in (("bid", bid), ("ask", ask)):
            key = (ticker, side)
            if price is None or self._indexer.get(key) == price:
                continue
            self._indexer[key] = price
            self.counts["checks"] += 1
            seen = None
            for t, p in reversed(self._stream.get(key, ())):
                if p == price:
                    seen = t
                    break
            if seen is not None:
                self.counts["agreements"] += 1
                self.leads_ns.append(ts_ns - seen)
                continue
            bad += 1
            self.counts["disagreements"] += 1
            n = self.per_market[ticker] = self.per_market.get(ticker, 0) + 1
            hist = self._stream.get(key)
            now = time.monotonic()
            if n == 1 or now - self._logged.get(ticker, 0.0) >= self.log_every_s:
                self._logged[ticker] = now
                logger.warning(
                    f"dYdX {ticker}: indexer best {side} {price} was not the node stream's best {side} in the last "
                    f"{self.window_ns / NS:g}s (stream now {hist[-1][1] if hist else 'empty'}); "
                    f"{n} disagreement(s) on {ticker} so far")
        return bad

    def stats(self) -> dict:
        """Counters and the lead statistics (milliseconds)."""
        out = dict(self.counts)
        leads = list(self.leads_ns)
        out["lead_samples"] = len(leads)
        if leads:
            leads.sort()
            out["lead_ms_median"] = round(statistics.median(leads) / 1e6, 1)
            out["lead_ms_p90"] = round(leads[min(len(leads) - 1, int(len(leads) * 0.9))] / 1e6, 1)
        return out
