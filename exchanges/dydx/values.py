"""Value checks for the indexer's decimal strings: what the venue can have sent.

Prices, sizes and rates arrive as decimal strings (the indexer renders the chain's
``uint64`` subticks and quantums as human decimals; v4-chain
``proto/dydxprotocol/clob/order.proto``, message ``Order``, fields ``subticks`` and
``quantums``). So a price must be a finite, positive decimal string, a size a finite,
non-negative one, a rate a finite one, each within ``10**±EXP_MAX``; anything else raises
:class:`BadValue` naming the field and the value (the rule of the Binance replay parser,
``perpbot.exchanges.replay.binance``).

Used by :mod:`perpbot.exchanges.dydx.books`, :mod:`perpbot.exchanges.dydx.market_channels`
and the account modules. Imports only the standard library.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

#: |decimal exponent| of a sane price, size or rate (rejects "1e999999999"), as the Binance parser
EXP_MAX = 30
#: compared against as a Decimal (a comparison with the int 0 converts it each time)
_ZERO = Decimal(0)
#: distinct price (and, separately, size) strings cached by the parser before the cache is
#: cleared (about 200 bytes each: a bounded ~13 MB for both, however long the run)
CACHE_MAX = 1 << 15


def D(value: Any) -> Decimal:
    """Exact Decimal from one of the indexer's decimal strings (ints accepted).

    No range or sign check (see :func:`price_value` / :func:`size_value` for those).

    :raises InvalidOperation: for anything else (a float, None, a bool), and for a string
        that is not a decimal.
    """
    if isinstance(value, str):
        return Decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise InvalidOperation(f"not a decimal string: {value!r}")


class BadValue(ValueError):
    """A value the venue cannot have sent (a non-finite or non-positive price, a negative or
    non-finite size, ...): the message carrying it is rejected and counted. The text names
    the field and the value."""


def decimal_value(value: Any, what: str) -> Decimal:
    """A finite decimal string (any sign) within ``10**±EXP_MAX`` -> Decimal.

    :param what: the field's name, for the error (e.g. ``"nextFundingRate"``).
    :raises BadValue: naming ``what`` and the value otherwise.
    """
    try:
        d = Decimal(value) if type(value) is str else D(value)  # the common case without a call
    except (InvalidOperation, ValueError):
        raise BadValue(f"{what} {value!r} is not a decimal string") from None
    if not d.is_finite():
        raise BadValue(f"{what} {value!r} must be finite")
    if d and not -EXP_MAX <= d.adjusted() <= EXP_MAX:
        raise BadValue(f"{what} {value!r} is out of range")
    return d


def price_value(value: Any, what: str = "price") -> Decimal:
    """A finite, positive decimal string -> Decimal (a price, USD per base unit).

    :raises BadValue: naming ``what`` and the value otherwise (NaN, Infinity, 0, -5, 1e99, 1.5 as a float).
    """
    d = decimal_value(value, what)
    if d <= _ZERO:
        raise BadValue(f"{what} {value!r} must be positive")
    return d


def size_value(value: Any, what: str = "size", *, zero_ok: bool = True) -> Decimal:
    """A finite decimal string >= 0 (> 0 unless ``zero_ok``) -> Decimal (base units).

    :raises BadValue: naming ``what`` and the value otherwise.
    """
    d = decimal_value(value, what)
    if d < _ZERO or (not zero_ok and not d):
        raise BadValue(f"{what} {value!r} must be {'non-negative' if zero_ok else 'positive'}")
    return d


def parse_iso_ns(text: str) -> int:
    """The indexer's UTC time ``"2024-08-12T14:06:01.172Z"`` -> ns since the epoch.

    Fractions are cut to 9 digits; no fraction means ``.0``.

    :raises ValueError: for text not in ``YYYY-MM-DDTHH:MM:SS[.f]Z`` form.
    :raises AttributeError: for a value that is not a string.
    """
    t = text.rstrip("Z")
    if "." in t:
        main, frac = t.split(".", 1)
    else:
        main, frac = t, "0"
    dt = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    secs = calendar.timegm(dt.timetuple())
    frac = (frac + "000000000")[:9]
    return secs * 1_000_000_000 + int(frac)


def levels(raw: Iterable | None, side: str = "level") -> list[tuple[Decimal, Decimal]]:
    """Indexer book levels (``{price,size}`` dicts or ``[price, size]`` pairs) -> ``[(price, size)]``.

    Prices in USD, sizes in base units; a size ``0`` deletes the level (docs
    ``interaction/data/watch-orderbook.mdx``). ``None`` is no levels.

    :param side: ``"bid"`` / ``"ask"``, for the error text.
    :raises BadValue: for a value that is not a list, a level that is not a pair, a price
        that is not finite and positive, or a size that is not finite and >= 0.
    """
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise BadValue(f"{side}s {raw!r} is not a list of levels")
    out = []
    for lv in raw:
        try:
            p, q = (lv["price"], lv["size"]) if isinstance(lv, dict) else (lv[0], lv[1])
        except (KeyError, IndexError, TypeError):
            raise BadValue(f"{side} {lv!r} is not a (price, size) pair") from None
        out.append((price_value(p, f"{side} price"), size_value(q, f"{side} size")))
    return out
