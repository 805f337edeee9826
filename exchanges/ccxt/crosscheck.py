"""The periodic REST cross-check of a WebSocket-built book (ccxt venues).

While a book's socket is live, :class:`~perpbot.exchanges.ccxt.feed.CcxtFeed` fetches the
venue's REST book every ``crosscheck_s`` and asks a :class:`BookCrossCheck` whether its top of
book (best bid and ask, price and size) agrees with the book the socket built. The socket and
the REST answer are never taken at one instant, so updates in flight either way are allowed
for:

- when both carry the venue's sequence number (ccxt's ``nonce``: Binance USD-M
  ``lastUpdateId`` of ``GET /fapi/v1/depth`` and the diff stream's ``u``, ``ccxt/pro/binance.py``
  ``handle_order_book_message``), the REST top must equal the socket's top at that very
  sequence number when the socket passed through it;
- otherwise the REST top must equal the socket's top at some moment between the last update
  before the request was sent and ``grace_s`` after its answer came (the socket may lag or lead
  the REST endpoint by a few updates).

One disagreement is counted, not acted on: a REST answer can fall between two aggregated
socket updates (Binance pushes diffs every 100 ms). ``strikes`` disagreements in a row are a
real divergence: the feed logs the reason, reports the book unhealthy and resyncs it.
"""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal
from typing import Any

#: (best bid price, its size, best ask price, its size); None entries for an empty side
Top = tuple


def top_of(ob: dict) -> Top:
    """The top of a ccxt order book (``{"bids": [[price, size, ...], ...], "asks": ...}``) as
    ``(bid, bid_size, ask, ask_size)`` Decimals (``Decimal(str(x))`` of ccxt's floats), None for an
    empty side."""
    out: list[Any] = []
    for side in ("bids", "asks"):
        levels = ob.get(side) or []
        if levels:
            out += [Decimal(str(levels[0][0])), Decimal(str(levels[0][1]))]
        else:
            out += [None, None]
    return tuple(out)


def describe(top: Top) -> str:
    """``bid 65000.1 x 0.5 / ask 65000.3 x 0.7`` (for logs and statuses)."""
    return f"bid {top[0]} x {top[1]} / ask {top[2]} x {top[3]}"


class BookCrossCheck:
    """The socket's recent tops of one book, and the verdict on a REST top (see the module docstring).

    :param strikes: disagreements in a row that make a divergence (>= 1).
    :param grace_s: how long after a REST answer a socket update may still bring the same top, seconds.
    :param keep: socket tops remembered (a ring buffer).

    Counters: ``checks``, ``disagreements`` (all), ``in_a_row``.
    """

    def __init__(self, *, strikes: int = 2, grace_s: float = 1.0, keep: int = 512):
        self.strikes = max(1, int(strikes))
        self.grace_s = float(grace_s)
        self.history: deque = deque(maxlen=keep)  # (monotonic s, nonce or None, Top)
        self.checks = 0
        self.disagreements = 0
        self.in_a_row = 0

    def record(self, ob: dict, at: float | None = None) -> None:
        """Remember the socket book's top after an update (``at``: monotonic seconds, default now)."""
        top = top_of(ob)
        if self.history and self.history[-1][2] == top and self.history[-1][1] == ob.get("nonce"):
            return
        self.history.append((time.monotonic() if at is None else at, ob.get("nonce"), top))

    def reset(self) -> None:
        """Forget the socket's tops and the run of disagreements (after a resync)."""
        self.history.clear()
        self.in_a_row = 0

    def judge(self, rest: dict, sent: float, answered: float) -> str | None:
        """Compare a REST book with the socket's tops; call it ``grace_s`` after ``answered``.

        :param rest: ccxt's ``fetch_order_book`` answer (``nonce`` when the venue gives one).
        :param sent: / :param answered: monotonic seconds around the request.
        :returns: None when they agree (or nothing can be compared yet), else why they do not;
            the caller resyncs when :attr:`in_a_row` reaches :attr:`strikes`.
        """
        want = top_of(rest)
        before = [h for h in self.history if h[0] <= sent]
        window = ([before[-1]] if before else []) + [h for h in self.history if sent < h[0] <= answered + self.grace_s]
        if not window:
            return None
        self.checks += 1
        nonce = rest.get("nonce")
        same_seq = [h for h in self.history if nonce is not None and h[1] == nonce]
        if same_seq:
            ok = same_seq[-1][2] == want
            seen = same_seq[-1][2]
            how = f"at sequence {nonce}"
        else:
            ok = any(h[2] == want for h in window)
            seen = window[-1][2]
            how = f"over {len(window)} socket update(s) around the request"
        if ok:
            self.in_a_row = 0
            return None
        self.disagreements += 1
        self.in_a_row += 1
        return f"REST top {describe(want)} vs socket {describe(seen)} ({how})"

    @property
    def diverged(self) -> bool:
        """True once :attr:`in_a_row` disagreements reach :attr:`strikes`."""
        return self.in_a_row >= self.strikes
