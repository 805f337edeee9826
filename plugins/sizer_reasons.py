"""The built-in sizers' reasons (:mod:`perpbot.plugins.sizers`): texts that say which limit
bound an order's size, formatted from Decimals only when a reason is read (each function
here is what a :class:`~perpbot.core.policies.LazyText` of a sizer calls).

Numbers are written short (:func:`fmt`: at most 8 decimals, trailing zeros dropped); they
are for people, never for arithmetic.
"""

from __future__ import annotations

from decimal import Decimal

from perpbot.core.model import ZERO, Market

ONE = Decimal(1)


def fmt(d: Decimal, places: int = 8) -> str:
    """Short human form of a Decimal for reasons (not used for money arithmetic)."""
    if not d.is_finite():
        return str(d)
    q = Decimal(1).scaleb(-places)
    s = format(d.quantize(q) if abs(d) < Decimal(10) ** 12 else d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def join(parts: tuple) -> str:
    """The reason's parts (text or :class:`~perpbot.core.policies.LazyText`) joined with ``"; "``."""
    return "; ".join(map(str, parts))


def skipped_text(parts: tuple, qty: Decimal, min_size: Decimal) -> str:
    """The reason of a size below the minimum order size (base units): the parts, then why it is skipped."""
    return join(parts) + f"; {fmt(qty)} is below the minimum order size {fmt(min_size)}: skipped"


def sized_text(parts: tuple, qty: Decimal, market: Market, notional: Decimal, margin: Decimal) -> str:
    """The reason of a size (base units of ``market``'s base asset) with its notional and initial margin (USD)."""
    return join(parts) + f" -> {fmt(qty)} {market.base} = {fmt(notional, 2)} USD notional, margin {fmt(margin, 2)} USD"


def leverage_text(max_lev: Decimal, equity: Decimal, other: Decimal, price: Decimal, k1: Decimal, q: Decimal) -> str:
    """The account leverage cap's part: ``K1 = (max_leverage x equity - other notional) / price`` and the quantity it allows."""
    return (
        f"account leverage cap {fmt(max_lev)}x: |position after| <= ({fmt(max_lev)} x equity {fmt(equity, 2)}"
        f" - other notional {fmt(other, 2)}) / {fmt(price)} = {fmt(max(k1, ZERO))}"
    ) + f" -> at most {fmt(q)}"


def margin_text(imf: Decimal, pos: Decimal, free: Decimal, price: Decimal, k2: Decimal, q: Decimal) -> str:
    """The initial margin's part: ``K2 = |position| + free collateral / (price x IMF)`` and the quantity it allows."""
    return (
        f"initial margin (max {fmt(ONE / imf)}x = 1/IMF {fmt(imf)}): |position after| <= |{fmt(pos)}| + free collateral "
        f"{fmt(free, 2)} / ({fmt(price)} x {fmt(imf)}) = {fmt(max(k2, ZERO))}"
    ) + f" -> at most {fmt(q)}"


def floored_text(step: Decimal, floored: Decimal) -> str:
    """The step flooring's part: the step (base units) and the floored quantity."""
    return f"floored to step {fmt(step)}: {fmt(floored)}"


def fixed_notional_text(notional: Decimal, price: Decimal, qty: Decimal) -> str:
    """The fixed-notional sizer's own part: ``notional (USD) / price = quantity (base units)``."""
    return f"fixed notional {fmt(notional, 2)} USD / price {fmt(price)} = {fmt(qty)}"
