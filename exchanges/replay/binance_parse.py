"""Binance recordings, message level: recognising a file and turning its strings into numbers.

Part of the Binance reader (:mod:`perpbot.exchanges.replay.binance`, which re-exports the
public names here). This module knows the LINE and VALUE format only, not the book:

- :func:`looks_like`, :func:`sniff_symbols`, :func:`first_ts`: what a file is, which venue
  symbols it names and when it starts, from its first bytes;
- :func:`coinm_contract_usd`: the USD value of one COIN-M contract (quantities of COIN-M
  symbols are contracts, converted to base units by :class:`ValueParser`);
- :class:`ValueParser`: price and size strings -> validated :class:`~decimal.Decimal`,
  each distinct string converted once and then served from a bounded cache (the
  reader's hot loop reads the caches directly);
- :func:`snapshot_symbol`: the symbol a REST depth snapshot belongs to (USD-M snapshots
  carry none);
- :func:`describe_message`: a message's kind for error text.

A bad value raises :class:`BadValue` (message without a location); the reader adds
``file:line`` and raises :class:`~perpbot.core.errors.DataError`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path

from perpbot.core.model import Levels
from perpbot.exchanges.replay.lineio import LineFile

#: most distinct price (and, separately, size) strings cached before the cache is cleared: about
#: 200 bytes each (the string and its Decimal), so at most ~13 MB for both caches however long
#: the recording (a long run meets ever new size strings; peak RSS must stay flat). The
#: embedded ETHUSDT sample has 42k distinct depth sizes, so its size cache is cleared once
#: mid-run; 64k would spare ~19k conversions but costs ~6 MB of peak RSS, which the
#: pipeline's 100 MB target cannot spare.
CACHE_MAX = 1 << 15
#: most distinct raw price bytes (lines read by :data:`FAST_LINE`) cached: quotes and trades
#: meet few prices (2.7k in the embedded sample), ~80 bytes each beyond the text cache's
BYTES_CACHE_MAX = 1 << 13
#: largest |decimal exponent| of a sane price or size (rejects e.g. "1e999999999")
EXP_MAX = 30

_SYMBOL_RE = re.compile(rb'"(?:s|symbol)"\s*:\s*"([A-Za-z0-9_]+)"')

_INT = rb"(?:0|[1-9][0-9]*)"  # a JSON integer without sign (RFC 8259: no leading zeros)
_NUM = rb'"([0-9.]+)"'  # a price or size string; the Decimal conversion validates it
#: The two commonest line shapes, exactly as Binance's combined streams send them (USD-M
#: ``<symbol>@bookTicker`` and ``<symbol>@trade``, compact JSON, fields in the venue's order;
#: see the embedded sample ``examples/data/binance_usdm``) after the ``<recv_ns> `` column.
#: A line that matches is read without a JSON decoder (see :meth:`BinanceRecording.events`);
#: any other line (another order, spaces, escapes, other types, bare events) is decoded in
#: full, so the pattern only admits lines whose every byte it accounts for. Groups: 1 receive
#: ns; bookTicker 2 symbol, 3 ``b``, 4 ``B``, 5 ``a``, 6 ``A``; trade 7 symbol, 8 ``t``,
#: 9 ``p``, 10 ``q``, 11 ``m``.
FAST_LINE = re.compile(
    rb'([0-9]+) \{"stream":"[A-Za-z0-9_@.-]*","data":\{"e":"(?:'
    rb'bookTicker","u":' + _INT + rb',"s":"(\w+)","b":' + _NUM + rb',"B":' + _NUM + rb',"a":' + _NUM
    + rb',"A":' + _NUM + rb',"T":' + _INT + rb',"E":' + _INT
    + rb'|trade","E":' + _INT + rb',"T":' + _INT + rb',"s":"(\w+)","t":(' + _INT + rb'),"p":' + _NUM
    + rb',"q":' + _NUM + rb',"X":"MARKET","m":(true|false))\}\}'
).fullmatch


class BadValue(Exception):
    """A bad value inside one line (message text only); the reader adds file:line and raises DataError."""


def looks_like(head: bytes) -> bool:
    """True when the first line of ``head`` (a file's first bytes) is ``<integer> {json}``: a Binance raw recording."""
    line = head.split(b"\n", 1)[0].strip()
    sp = line.find(b" ")
    return sp > 0 and line[:sp].isdigit() and line[sp + 1 : sp + 2] == b"{"


def sniff_symbols(head: bytes) -> list[str]:
    """Venue symbols named in ``head`` (``"s":"BTCUSDT"`` or ``"symbol":...``), in order of first appearance."""
    found = []
    for m in _SYMBOL_RE.finditer(head):
        s = m.group(1).decode()
        if s not in found:
            found.append(s)
    return found


def first_ts(path: str | Path) -> int:
    """Receive time (ns since the epoch) of a recording's first line; 0 when it has none (it sorts first).

    :raises DataError: a missing or unreadable file (from :class:`~.lineio.LineFile`).
    """
    for line in LineFile(path).head(1 << 16).split(b"\n"):
        sp = line.find(b" ")
        if sp > 0 and line[:sp].isdigit():
            return int(line[:sp])
        if line.strip():
            break
    return 0


def coinm_contract_usd(symbol: str) -> Decimal | None:
    """USD value of one COIN-M contract of ``symbol`` (Binance: 100 for BTCUSD_*, 10 for the others).

    None for a USD-M symbol (no ``_`` in the name: its quantities are already base units).
    Source: Binance COIN-M contract specifications (contract size per symbol).
    """
    if "_" not in symbol:
        return None
    return Decimal(100) if symbol.startswith("BTCUSD") else Decimal(10)


_ZERO = Decimal(0)


def _decimal(s, what: str) -> Decimal:
    """A value string -> Decimal, unchecked beyond being a number (a cache miss's first step).

    :raises BadValue: ``s`` is not a string, or not a number (naming ``what`` and the value).
    """
    if type(s) is not str:
        raise BadValue(f"{what} {s!r} is not a decimal string")
    try:
        return Decimal(s)
    except InvalidOperation:
        raise BadValue(f"{what} {s!r} is not a number") from None


class _PriceCache(dict):
    """``str -> Decimal`` price cache whose misses convert and validate (it never holds a bad value).

    ``cache[s]`` is one C-level dict lookup for a string seen before, so :func:`map` over
    ``cache.__getitem__`` runs without a Python frame per hit; a miss (once per distinct
    string) converts with :func:`_decimal` and checks the range. Cleared at :data:`CACHE_MAX`
    entries.
    """

    __slots__ = ()

    def __missing__(self, s):
        d = _decimal(s, "price")
        if not d.is_finite() or d <= _ZERO:
            raise BadValue(f"price {s!r} must be finite and positive")
        if not -EXP_MAX <= d.adjusted() <= EXP_MAX:
            raise BadValue(f"price {s!r} is out of range")
        if len(self) >= CACHE_MAX:
            self.clear()
        self[s] = d
        return d


class _SizeCache(dict):
    """``str -> Decimal`` size cache, like :class:`_PriceCache` (zero allowed: it deletes a level).

    A zero size's byte patterns (see :attr:`ValueParser.zero_patterns`) are added to
    ``zero_patterns``. Cleared at :data:`CACHE_MAX` entries.
    """

    __slots__ = ("zero_patterns",)

    def __missing__(self, s):
        d = _decimal(s, "size")
        if not d.is_finite() or d < _ZERO:
            raise BadValue(f"size {s!r} must be finite and not negative")
        if d:
            if not -EXP_MAX <= d.adjusted() <= EXP_MAX:
                raise BadValue(f"size {s!r} is out of range")
        else:  # count deletes on the raw line (compact and spaced JSON)
            zp = self.zero_patterns
            for pat in (b'","' + s.encode() + b'"]', b'", "' + s.encode() + b'"]'):
                if pat not in zp:
                    zp.append(pat)
        if len(self) >= CACHE_MAX:
            self.clear()
        self[s] = d
        return d


class _BytesCache(dict):
    """``bytes -> Decimal`` cache in front of a text cache (``text``: a :class:`_PriceCache`).

    For values cut out of a raw line (:data:`FAST_LINE`): a miss decodes the bytes (ASCII
    digits and dots, by the pattern) and asks the text cache, so a value gets the same
    Decimal object whichever way its line was read, and is validated by the same code
    (raising the same :class:`BadValue`). Cleared at :data:`BYTES_CACHE_MAX` entries.
    """

    __slots__ = ("text",)

    def __missing__(self, b):
        d = self.text[b.decode()]
        if len(self) >= BYTES_CACHE_MAX:
            self.clear()
        self[b] = d
        return d


class ValueParser:
    """Converts price and size strings to validated Decimals, once per distinct string.

    The caches :attr:`prices` and :attr:`sizes` (``str -> Decimal``) are public so the
    reader's hot loop can index them directly: ``prices[s]`` returns the cached Decimal,
    or converts and validates ``s`` on a miss (raising :class:`BadValue` for a bad value,
    exactly like :meth:`price`/:meth:`size`). :attr:`prices_b` does the same for price
    ``bytes`` cut out of a raw line, through the text cache (sizes of such lines are too
    varied for a second cache to pay: they are decoded and looked up as text). The text
    caches are cleared when they reach :data:`CACHE_MAX` entries, :attr:`prices_b` at
    :data:`BYTES_CACHE_MAX`. :attr:`zero_patterns` are the byte patterns of a zero size
    as it appears closing a ``[price, size]`` pair on a raw line (compact and spaced
    JSON), for counting deletes without parsing them twice.
    """

    __slots__ = ("prices", "sizes", "prices_b", "zero_patterns", "_pget", "_sget")

    def __init__(self) -> None:
        self.prices: dict[str, Decimal] = _PriceCache()
        self.sizes: dict[str, Decimal] = _SizeCache()
        self.zero_patterns: list[bytes] = []
        self.sizes.zero_patterns = self.zero_patterns
        #: prices keyed by their raw bytes (lines read by :data:`FAST_LINE`)
        self.prices_b: dict[bytes, Decimal] = _BytesCache()
        self.prices_b.text = self.prices
        self._pget = self.prices.__getitem__
        self._sget = self.sizes.__getitem__

    def price(self, s) -> Decimal:
        """A price string -> Decimal (quote currency per base unit, as the venue sent it), cached.

        :raises BadValue: not a string, not a number, not finite and positive, or an exponent
            beyond :data:`EXP_MAX`.
        :raises TypeError: an unhashable value (a list, say).
        """
        return self.prices[s]

    def size(self, s) -> Decimal:
        """A size string -> Decimal (base units, or contracts for COIN-M; 0 deletes a level), cached.

        :raises BadValue: not a string, not a number, negative or not finite, or an exponent
            beyond :data:`EXP_MAX`.
        :raises TypeError: an unhashable value (a list, say).
        """
        return self.sizes[s]

    def levels(self, raw, contract_usd: Decimal | None) -> Levels | tuple:
        """``[[price, size], ...]`` -> ``(price, size)`` Decimal levels with sizes in base units.

        USD-M levels are converted without a Python frame per level: the pairs are
        transposed with :func:`zip` and each column looked up in its cache by one
        :func:`operator.itemgetter` call (hits are C dict lookups; a miss converts and
        validates once); the result is a :class:`~perpbot.core.model.Levels` holding the
        two columns. COIN-M levels (sizes converted one by one) are a tuple of pairs.

        :param contract_usd: USD per COIN-M contract (sizes are converted with
            ``contracts * contract_usd / price``), or None for USD-M (sizes as sent).
        :raises BadValue: a bad price or size; ValueError/TypeError for a level that is not a pair.
        """
        if contract_usd is None:
            if not raw:
                return ()
            if type(raw) is not list:
                raise TypeError(f"levels must be a list of [price, size] pairs, got {type(raw).__name__}")
            # zip(*raw) gives as many columns as the shortest level has items: unpacking two
            # means no level is shorter than 2, and then the lengths add up to 2n only if none is longer
            ps, qs = zip(*raw)  # ValueError for a level shorter than 2 (or when all are longer)
            if sum(map(len, raw)) != 2 * len(ps):
                raise ValueError("every level must be a [price, size] pair")
            if len(ps) == 1:
                return Levels((self._pget(ps[0]),), (self._sget(qs[0]),))
            # itemgetter(*keys)(cache): one C loop of lookups (a miss still calls __missing__);
            # the two columns are kept as they are (no pair built per level)
            return Levels(itemgetter(*ps)(self.prices), itemgetter(*qs)(self.sizes))
        prices = self.prices
        sizes = self.sizes
        out = []
        append = out.append
        for p, q in raw:
            pd = prices[p]
            qd = sizes[q]
            if qd:
                qd = qd * contract_usd / pd
            append((pd, qd))
        return tuple(out)



def snapshot_symbol(data: dict, seen: list[str], path: Path) -> str:
    """The venue symbol a REST depth snapshot belongs to.

    Its own ``symbol``/``s`` field; else the one symbol seen so far in the stream
    (``seen``); else, when nothing was seen yet, the file name without its date parts
    (``btcusdt_20240808.gz`` -> ``BTCUSDT``).

    :raises BadValue: no symbol in a stream that has several, or none to be had at all.
    """
    sym = data.get("symbol") or data.get("s")
    if sym:
        return sym
    if len(seen) == 1:
        return seen[0]
    if len(seen) > 1:
        raise BadValue(f"depth snapshot without a symbol in a file with several symbols ({', '.join(seen)})")
    # snapshot first, no symbol: take it from the file name (e.g. btcusdt_20240808.gz)
    stem = path.name.split(".")[0].split("_")
    name = "_".join(p for p in stem if not p.isdigit()).upper()
    if not name:
        raise BadValue("depth snapshot without a symbol and no symbol in the file name")
    return name


def describe_message(msg) -> str:
    """What a decoded line is, for error text: ``"depth snapshot"``, its event type ``e``, or its wrong shape."""
    if not isinstance(msg, dict):
        return f"message (a JSON {type(msg).__name__}, expected an object)"
    data = msg.get("data", msg)
    if not isinstance(data, dict):
        return "message ('data' is not an object)"
    if "lastUpdateId" in data:
        return "depth snapshot"
    return f"{data.get('e') or 'message'}"
