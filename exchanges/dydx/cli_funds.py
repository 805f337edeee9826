"""``runbot.py dydx deposit | withdraw | transfer``: move USDC between the wallet and its
subaccounts from the command line (issue 12.6).

    runbot.py dydx deposit  --amount 100 [--subaccount 0]          wallet -> subaccount
    runbot.py dydx withdraw --amount 100 [--subaccount 0]          subaccount -> wallet
    runbot.py dydx transfer --amount 100 --from 0 --to 128         subaccount -> subaccount
        [--network mainnet|testnet|custom --indexer-rest URL --node HOST:PORT]
        [--mnemonic-file FILE] [--live]

Each signs with the main wallet (``$DYDX_MNEMONIC`` or ``--mnemonic-file``, mode 600) and
sends dydx-v4-client 1.1.5's own ``NodeClient.deposit`` / ``withdraw`` / ``transfer``
(:mod:`perpbot.exchanges.dydx.transfers`), waits until the indexer shows the move, and
prints the USDC of the wallet and of the subaccount(s) before and after. A mainnet account
needs ``--live``. Refused before anything is sent, each with one ``error:`` line: an amount
that is not a positive number of USDC (at most 6 decimals); a withdrawal or transfer larger
than the sending subaccount's free collateral (comlink's ``freeCollateral``); a deposit
larger than the wallet's USDC; a subaccount number outside 0..128000.

**Noble -> dYdX (IBC).** Not built: the leg needs an ``ibc.applications.transfer.v1.MsgTransfer``
signed on the Noble chain; v4-proto 8.2.0 ships no ``ibc`` package (nothing to encode the
message with), and dydx-v4-client 1.1.5's ``NobleClient`` cannot sign (it never sets its
``chain_id``, calls the async ``get_account`` without awaiting it, and derives a ``dydx1``
address, not a ``noble1`` one; ``dydx_v4_client/indexer/rest/noble_client.py``). The README
gives the manual steps.

The commands hang off the ``dydx`` group of :mod:`perpbot.exchanges.dydx.cli_keys`
(:data:`~perpbot.exchanges.dydx.cli_keys.DYDX_APP`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from perpbot.core.errors import ConfigError, InsufficientMargin, LiveTradingNotConfirmed, PerpbotError
from perpbot.exchanges.dydx.cli_keys import (DYDX_APP, ChainId, Live, MnemonicFile, Network, NodeOpt, Rest, Verbose, Ws,
                                            run_command)

Amount = Annotated[str, typer.Option("--amount", help="USDC to move, e.g. 100 or 12.5 (at most 6 decimals).")]
Sub = Annotated[int, typer.Option("--subaccount", help="Subaccount number (0..128000; isolated children are 128 + ...).")]


def parse_amount(text: str) -> Decimal:
    """``--amount`` text -> Decimal USDC (> 0, at most 6 decimals: USDC's quote quantum).

    :raises ConfigError: anything else, naming the option and the value.
    """
    try:
        d = Decimal(str(text).strip())
    except InvalidOperation:
        raise ConfigError(f"--amount: {text!r} is not a number of USDC") from None
    if not d.is_finite() or d <= 0:
        raise ConfigError(f"--amount: {text!r} must be a positive number of USDC")
    if d != d.quantize(Decimal("0.000001")):
        raise ConfigError(f"--amount: {text!r} has more than 6 decimals (USDC's smallest unit is 0.000001)")
    return d


def check_number(option: str, n: int) -> int:
    """A subaccount number in 0..128000.

    :raises ConfigError: outside that range, naming the option.
    """
    if not 0 <= n <= 128_000:
        raise ConfigError(f"{option}: subaccount {n} must be 0..128000")
    return n


def settings_of(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file):
    """:class:`~perpbot.exchanges.dydx.config.DydxSettings` for one account command.

    :raises ConfigError: a bad setting (as the config's own checks say).
    """
    from perpbot.exchanges.dydx.config import DydxSettings

    cfg = {"network": network, "indexer_rest": indexer_rest, "indexer_ws": indexer_ws, "node": node,
           "chain_id": chain_id, "mnemonic_file": mnemonic_file}
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items() if v is not None}
    return DydxSettings.from_config(cfg)


class Funds:
    """The wallet's node gateway, the indexer and the transfer sender, for one command.

    :param settings: endpoints, keys.
    """

    def __init__(self, settings):
        self.settings = settings
        self.gw: Any = None
        self.rest: Any = None
        self.transfers: Any = None

    async def __aenter__(self) -> "Funds":
        import time

        from perpbot.exchanges.dydx.node import NodeGateway
        from perpbot.exchanges.dydx.rest import IndexerRest
        from perpbot.exchanges.dydx.secrets import load_mnemonic
        from perpbot.exchanges.dydx.transfers import Transfers

        s = self.settings
        self.gw = NodeGateway(s, load_mnemonic(s.mnemonic_env, s.mnemonic_file))
        await self.gw.connect(s.address)
        self.rest = IndexerRest(s)
        self.transfers = Transfers(self.gw, self.rest, self.gw.address, now_ns=time.time_ns)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.gw is not None:
            await self.gw.close()

    async def wallet_usdc(self) -> Decimal:
        """The wallet's bank USDC (``cosmos.bank`` ``Balance`` of the USDC denom), USD."""
        from perpbot.exchanges.dydx.config import USDC_DENOM

        addr = self.gw.address
        resp = await self.gw.query(lambda node: node.get_account_balance(addr, USDC_DENOM), "bank balance")
        return Decimal(int(resp.balance.amount or 0)) / Decimal(10**6)

    async def subaccount(self, n: int) -> tuple[Decimal, Decimal]:
        """``(USDC, free collateral)`` of subaccount ``n`` from the indexer (0, 0 when unknown), USD."""
        sub = await self.rest.subaccount(self.gw.address, n)
        usdc = Decimal(0)
        a = (sub.get("assetPositions") or {}).get("USDC")
        if a:
            usdc = abs(Decimal(str(a["size"]))) * (-1 if a.get("side") == "SHORT" else 1)
        return usdc, Decimal(str(sub.get("freeCollateral") or "0"))


def fmt_usdc(d: Decimal) -> str:
    """A USDC amount without exponent or trailing zeros (``120.500000`` -> ``120.5``)."""
    return format(d.normalize(), "f") if d else "0"


def _show(label: str, before: Decimal, after: Decimal) -> str:
    return f"  {label:<22} {fmt_usdc(before):>16} -> {fmt_usdc(after):>16} USDC"


async def run_move(kind: str, settings, amount: Decimal, *, sender: int | None, recipient: int | None,
                   live: bool, echo=typer.echo) -> None:
    """One ``deposit`` (``recipient``), ``withdraw`` (``sender``) or ``transfer`` (both).

    :raises LiveTradingNotConfirmed: mainnet without ``live``.
    :raises InsufficientMargin: more than the sender's free collateral (or the wallet's USDC).
    :raises PerpbotError: the move failed (the reason in the message).
    """
    if settings.is_mainnet and not live:
        raise LiveTradingNotConfirmed("this moves USDC on a dYdX mainnet account: pass --live to confirm")
    async with Funds(settings) as f:
        addr = f.gw.address
        wallet0 = await f.wallet_usdc()
        subs = [n for n in (sender, recipient) if n is not None]
        before = {n: await f.subaccount(n) for n in subs}
        if sender is not None and amount > before[sender][1]:
            raise InsufficientMargin(f"--amount {amount}: more than the free collateral of subaccount {sender} "
                                     f"({fmt_usdc(before[sender][1])} USDC)")
        if kind == "deposit" and amount > wallet0:
            raise InsufficientMargin(f"--amount {amount}: more than the wallet's {fmt_usdc(wallet0)} USDC ({addr})")
        if kind == "deposit":
            rec = await f.transfers.deposit(recipient, amount, reason="runbot.py dydx deposit")
        elif kind == "withdraw":
            rec = await f.transfers.withdraw(sender, amount, reason="runbot.py dydx withdraw")
        else:
            rec = await f.transfers.transfer(sender, recipient, amount, reason="runbot.py dydx transfer")
        if not rec.ok:
            raise PerpbotError(f"{kind} of {amount} USDC failed: {rec.error}")
        wallet1 = await f.wallet_usdc()
        after = {n: await f.subaccount(n) for n in subs}
        echo(f"{kind} of {fmt_usdc(rec.amount)} USDC {rec.sender} -> {rec.recipient}: done (tx {rec.txhash})")
        echo(_show(f"wallet {addr[:12]}...", wallet0, wallet1))
        for n in subs:
            echo(_show(f"subaccount {n}", before[n][0], after[n][0]))


@DYDX_APP.command("deposit")
def deposit_command(
    amount: Amount, subaccount: Sub = 0, network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None,
    node: NodeOpt = None, chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, live: Live = False,
    verbose: Verbose = False,
):
    """Move USDC from the wallet into a subaccount (MsgDepositToSubaccount)."""

    async def go():
        a = parse_amount(amount)
        s = settings_of(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file)
        await run_move("deposit", s, a, sender=None, recipient=check_number("--subaccount", subaccount), live=live)

    run_command(go(), verbose)


@DYDX_APP.command("withdraw")
def withdraw_command(
    amount: Amount, subaccount: Sub = 0, network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None,
    node: NodeOpt = None, chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, live: Live = False,
    verbose: Verbose = False,
):
    """Move USDC from a subaccount to the wallet (MsgWithdrawFromSubaccount)."""

    async def go():
        a = parse_amount(amount)
        s = settings_of(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file)
        await run_move("withdraw", s, a, sender=check_number("--subaccount", subaccount), recipient=None, live=live)

    run_command(go(), verbose)


@DYDX_APP.command("transfer")
def transfer_command(
    amount: Amount,
    from_: Annotated[int, typer.Option("--from", help="Sending subaccount number.")],
    to: Annotated[int, typer.Option("--to", help="Receiving subaccount number (e.g. an isolated child 128).")],
    network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None, node: NodeOpt = None,
    chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, live: Live = False, verbose: Verbose = False,
):
    """Move USDC between two subaccounts of the wallet (MsgCreateTransfer)."""

    async def go():
        a = parse_amount(amount)
        if from_ == to:
            raise ConfigError(f"--to {to}: the same subaccount as --from")
        s = settings_of(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file)
        await run_move("transfer", s, a, sender=check_number("--from", from_), recipient=check_number("--to", to),
                       live=live)

    run_command(go(), verbose)
