"""``runbot.py dydx ...``: permissioned trading keys, the fee tier and limits, TWAP.

    runbot.py dydx add-trading-key --out trading-key.json [--markets BTC,ETH] [--subaccounts 0]
    runbot.py dydx list-trading-keys [--address dydx1... | --trading-key-file F]
    runbot.py dydx remove-trading-key --id 7
    runbot.py dydx fees [--address dydx1...]
    runbot.py dydx twap --ticker ETH --side sell --size 0.1 --duration 300 --interval 60

``add-trading-key`` runs ONCE on a trusted machine with the main wallet (``$DYDX_MNEMONIC``
or ``--mnemonic-file``): it makes a fresh key, adds an ``x/accountplus`` authenticator that
lets it place and cancel orders only (optionally only on some markets / subaccounts), waits
until the chain shows it, writes the key file (mode 600) and prints the authenticator id.
Copy that file to the server and run the bot with ``--trading-key-file``: the mnemonic
never needs to be there. ``remove-trading-key`` (main wallet again) revokes a key.

The ``dydx`` command is one click command that hands its arguments to the sub-app
:data:`DYDX_APP` (the plugin hook copies only top-level commands); other modules add
their own subcommands with ``@DYDX_APP.command(...)``.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from perpbot.core.errors import ConfigError, PerpbotError, SecretError

DYDX_APP = typer.Typer(name="dydx", help="dYdX account commands (trading keys, funds, fees and limits, TWAP).",
                       no_args_is_help=True, add_completion=False)

Network = Annotated[Optional[str], typer.Option(help="dYdX network: mainnet (default), testnet, custom.")]
Rest = Annotated[Optional[str], typer.Option(help="Indexer REST URL (custom network).")]
Ws = Annotated[Optional[str], typer.Option(help="Indexer WebSocket URL (custom network).")]
NodeOpt = Annotated[Optional[str], typer.Option(help="Node gRPC address host:port (custom network).")]
ChainId = Annotated[Optional[str], typer.Option(help="Chain id (custom network; default dydx-testnet-4).")]
MnemonicFile = Annotated[Optional[Path], typer.Option(help="Main wallet mnemonic file (mode 600); default $DYDX_MNEMONIC.")]
Live = Annotated[bool, typer.Option("--live", help="Confirm a change to a mainnet account.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")]


def _settings(network, indexer_rest, indexer_ws, node, chain_id, **more):
    from perpbot.exchanges.dydx.config import DydxSettings

    cfg = {"network": network, "indexer_rest": indexer_rest, "indexer_ws": indexer_ws, "node": node,
           "chain_id": chain_id, **more}
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items() if v is not None}
    if cfg.get("network", "mainnet") == "custom":  # account commands need the node (REST only for --markets)
        cfg.setdefault("indexer_rest", "http://127.0.0.1:1")
        cfg.setdefault("indexer_ws", "ws://127.0.0.1:1/v4/ws")
    return DydxSettings.from_config(cfg)


def run_command(coro, verbose: bool):
    """Run ``coro`` for a `runbot.py dydx` command; a PerpbotError is one ``error:`` line and its
    exit code (the traceback with ``--verbose``), Ctrl-C exit 130."""
    try:
        return asyncio.run(coro)
    except PerpbotError as exc:
        if verbose:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(getattr(exc, "exit_code", 1) or 1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise ConfigError(f"{option}: {part!r} is not a whole number >= 0")
        out.append(int(part))
    if not out:
        raise ConfigError(f"{option}: name at least one")
    return out


async def _clob_pair_ids(settings, markets: str) -> tuple[list[int], list[str]]:
    """``--markets BTC,ETH-USD,3`` -> clob pair ids (names from the indexer's perpetualMarkets)."""
    from perpbot.core.config import normalize_ticker

    names = [m.strip() for m in markets.split(",") if m.strip()]
    if not names:
        raise ConfigError("--markets: name at least one market")
    if all(n.isdigit() for n in names):
        return [int(n) for n in names], names
    from perpbot.exchanges.dydx.rest import IndexerRest

    rows = await IndexerRest(settings).perpetual_markets()  # {ticker: row}
    ids, tickers = [], []
    for n in names:
        if n.isdigit():
            ids.append(int(n))
            tickers.append(n)
            continue
        t = normalize_ticker(n)
        if t not in rows:
            import difflib

            near = difflib.get_close_matches(t, list(rows), 1)
            raise ConfigError(f"--markets: unknown dYdX market {n!r}" + (f" (closest: {near[0]})" if near else ""))
        ids.append(int(rows[t]["clobPairId"]))
        tickers.append(t)
    return ids, tickers


async def _gateway(settings, signer):
    from perpbot.exchanges.dydx.node import NodeGateway

    gw = NodeGateway(settings, signer)
    await gw.connect(settings.address)
    return gw


async def _wait_for_key(gw, pubkey: bytes, before: set[int], timeout_s: float = 20.0) -> tuple[int, Any]:
    """The id of the authenticator naming ``pubkey`` that was not there before (the chain adds
    it in the next block; ``MsgAddAuthenticatorResponse`` carries no id)."""
    from perpbot.exchanges.dydx.authenticators import AuthenticatorFormatError, parse_authenticator

    deadline = time.monotonic() + timeout_s
    while True:
        resp = await gw.query(lambda node: node.get_authenticators(gw.address), "authenticator query")
        for a in sorted(resp.account_authenticators, key=lambda a: -int(a.id)):
            if int(a.id) in before:
                continue
            try:
                node = parse_authenticator(a.type, a.config)
            except AuthenticatorFormatError:
                continue
            if pubkey in node.signature_keys():
                return int(a.id), node
        if time.monotonic() >= deadline:
            raise ConfigError(f"the add-authenticator tx was accepted, but no authenticator for the new key appeared "
                              f"on {gw.address} within {timeout_s:g}s (it may have failed in the block)")
        await asyncio.sleep(0.5)


def _live_check(settings, live: bool) -> None:
    from perpbot.core.errors import LiveTradingNotConfirmed

    if settings.is_mainnet and not live:
        raise LiveTradingNotConfirmed("this changes a dYdX mainnet account: pass --live to confirm")


@DYDX_APP.command("add-trading-key")
def add_trading_key(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to create (mode 600), e.g. trading-key.json.")],
    markets: Annotated[Optional[str], typer.Option(help="Only these markets: BTC,ETH or clob pair ids 0,1 (default: all).")] = None,
    subaccounts: Annotated[Optional[str], typer.Option(help="Only these subaccount numbers, e.g. 0,128 (default: all).")] = None,
    allow_transfers: Annotated[bool, typer.Option("--allow-transfers", help="Also allow MsgCreateTransfer (isolated markets move collateral). RISKY: a transfer may go to any subaccount.")] = False,
    network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None, node: NodeOpt = None,
    chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, live: Live = False, verbose: Verbose = False,
):
    """Add a trading key (orders and cancels only) to the main account; prints its authenticator id."""
    from perpbot.exchanges.dydx.authenticators import (
        new_private_key_hex, trading_authenticator, write_trading_key,
    )
    from perpbot.exchanges.dydx.secrets import load_mnemonic

    async def go():
        if out.exists():
            raise ConfigError(f"--out: {out} exists; choose a new file")
        s = _settings(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file=mnemonic_file)
        _live_check(s, live)
        subs = _int_list(subaccounts, "--subaccounts")
        ids, names = (None, None) if markets is None else await _clob_pair_ids(s, markets)
        from dydx_v4_client.key_pair import KeyPair

        private = new_private_key_hex()
        pubkey = KeyPair.from_hex(private).public_key_bytes
        auth = trading_authenticator(pubkey, clob_pair_ids=ids, subaccounts=subs, allow_transfers=allow_transfers)
        gw = await _gateway(s, load_mnemonic(s.mnemonic_env, s.mnemonic_file))
        try:
            before = {int(a.id) for a in (await gw.query(
                lambda n: n.get_authenticators(gw.address), "authenticator query")).account_authenticators}
            tx = await gw.add_authenticator(auth)
            if not tx.ok:
                raise ConfigError(f"the node refused the authenticator: CheckTx code {tx.code}: {tx.raw_log}")
            auth_id, tree = await _wait_for_key(gw, pubkey, before)
            path = write_trading_key(out, address=gw.address, authenticator_id=auth_id,
                                     chain_id=s.endpoints.chain_id, private_hex=private)
        finally:
            await gw.close()
        scope = f" on {', '.join(names)}" if names else ""
        typer.echo(f"trading key added: authenticator {auth_id} on {gw.address}{scope}: {tree.describe()}")
        typer.echo(f"key file: {path} (mode 600). Run the bot with: runbot.py --exchange dydx "
                   f"--trading-key-file {path} ...  (no mnemonic needed there)")
        typer.echo(f"authenticator id: {auth_id}")

    run_command(go(), verbose)


def _signer_for_read(settings, trading_key_file):
    """A signer only to open the gateway for queries: the key file, else the mnemonic."""
    from perpbot.exchanges.dydx.authenticators import load_trading_key
    from perpbot.exchanges.dydx.secrets import load_mnemonic

    if trading_key_file is not None:
        return load_trading_key(trading_key_file)
    return load_mnemonic(settings.mnemonic_env, settings.mnemonic_file)


async def _query_node(settings, address: str, fn):
    """Run ``fn(NodeClient)`` for an address-only command (no key at all) on a worker thread."""
    def work():
        import grpc
        from dydx_v4_client.node.client import NodeClient
        from dydx_v4_client.node.builder import Builder

        e = settings.endpoints
        ch = (grpc.secure_channel(e.node, grpc.ssl_channel_credentials()) if e.node_secure
              else grpc.insecure_channel(e.node))
        try:
            client = NodeClient(ch, Builder(e.chain_id, e.chaintoken_denom))
            return asyncio.run(fn(client))
        finally:
            ch.close()

    from perpbot.core.errors import TemporaryExchangeError

    try:
        return await asyncio.to_thread(work)
    except Exception as exc:  # noqa: BLE001 - a gRPC failure is one line
        from perpbot.exchanges.dydx.node import _grpc_text

        raise TemporaryExchangeError(f"dYdX node {settings.endpoints.node}: {_grpc_text(exc)}") from None


async def _read(settings, address, trading_key_file, fn, what):
    """``fn(NodeClient, address)`` with the gateway when a key is at hand, else address-only."""
    if address:
        return address, await _query_node(settings, address, lambda c: fn(c, address))
    gw = await _gateway(settings, _signer_for_read(settings, trading_key_file))
    try:
        return gw.address, await gw.query(lambda c: fn(c, gw.address), what)
    finally:
        await gw.close()


@DYDX_APP.command("list-trading-keys")
def list_trading_keys(
    address: Annotated[Optional[str], typer.Option(help="Account dydx1... (default: from the key file or mnemonic).")] = None,
    trading_key_file: Annotated[Optional[Path], typer.Option(help="A trading-key file (its account is listed).")] = None,
    network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None, node: NodeOpt = None,
    chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, verbose: Verbose = False,
):
    """List the account's authenticators (trading keys) with what each allows."""
    from perpbot.exchanges.dydx.authenticators import AuthenticatorFormatError, parse_authenticator

    async def go():
        s = _settings(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file=mnemonic_file)
        addr, resp = await _read(s, address, trading_key_file, lambda c, a: c.get_authenticators(a),
                                 "authenticator query")
        rows = sorted(resp.account_authenticators, key=lambda a: int(a.id))
        typer.echo(f"{addr}: {len(rows)} authenticator(s)")
        for a in rows:
            try:
                text = parse_authenticator(a.type, a.config).describe()
            except AuthenticatorFormatError as exc:
                text = f"{a.type} (unreadable: {exc})"
            typer.echo(f"  id {a.id}: {text}")

    run_command(go(), verbose)


@DYDX_APP.command("remove-trading-key")
def remove_trading_key(
    id: Annotated[int, typer.Option("--id", help="Authenticator id to remove (see list-trading-keys).", min=0)],
    network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None, node: NodeOpt = None,
    chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, live: Live = False, verbose: Verbose = False,
):
    """Remove (revoke) a trading key's authenticator; needs the main wallet."""
    from perpbot.exchanges.dydx.secrets import load_mnemonic

    async def go():
        s = _settings(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file=mnemonic_file)
        _live_check(s, live)
        gw = await _gateway(s, load_mnemonic(s.mnemonic_env, s.mnemonic_file))
        try:
            have = {int(a.id) for a in (await gw.query(
                lambda n: n.get_authenticators(gw.address), "authenticator query")).account_authenticators}
            if id not in have:
                raise ConfigError(f"--id: authenticator {id} is not on {gw.address} "
                                  f"(its authenticators: {', '.join(map(str, sorted(have))) or 'none'})")
            tx = await gw.remove_authenticator(id)
            if not tx.ok:
                raise ConfigError(f"the node refused the removal: CheckTx code {tx.code}: {tx.raw_log}")
            deadline = time.monotonic() + 20
            while id in {int(a.id) for a in (await gw.query(
                    lambda n: n.get_authenticators(gw.address), "authenticator query")).account_authenticators}:
                if time.monotonic() > deadline:
                    raise ConfigError(f"the removal was accepted but authenticator {id} is still listed after 20s")
                await asyncio.sleep(0.5)
        finally:
            await gw.close()
        typer.echo(f"removed authenticator {id} from {gw.address}")

    run_command(go(), verbose)


@DYDX_APP.command("fees")
def fees_command(
    address: Annotated[Optional[str], typer.Option(help="Account dydx1... (default: from the key file or mnemonic).")] = None,
    trading_key_file: Annotated[Optional[Path], typer.Option(help="A trading-key file (its account is read).")] = None,
    network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None, node: NodeOpt = None,
    chain_id: ChainId = None, mnemonic_file: MnemonicFile = None, verbose: Verbose = False,
):
    """Show the account's fee tier and maker/taker rates, and the chain's order rate limits."""
    from perpbot.exchanges.dydx.fees import chain_limiters, query_fee_tier, query_rate_limits

    async def both(client, addr):
        return await query_fee_tier(client, addr), await query_rate_limits(client)

    async def go():
        s = _settings(network, indexer_rest, indexer_ws, node, chain_id, mnemonic_file=mnemonic_file)
        addr, (tier, limits) = await _read(s, address, trading_key_file, both, "fee-tier query")
        typer.echo(f"{addr}: {tier.describe()}")
        typer.echo(f"  maker rate {tier.maker_rate}, taker rate {tier.taker_rate} (fractions of notional)")
        for lim in chain_limiters(limits).values():
            typer.echo(f"  chain limit: {lim.describe()}")

    run_command(go(), verbose)


@DYDX_APP.command("twap")
def twap_command(
    ticker: Annotated[str, typer.Option("--ticker", "-t", help="Market, e.g. ETH or ETH-USD.")],
    side: Annotated[str, typer.Option(help="buy or sell.")],
    size: Annotated[str, typer.Option(help="Total size in base units, e.g. 0.5.")],
    duration: Annotated[int, typer.Option(help="Seconds, 300..86400.")],
    interval: Annotated[int, typer.Option(help="Seconds between suborders, 30..3600, dividing the duration.")],
    price_tolerance: Annotated[str, typer.Option(help="Suborder price tolerance vs the oracle, fraction in [0, 1).")] = "0.01",
    network: Network = None, indexer_rest: Rest = None, indexer_ws: Ws = None, node: NodeOpt = None,
    chain_id: ChainId = None, verbose: Verbose = False,
):
    """A native (chain-run) TWAP order, where the chain and the installed v4-proto support it;
    otherwise one line saying why not (nothing is sent)."""
    from perpbot.exchanges.dydx.fees import check_twap_parameters, twap_refusal

    async def go():
        if side.lower() not in ("buy", "sell"):
            raise ConfigError(f"--side: expected buy or sell, got {side!r}")
        try:
            qty = Decimal(size)
        except InvalidOperation:
            raise ConfigError(f"--size: expected a number, got {size!r}") from None
        if not qty.is_finite() or qty <= 0:
            raise ConfigError(f"--size: must be > 0, got {size!r}")
        try:
            check_twap_parameters(duration, interval, Decimal(price_tolerance))
        except (ValueError, InvalidOperation) as exc:
            raise ConfigError(str(exc) if isinstance(exc, ValueError) else
                              f"--price-tolerance: expected a fraction, got {price_tolerance!r}") from None
        reason = twap_refusal(None)
        if reason and "v4-proto" not in reason:  # the proto can encode it: ask the node its version
            s = _settings(network, indexer_rest, indexer_ws, node, chain_id)
            info = await _query_node(s, "", lambda c: c.get_node_info())
            reason = twap_refusal(info.application_version.version)
        if reason:
            raise ConfigError(f"{reason} ({side.lower()} {qty} {ticker}, {duration}s every {interval}s)")
        raise ConfigError("native TWAP sending is not built in this version; nothing was sent")  # pragma: no cover

    run_command(go(), verbose)


def register(cli) -> None:
    """Add the ``dydx`` command to the typer app: it passes its arguments to :data:`DYDX_APP`."""

    @cli.command("dydx", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 add_help_option=False)
    def dydx_command(ctx: typer.Context):
        """dYdX account commands: trading keys, funds, fees and limits, TWAP (runbot.py dydx --help
        lists them)."""
        import typer.main

        command = typer.main.get_command(DYDX_APP)
        command.main(args=list(ctx.args), prog_name="runbot.py dydx", standalone_mode=True)
