"""Funding arbitrage over many coins: ranking net of fees, book slippage and basis; both legs
or neither; rebalancing; exits on decay and reversal; per-hour rates of 1 h and 8 h venues;
the PnL split per leg and coin; the multi-coin backtest through the bot (the embedded
Hyperliquid/Binance slice always, the shared 7-coin data when present)."""

from __future__ import annotations

import asyncio
import gzip
import json
from decimal import Decimal as D

import pytest

from perpbot.core.errors import ConfigError, DataError
from perpbot.core.model import BookSnapshot, FundingRate, Market, OrderStatus, OrderType, OrderUpdate, Position, Side
from perpbot.core.params import parse_params
from perpbot.core.state import MarketData, MarketState
from perpbot.core.strategy import StrategyAction, StrategyContext
from perpbot.exchanges.replay.funding_multi import SAMPLE_BARS, SAMPLE_FUNDING, FundingMultiFeed
from perpbot.exchanges.replay.markets import load_markets
from perpbot.strategies.funding_arb import FundingArb
from perpbot.strategies.funding_arb.carry import book_slippage

from tests.shared_data import absent_reason, shared_data_dir

S = 10**9
H = 3600 * S
T0 = 1_706_745_600 * S  # 2024-02-01 00:00 UTC
COINS = ("BTC", "ETH")
PRICE = {"BTC": D("40000"), "ETH": D("2000"), "SOL": D("100")}


def tickers(coins=COINS, venue="binance"):
    return tuple(f"{c}-USD" for c in coins) + tuple(f"{venue}:{c}-USD" for c in coins)


def market(t: str) -> Market:
    """Real dYdX v4 parameters of the coin (``exchanges/replay/dydx_markets.json``)."""
    plain = t.split(":")[-1]
    return load_markets([plain])[plain]


class Log:
    """A logger that keeps what it is told (``info``/``warning`` lines)."""

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(("INFO", msg))

    def warning(self, msg):
        self.lines.append(("WARNING", msg))


def make(coins=COINS, **params) -> FundingArb:
    p = parse_params(FundingArb.Params, params, "strategy funding_arb")
    ts = tickers(coins)
    return FundingArb(p, StrategyContext(tickers=ts, clock=None, markets={t: market(t) for t in ts}, logger=Log()))


class Venues:
    """MarketStates of every leg: L2 books (one level each side, or given levels) and settled funding."""

    def __init__(self, coins=COINS):
        self.states = {t: MarketState(market(t)) for t in tickers(coins)}
        self.ts = T0
        self.marks = {}

    def book(self, t, bids, asks, ts=None):
        ts = ts or self.ts
        self.states[t].apply(BookSnapshot(t, ts, tuple((D(p), D(q)) for p, q in bids), tuple((D(p), D(q)) for p, q in asks)))
        best_bid, best_ask = D(bids[0][0]), D(asks[0][0])
        self.marks[t] = (best_bid + best_ask) / 2

    def tight(self, coin, px=None, ts=None):
        """Both legs of ``coin``: one deep level 1 bp either side of ``px``."""
        px = D(px or PRICE[coin])
        for t in (f"{coin}-USD", f"binance:{coin}-USD"):
            self.book(t, [(px - px / 10000, "1000000")], [(px + px / 10000, "1000000")], ts)

    def rate(self, t, ts, rate_1h, interval_h):
        self.states[t].apply(FundingRate(t, ts, D(rate_1h), settled=True, interval_h=interval_h))
        self.ts = max(self.ts, ts)

    def md(self, positions=None, open_orders=None, ts=None):
        return MarketData(ts_ns=ts or self.ts, markets=self.states, tradable=tuple(self.states), paused={},
                          positions=dict(positions or {}), open_orders=dict(open_orders or {}), balance=None,
                          marks=dict(self.marks))


async def warm(s, v, rates, hours=30, start=0):
    """``rates``: coin -> (primary per-hour rate paid hourly, hedge per-hour rate settled every 8 h)."""
    for h in range(start, start + hours + 1):
        ts = T0 + h * H
        for coin, (rp, rh) in rates.items():
            v.rate(f"{coin}-USD", ts, rp, 1)
            if h % 8 == 0:
                v.rate(f"binance:{coin}-USD", ts, rh, 8)
        await s.should_execute(v.md(ts=ts))


# -- ranking net of fees, slippage and basis --------------------------------------------------------


async def test_the_gross_best_coin_is_not_the_net_best_after_book_slippage_and_basis():
    s = make(execution="market", notional_usd="10000", max_pairs="1", horizon_h="168")
    v = Venues()
    v.tight("ETH")
    # BTC: thin book on the hedge leg (an order of the size walks 3 levels) and the leg we buy is 0.1% dearer
    v.book("BTC-USD", [("39959", "5"), ("39958", "5")], [("39961", "5")])
    v.book("binance:BTC-USD", [("39999", "0.1"), ("39900", "0.05"), ("39600", "5")], [("40001", "0.1"), ("40100", "0.05"), ("40400", "5")])
    await warm(s, v, {"BTC": ("0.00010", "0.00001"), "ETH": ("0.00008", "0.00001")})
    btc = s.pairs["BTC"].carry.entry_economics(v.md())
    eth = s.pairs["ETH"].carry.entry_economics(v.md())
    assert btc["edge"] > eth["edge"], "BTC has the larger funding spread"
    # 10000 USD of BTC on the hedge's asks: 0.1 @ 40001 + 0.05 @ 40100 + 0.1 @ 40400, mid 40000
    q = D(10000) / v.marks["binance:BTC-USD"]
    walked = book_slippage(v.states["binance:BTC-USD"].book, Side.BUY, q)
    fills = [(D("40001"), D("0.1")), (D("40100"), D("0.05")), (D("40400"), q - D("0.15"))]
    assert walked == (sum(p * x for p, x in fills) / q - 40000) / 40000
    assert btc["basis"] == D("1") * (v.marks["BTC-USD"] - v.marks["binance:BTC-USD"]) / ((v.marks["BTC-USD"] + v.marks["binance:BTC-USD"]) / 2) * 10000
    assert btc["net"] == btc["edge"] + btc["basis"] - btc["costs"]
    assert btc["costs"] == btc["fees"] + btc["slippage"] + D(10000) * D("0.0005")
    assert btc["fees"] == D(10000) * 2 * (D("0.0005") + D("0.0005")), "taker fees on both legs, in and out"
    assert btc["basis"] < 0, "selling the cheaper leg and buying the dearer one costs the gap"
    assert btc["edge"] - btc["costs"] + btc["basis"] > 0 and eth["net"] > btc["net"], (eth, btc)
    res = await s.execute_strategy(v.md())
    assert {o.ticker for o in res.orders} == {"ETH-USD", "binance:ETH-USD"}, "only the best coin by NET carry (max_pairs 1)"
    assert "rank 1 of 2" in res.reason and s.last_ranking[0][0] == "ETH"


async def test_enters_the_best_n_within_max_pairs_and_the_gross_limit():
    coins = ("BTC", "ETH", "SOL")
    s = make(coins, execution="market", notional_usd="2000", max_pairs="2", max_gross_usd="100000")
    v = Venues(coins)
    for c in coins:
        v.tight(c)
    await warm(s, v, {"BTC": ("0.00005", "0.00001"), "ETH": ("0.00009", "0.00001"), "SOL": ("0.00007", "0.00001")})
    res = await s.execute_strategy(v.md())
    assert {o.ticker.split(":")[-1] for o in res.orders} == {"ETH-USD", "SOL-USD"} and len(res.orders) == 4
    t = make(coins, execution="market", notional_usd="2000", max_pairs="3", max_gross_usd="8000")
    await warm(t, v, {"BTC": ("0.00005", "0.00001"), "ETH": ("0.00009", "0.00001"), "SOL": ("0.00007", "0.00001")})
    res = await t.execute_strategy(v.md())
    assert len(res.orders) == 4, "two pairs of 2 x 2000 USD fill the 8000 USD gross limit"


def test_a_coin_not_listed_on_both_venues_is_one_line():
    p = parse_params(FundingArb.Params, {"coins": ("BTC", "SOL")}, "s")
    with pytest.raises(ConfigError, match=r"coin 'SOL' is not listed on both venues \(no market 'SOL-USD'; both: BTC, ETH\)"):
        FundingArb(p, StrategyContext(tickers=tickers(), clock=None, markets={}))
    s = FundingArb(parse_params(FundingArb.Params, {}, "s"), StrategyContext(tickers=tickers(), clock=None, markets={}))
    assert list(s.pairs) == ["BTC", "ETH"], "every coin with both legs is scanned"


def test_a_ticker_named_on_one_venue_only_is_one_line_never_dropped_in_silence():
    """A coin the run names without its other leg (a typo, a forgotten leg) is refused, either way round."""
    default = parse_params(FundingArb.Params, {}, "s")
    with pytest.raises(ConfigError, match=r"'SOL-USD' has no other leg .*--ticker SOL,binance:SOL"):
        FundingArb(default, StrategyContext(tickers=tickers() + ("SOL-USD",), clock=None, markets={}))
    with pytest.raises(ConfigError, match=r"'binance:SOL-USD' has no other leg"):
        FundingArb(default, StrategyContext(tickers=tickers() + ("binance:SOL-USD",), clock=None, markets={}))


# -- both legs or neither -------------------------------------------------------------------------------


async def entered(s, v):
    await warm(s, v, {"BTC": ("0.00010", "0.00001"), "ETH": ("0.00001", "0.00001")})
    res = await s.execute_strategy(v.md())
    assert {o.ticker for o in res.orders} == {"BTC-USD", "binance:BTC-USD"}
    return {o.ticker: o for o in res.orders}


async def test_failed_second_leg_is_completed_then_the_first_is_unwound_with_the_reason_logged():
    s = make(execution="market", notional_usd="4000", leg_retries="1", leg_timeout_h="2")
    v = Venues()
    v.tight("BTC"), v.tight("ETH")
    orders = await entered(s, v)
    q = orders["BTC-USD"].size
    s.on_order_update(OrderUpdate(9, "binance:BTC-USD", OrderStatus.CANCELED, v.ts, reason="insufficient margin"))
    pos = {"BTC-USD": Position("BTC-USD", -q, D("40000"))}  # the hedge leg failed
    res = await s.execute_strategy(v.md(pos, ts=v.ts + 60 * S))
    (o,) = res.orders
    assert (o.ticker, o.side, o.size, o.order_type) == ("binance:BTC-USD", Side.BUY, q, OrderType.MARKET)
    warn = [m for lvl, m in s.log.lines if lvl == "WARNING"]
    assert "completing binance:BTC-USD at market" in warn[-1] and "insufficient margin" in warn[-1]
    res = await s.execute_strategy(v.md(pos, ts=v.ts + 120 * S))  # the completion failed too: unwind
    (o,) = res.orders
    assert (o.ticker, o.side, o.size, o.reduce_only) == ("BTC-USD", Side.BUY, q, True)
    pair = s.pairs["BTC"].position
    assert pair.state == "exiting" and pair.unwinds == 1 and pair.entries == 0
    assert "both legs or neither" in s.log.lines[-1][1] and "unwinding BTC-USD" in s.log.lines[-1][1]
    res = await s.execute_strategy(v.md(ts=v.ts + 180 * S))  # flat again, cooling down
    assert pair.state == "flat" and not res.orders


async def test_partly_filled_second_leg_is_completed_within_the_bound_or_unwound_after_the_timeout():
    s = make(execution="market", notional_usd="4000", leg_timeout_h="2")
    v = Venues()
    v.tight("BTC"), v.tight("ETH")
    orders = await entered(s, v)
    q = orders["BTC-USD"].size  # 0.1
    part = D("0.06")
    pos = {"BTC-USD": Position("BTC-USD", -q, D("40000")), "binance:BTC-USD": Position("binance:BTC-USD", part, D("40000"))}
    res = await s.execute_strategy(v.md(pos, ts=v.ts + 60 * S))
    (o,) = res.orders
    assert (o.ticker, o.side, o.size) == ("binance:BTC-USD", Side.BUY, q - part), "the missing part only"
    pos["binance:BTC-USD"] = Position("binance:BTC-USD", q, D("40000"))
    assert (await s.execute_strategy(v.md(pos, ts=v.ts + 120 * S))).action is StrategyAction.NONE
    assert s.pairs["BTC"].position.entries == 1 and s.pairs["BTC"].position.state == "open"
    # the same partial fill found only after the timeout: no completion, unwind at once
    t = make(execution="market", notional_usd="4000", leg_timeout_h="2")
    w = Venues()
    w.tight("BTC"), w.tight("ETH")
    await entered(t, w)
    pos["binance:BTC-USD"] = Position("binance:BTC-USD", part, D("40000"))
    res = await t.execute_strategy(w.md(pos, ts=w.ts + 2 * H))
    assert {(o.ticker, o.side, o.size, o.reduce_only) for o in res.orders} == {
        ("BTC-USD", Side.BUY, q, True), ("binance:BTC-USD", Side.SELL, part, True)}
    assert t.pairs["BTC"].position.unwinds == 1


async def test_hedge_drift_on_one_coin_is_rebalanced_the_other_left_alone():
    s = make(execution="market", notional_usd="4000", max_pairs="2", rebalance_tolerance="0.02")
    v = Venues()
    v.tight("BTC"), v.tight("ETH")
    await warm(s, v, {"BTC": ("0.00010", "0.00001"), "ETH": ("0.00009", "0.00001")})
    res = await s.execute_strategy(v.md())
    size = {o.ticker: o.size for o in res.orders}
    pos = {t: Position(t, q if t.startswith("binance") else -q, PRICE[t.split(":")[-1][:3]]) for t, q in size.items()}
    await s.execute_strategy(v.md(pos))  # both entries complete
    pos["binance:ETH-USD"] = Position("binance:ETH-USD", size["binance:ETH-USD"] * D("0.95"), D("2000"))
    res = await s.execute_strategy(v.md(pos))
    (o,) = res.orders
    assert (o.ticker, o.side, o.tag) == ("binance:ETH-USD", Side.BUY, "farb-rebalance")
    assert o.size == size["binance:ETH-USD"] - size["binance:ETH-USD"] * D("0.95")


# -- exits: decay and reversal, with hysteresis --------------------------------------------------------------


async def test_exit_when_the_spread_decays_below_a_fraction_of_the_entry_spread_or_reverses():
    s = make(execution="market", notional_usd="4000", exit_decay="0.25", rate_halflife_h="1")
    v = Venues()
    v.tight("BTC"), v.tight("ETH")
    orders = await entered(s, v)  # entry spread 0.9 bp/h on BTC
    entry_spread = s.pairs["BTC"].position.entry_spread
    q = orders["BTC-USD"].size
    pos = {"BTC-USD": Position("BTC-USD", -q, D("40000")), "binance:BTC-USD": Position("binance:BTC-USD", q, D("40000"))}
    await s.execute_strategy(v.md(pos))
    # the spread halves: below the entry threshold for a NEW entry, but above the exit's 25%: hold (hysteresis)
    await warm(s, v, {"BTC": ("0.000055", "0.00001"), "ETH": ("0.00001", "0.00001")}, hours=24, start=31)
    assert (await s.execute_strategy(v.md(pos))).action is StrategyAction.NONE
    assert s.pairs["BTC"].position.state == "open"
    # decays to 0.1 bp/h < 0.25 x 0.9: exit
    await warm(s, v, {"BTC": ("0.00002", "0.00001"), "ETH": ("0.00001", "0.00001")}, hours=24, start=56)
    res = await s.execute_strategy(v.md(pos))
    assert "decayed" in res.reason and f"{entry_spread * 10000:.4f} bp/h at entry" in res.reason
    assert {(o.ticker, o.reduce_only) for o in res.orders} == {("BTC-USD", True), ("binance:BTC-USD", True)}
    # reversal: a fresh pair whose spread flips
    t = make(execution="market", notional_usd="4000", rate_halflife_h="1")
    w = Venues()
    w.tight("BTC"), w.tight("ETH")
    await entered(t, w)
    await t.execute_strategy(w.md(pos))
    await warm(t, w, {"BTC": ("-0.00003", "0.00001"), "ETH": ("0.00001", "0.00001")}, hours=24, start=31)
    res = await t.execute_strategy(w.md(pos))
    assert "flipped" in res.reason and t.pairs["BTC"].position.state == "exiting"


# -- per-hour normalisation ---------------------------------------------------------------------------------


def write_funding(path, rows):
    with gzip.open(path, "wt") as f:
        f.write("ts_utc,venue,coin,interval_h,rate\n")
        for r in rows:
            f.write(",".join(map(str, r)) + "\n")


def write_bars(path, coins, hours):
    cols = ["timestamp"] + [f"binance:{c}/USDT:{k}" for c in coins for k in ("open", "high", "low", "close", "volume")]
    with gzip.open(path, "wt") as f:
        f.write(",".join(cols) + "\n")
        for h in range(hours):
            vals = [str((T0 + h * H) // 1_000_000)]
            for c in coins:
                px = str(PRICE[c])
                vals += [px, px, px, px, "1"]
            f.write(",".join(vals) + "\n")


async def test_rates_are_per_hour_by_each_venues_interval_1h_4h_8h(tmp_path):
    rows = []
    for h in range(0, 48):
        ts = f"2024-02-01T{h % 24:02d}:00:00.000Z".replace("2024-02-01", "2024-02-0" + str(1 + h // 24))
        rows.append((ts, "hyperliquid", "BTC", 1, "0.0001"))  # 1 bp per hour
        rows.append((ts, "hyperliquid", "ETH", 1, "0.0001"))
        if h % 8 == 0:
            rows.append((ts.replace(".000Z", ".002Z"), "binance", "BTC", 8, "0.0008"))  # 8 bp per 8 h = 1 bp/h
        if h % 4 == 0:
            rows.append((ts, "binance", "ETH", 4, "0.0008"))  # 8 bp per 4 h = 2 bp/h
    write_funding(tmp_path / "f.csv.gz", rows)
    write_bars(tmp_path / "b.csv.gz", COINS, 48)

    class Ctx:
        tickers = ()

    feed = FundingMultiFeed({"funding_file": str(tmp_path / "f.csv.gz"), "prices": str(tmp_path / "b.csv.gz")}, Ctx())
    assert feed.coins == ["BTC", "ETH"] and set(feed.markets()) == set(tickers())
    evs = [e for b in [b async for b in feed.batches()] for e in b if type(e) is FundingRate]
    by = {(e.ticker, e.interval_h): e.rate_1h for e in evs}
    assert by == {("BTC-USD", 1): D("0.0001"), ("ETH-USD", 1): D("0.0001"),
                  ("binance:BTC-USD", 8): D("0.0001"), ("binance:ETH-USD", 4): D("0.0002")}
    assert all(e.ts_ns % S == 0 for e in evs), "settlement times floored to the second (Binance's carry ms)"
    # the strategy compares per-hour rates: BTC has no spread, ETH 1 bp/h
    s = make(execution="market", notional_usd="4000")
    v = Venues()
    v.tight("BTC"), v.tight("ETH")
    for e in evs:
        v.rate(e.ticker, e.ts_ns, e.rate_1h, e.interval_h)
        await s.should_execute(v.md(ts=e.ts_ns))
    assert s.pairs["BTC"].carry.expected_rates() == (D("0.0001"), D("0.0001"))
    assert s.pairs["ETH"].rates["binance:ETH-USD"].interval_h == 4
    res = await s.execute_strategy(v.md())
    assert {o.ticker for o in res.orders} == {"ETH-USD", "binance:ETH-USD"}
    assert next(o for o in res.orders if o.ticker == "binance:ETH-USD").side is Side.SELL, "short the richer 4-hour venue"


def test_feed_bad_inputs_are_one_line(tmp_path, monkeypatch):
    class Ctx:
        tickers = ()

    monkeypatch.setenv("PERPBOT_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="funding file .* not found .*funding_file = 'sample:hl_binance_btc_eth'"):
        FundingMultiFeed({}, Ctx())
    if not SAMPLE_FUNDING.exists():
        pytest.skip("embedded funding slice missing")
    with pytest.raises(ConfigError, match="coin 'DOGE' has no funding rows .*found: BTC, ETH"):
        FundingMultiFeed({"funding_file": "sample:hl_binance_btc_eth", "coins": ("DOGE",)}, Ctx())
    write_funding(tmp_path / "bad.csv.gz", [("2024-02-01T00:00:00Z", "binance", "BTC", "eight", "0.0001")])
    with pytest.raises(DataError, match=r"bad.csv.gz:2: not a number: 'eight'"):
        FundingMultiFeed({"funding_file": str(tmp_path / "bad.csv.gz"), "prices": str(SAMPLE_BARS)}, Ctx())


async def test_state_of_every_pair_round_trips_through_json():
    s = make(execution="market", notional_usd="4000")
    v = Venues()
    v.tight("BTC"), v.tight("ETH")
    await entered(s, v)
    state = json.loads(json.dumps(s.get_state()))
    t = make(execution="market", notional_usd="4000")
    t.restore_state(state)
    assert t.pairs["BTC"].position.state == "open" and t.pairs["BTC"].position.entry_pending
    assert t.pairs["BTC"].position.entry_spread == s.pairs["BTC"].position.entry_spread
    assert t.pairs["ETH"].rates["binance:ETH-USD"].value == s.pairs["ETH"].rates["binance:ETH-USD"].value


# -- the multi-coin backtest through the bot -----------------------------------------------------------------


def run_bot(tmp_path, feed_opts, coins, **strategy):
    pytest.importorskip("perpbot.exchanges.paper")
    from perpbot.core.bot import TradingBot
    from perpbot.core.plugins import PluginManager
    from perpbot.core.testing import bot_config

    cfg = bot_config(
        exchange=("hyperliquid", "binance"),
        venues={"hyperliquid": "paper", "binance": "paper"},
        strategy="funding_arb",
        tickers=tickers(coins),
        feed="funding_multi",
        feeds={"funding_multi": dict(feed_opts)},
        exchanges={"hyperliquid": {"collateral": "50000", "maker_fee": "0.00015", "taker_fee": "0.00045"},
                   "binance": {"collateral": "50000", "maker_fee": "0.0002", "taker_fee": "0.0005"}},
        state_dir=tmp_path,
        decision_interval_s=D(3600),
        strategies={"funding_arb": dict({"notional_usd": "5000", "execution": "market", "leg_timeout_h": "24",
                                         "fee_primary_taker": "0.00045", "fee_hedge_taker": "0.0005"}, **strategy)},
    )
    pm = PluginManager(load_entry_points=False, default_plugins=(
        "perpbot.exchanges.paper", "perpbot.exchanges.replay", "perpbot.strategies.funding_arb",
        "perpbot.plugins.sizers", "perpbot.plugins.risk"))
    bot = TradingBot(cfg, pm)
    asyncio.run(bot.run())
    return bot


def check_split(bot):
    """Per coin funding - fees + price = net; the coins add up to the total; each venue's legs match its portfolio."""
    s = bot.strategy
    per_coin = s.coin_totals()
    tot = s.totals()
    for k in ("funding", "fees", "price_pnl", "net"):
        assert sum((c[k] for c in per_coin.values()), D(0)) == tot[k]
    for c in per_coin.values():
        assert c["net"] == c["funding"] - c["fees"] + c["price_pnl"]
    venues = {"funding": D(0), "fees": D(0), "price_pnl": D(0)}
    for venue, prefix in (("hyperliquid", ""), ("binance", "binance:")):
        legs = [p.legs[prefix + p.primary] for p in s.pairs.values()]
        book = bot.portfolios[venue]
        assert sum((leg.fees for leg in legs), D(0)) == book.fees_paid
        assert sum((leg.funding for leg in legs), D(0)) == book.funding_net
        marks = {leg.ticker.split(":")[-1]: leg.last_mark for leg in legs}
        price_pnl = sum((leg.realized + leg.unrealized() for leg in legs), D(0))
        assert price_pnl == book.realized_pnl + book.unrealized_pnl(marks), venue
        venues["funding"] += book.funding_net
        venues["fees"] += book.fees_paid
        venues["price_pnl"] += book.realized_pnl + book.unrealized_pnl(marks)
    assert all(tot[k] == venues[k] for k in venues), (tot, venues)
    return per_coin


def test_multi_coin_backtest_on_the_embedded_slice_end_to_end(tmp_path):
    if not SAMPLE_FUNDING.exists() or not SAMPLE_BARS.exists():
        pytest.skip("embedded Hyperliquid/Binance slice missing (examples/data)")
    bot = run_bot(tmp_path, {"funding_file": "sample:hl_binance_btc_eth"}, COINS, horizon_h="336")
    s = bot.strategy
    assert list(s.pairs) == ["BTC", "ETH"]
    assert sum(p.position.entries for p in s.pairs.values()) >= 1, s.summary_lines()
    per_coin = check_split(bot)
    assert any(c["funding"] != 0 for c in per_coin.values())
    lines = s.summary_lines()
    assert lines[0].startswith("funding_arb over 2 coins") and any(line.startswith("  BTC:") for line in lines)
    assert any("BTC total: funding" in line for line in lines) and "= net" in lines[-2]


def test_multi_coin_backtest_on_the_shared_seven_coin_data(tmp_path):
    root = shared_data_dir()
    if root is None:
        pytest.skip(absent_reason())
    funding = root / "funding" / "derived" / "funding_hyperliquid1h_vs_binance8h_7coins_2023-05_2026-03_utc.csv.gz"
    panels = root / "funding" / "pietro_hyperliquid_1h"
    if not funding.exists() or not panels.is_dir():
        pytest.skip("the 7-coin Hyperliquid/Binance funding data is not in the shared data")
    seven = ("AVAX", "BNB", "BTC", "DOGE", "ETH", "SOL", "XRP")
    bot = run_bot(tmp_path, {"funding_file": str(funding), "prices": str(panels), "start": "2024-01-01", "end": "2024-03-01"},
                  seven, max_pairs="2")
    s = bot.strategy
    assert list(s.pairs) == list(seven)
    assert sum(p.position.entries for p in s.pairs.values()) >= 3, s.summary_lines()
    assert s.max_held <= 2, "never more than max_pairs pairs at once"
    assert len([c for c, p in s.pairs.items() if p.position.entry_orders]) >= 2, "more than one coin traded"
    check_split(bot)
