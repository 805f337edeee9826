"""Small pieces the bot's modules share: client ids, the feed context, plugin-error locations.

Imports only the standard library and :mod:`attrs`.
"""

from __future__ import annotations

import inspect
import random
import sys
import types
from pathlib import Path
from typing import Any

import attrs

#: the type of an ``async def`` function's call result
_COROUTINE = types.CoroutineType
#: nanoseconds per second (every clock time in the bot is ns since the epoch)
NS = 1_000_000_000
#: the largest dYdX v4 client id: a fixed32 (dydxprotocol/v4-chain proto/dydxprotocol/clob/order.proto,
#: ``OrderId.client_id``)
MAX_CLIENT_ID = 2**32 - 1


class ClientIdAllocator:
    """Unique dYdX client ids (fixed32, 1..``MAX_CLIENT_ID``) for this bot instance.

    Starts at a random point so two fresh runs on one subaccount do not collide;
    :meth:`reserve` takes every id a journal or exchange already knows so an id
    is never reused after a restart. After ``MAX_CLIENT_ID`` the next id wraps to 1.

    :param start: the first id to try (default: random in 1..2**31).
    """

    def __init__(self, start: int | None = None):
        self._next = start if start is not None else random.randint(1, 2**31)
        self._used: set[int] = set()

    @property
    def high(self) -> int:
        """The next id :meth:`next` would try: every id handed out so far is below it (before a wrap).

        Checkpoints store it (``client_id_next``); :meth:`raise_to` puts it back.
        """
        return self._next

    def raise_to(self, value: int) -> None:
        """Never hand out an id below ``value`` again (restoring a checkpoint's :attr:`high`)."""
        self._next = max(self._next, int(value))

    def reserve(self, ids) -> None:
        """Mark ``ids`` (an iterable of ints or int-like strings) as used; the next id is above all of them.

        :raises ValueError: an id that is not an integer.
        """
        ids = [int(i) for i in ids]
        self._used.update(ids)
        if ids:
            top = max(ids)
            if top >= self._next:
                self._next = top + 1

    def next(self) -> int:
        """A client id not handed out or reserved before (int in 1..``MAX_CLIENT_ID``)."""
        while True:
            cid = self._next
            self._next = cid + 1 if cid < MAX_CLIENT_ID else 1
            if cid not in self._used:
                self._used.add(cid)
                return cid


@attrs.define
class FeedContext:
    """What a feed is constructed with: ``feed_cls(config_mapping, FeedContext(...))``.

    :param clock: the run's clock (``now_ns()``; a :class:`~perpbot.core.clock.SimulatedClock` in replays).
    :param tickers: the qualified tickers of the run (``"BTC-USD"``, ``"binance:BTC-USD"``).
    :param state_dir: the folder for the run's files.
    :param markets: filled by the feed: ticker -> :class:`~perpbot.core.model.MarketInfo`.
    :param options: ``{"live": bool}``.
    """

    clock: Any
    tickers: tuple
    state_dir: Path
    markets: dict = attrs.Factory(dict)
    options: dict = attrs.Factory(dict)


def halts_trading(exc: BaseException) -> bool:
    """True for an error an observer raises on purpose to stop the run: not contained like a bug.

    Such an error's class sets ``halts_trading = True``. (A plugin that wants the bot to halt
    in order — no new risk, orders canceled — calls the bot's ``halt`` instead of raising.)
    """
    return bool(getattr(exc, "halts_trading", False))


def error_location(exc: BaseException, folder: Path | None = None) -> str:
    """`` at FILE:LINE`` of the last traceback frame inside ``folder`` (default: the last frame).

    :param exc: a raised exception (with its ``__traceback__``).
    :param folder: a plugin's source folder; frames outside it (the bot, libraries) are passed over.
    :returns: the text, or "" when the exception has no traceback.
    """
    tb = exc.__traceback__
    last = inside = None
    while tb is not None:
        code = tb.tb_frame.f_code
        last = (code.co_filename, tb.tb_lineno)
        if folder is not None:
            try:
                if Path(code.co_filename).resolve().is_relative_to(folder):
                    inside = last
            except (OSError, ValueError):
                pass
        tb = tb.tb_next
    frame = inside or last
    return f" at {frame[0]}:{frame[1]}" if frame else ""


def source_folder(obj: Any) -> Path | None:
    """The folder of the package that defines ``obj``'s class (a plugin's own code), or None.

    A package's ``__init__`` or a module inside a package gives the package's folder; a lone
    module gives its own file.
    """
    module = sys.modules.get(type(obj).__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    path = Path(path).resolve()
    if path.name == "__init__.py" or "." in type(obj).__module__:
        return path.parent
    return path


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable (observer hooks may be sync or async); else return it."""
    if type(value) is _COROUTINE or inspect.isawaitable(value):  # an ``async def`` hook's coroutine: no inspect call
        return await value
    return value
