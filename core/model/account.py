"""Account values: positions, balances, funding payments and liquidations.

Sizes base units (signed for positions), money USD (USDC), funding rates per hour.
Import these names from :mod:`perpbot.core.model`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from perpbot.core.model.enums import MarginMode, Side
from perpbot.core.model.values import ZERO


@attrs.frozen
class FundingPayment:
    """Funding booked on a position: ``amount`` USD, positive = received.

    ``amount = -size * oracle_price * rate_1h`` (docs ``funding.mdx``), per hour.
    """

    ticker: str
    ts_ns: int
    size: Decimal
    oracle_price: Decimal
    rate_1h: Decimal
    amount: Decimal
    venue: str = ""


@attrs.frozen
class CollateralTransfer:
    """USDC the venue client moved between subaccounts or between the wallet and a subaccount
    (e.g. into an isolated position's child subaccount and back; dYdX ``MsgCreateTransfer``).

    :param ts_ns: when it was sent (bot clock, ns).
    :param kind: ``TRANSFER`` (subaccount -> subaccount), ``DEPOSIT`` (wallet -> subaccount)
        or ``WITHDRAWAL`` (subaccount -> wallet).
    :param sender: / ``recipient``: ``"address/number"`` for a subaccount, the address for a wallet.
    :param amount: USD (USDC), > 0.
    :param reason: why it was sent.
    :param txhash: the venue's transaction id ('' when none was accepted).
    :param status: ``confirmed`` (the venue shows it) or ``failed``.
    :param error: why it failed ('' when confirmed).
    """

    ts_ns: int
    kind: str
    sender: str
    recipient: str
    amount: Decimal
    reason: str
    txhash: str
    status: str
    error: str = ""
    venue: str = ""

    @property
    def ok(self) -> bool:
        """True when the venue showed the move (``status == "confirmed"``)."""
        return self.status == "confirmed"


@attrs.frozen
class Liquidation:
    """The venue (or simulator) liquidated a position; ``fee`` to the insurance fund, USD.

    ``size`` base units liquidated (signed as the position was), ``price`` the fill
    price USD, ``reason`` the trigger (e.g. maintenance margin breached).
    """

    ticker: str
    ts_ns: int
    size: Decimal
    price: Decimal
    fee: Decimal
    reason: str = ""
    venue: str = ""


@attrs.frozen
class Position:
    """A perpetual position.

    :param size: signed base units (positive long, negative short).
    :param entry_price: average entry price, USD.
    :param realized_pnl: closed PnL, USD, before fees and funding.
    :param fees: fees paid on this market, USD.
    :param funding: funding received (+) or paid (-) on this market, USD.
    """

    ticker: str
    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    margin_mode: MarginMode = MarginMode.CROSS
    venue: str = ""

    @property
    def side(self) -> Side | None:
        """BUY for a long, SELL for a short, None when flat."""
        if self.size > 0:
            return Side.BUY
        if self.size < 0:
            return Side.SELL
        return None

    def notional(self, price: Decimal) -> Decimal:
        """Unsigned position value at ``price`` (USD): ``|size| * price``."""
        return abs(self.size) * price

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """Open PnL at ``mark`` (USD), before fees and funding: ``size * (mark - entry_price)``."""
        return self.size * (mark - self.entry_price)


@attrs.frozen
class Balance:
    """Account summary, USD.

    :param collateral: USDC asset position (signed; dYdX's ``Q``).
    :param equity: net collateral = collateral + sum(size * mark).
    :param free_collateral: equity - total initial margin.
    :param initial_margin: / ``maintenance_margin``: totals over positions.
    """

    collateral: Decimal
    equity: Decimal
    free_collateral: Decimal
    initial_margin: Decimal = ZERO
    maintenance_margin: Decimal = ZERO
    ts_ns: int = 0

    @property
    def margin_usage(self) -> Decimal:
        """``initial_margin / equity`` (a fraction); ``Decimal("Infinity")`` when equity <= 0."""
        return self.initial_margin / self.equity if self.equity > 0 else Decimal("Infinity")

    @property
    def available(self) -> Decimal:
        """Free collateral floored at zero (what a new order can use)."""
        return max(self.free_collateral, ZERO)
