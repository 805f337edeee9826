"""The Binance reader's fast line reading gives exactly what full JSON decoding gives.

``BinanceRecording.fast_lines`` (bookTicker and trade lines of the venue's compact shape
read by one regular expression, ``binance_parse.FAST_LINE``) is compared with the exact
path (every line through orjson) on the real BTCUSDT sample and on copies of its first
lines altered where the fast path could go wrong: the events must be the same (types,
tickers, timestamps, Decimal values with the same exponent, order, batches), the errors
the same ``path:lineno: ...`` line.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from perpbot.core.errors import DataError
from perpbot.core.model import BookDelta, Levels
from perpbot.exchanges.replay.binance import BinanceRecording
from perpbot.exchanges.replay.samples import binance_l2_files


def canon(batch: list) -> list:
    """A comparable form of a batch: each event's repr (its class, every field, Decimals as
    ``Decimal('61800.20')``: value and exponent). Depth events (read by the same code both
    ways) are compared as objects, which is much cheaper than the repr of every level."""
    return [e if type(e) is BookDelta else repr(e) for e in batch]


def outcome(path: Path, fast: bool, select=lambda s: s[:3] + "-USD") -> tuple:
    """``("ok", events, stats)`` or ``("error", message)`` of reading ``path`` one way."""
    r = BinanceRecording(path, select)
    r.fast_lines = fast
    try:
        got = [(ts, canon(b)) for ts, b in r.events()]
    except DataError as exc:
        return ("error", str(exc))
    return ("ok", got, r.stats, len(r.values.prices_b) > 0)


def first_lines(n: int) -> list[str]:
    out = []
    with gzip.open(binance_l2_files()[0], "rt") as f:
        for line in f:
            out.append(line.rstrip("\n"))
            if len(out) == n:
                break
    return out


def write(tmp_path: Path, lines: list[str], name: str = "btcusdt_20240808.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(("\n".join(lines) + "\n").encode())
    return p


def same_both_ways(path: Path, select=lambda s: s[:3] + "-USD") -> tuple:
    exact = outcome(path, False, select)
    fast = outcome(path, True, select)
    assert fast[:3] == exact[:3]
    return fast


def test_real_sample_is_read_identically():
    fast = same_both_ways(binance_l2_files()[0])
    assert fast[0] == "ok" and fast[3]  # the fast reading was used
    assert fast[2]["quotes"] > 60_000 and fast[2]["trades"] > 20_000


def _first(lines, needle):
    return next(i for i, ln in enumerate(lines) if needle in ln)


# each: (description, function altering one line -> the altered line)
ALTERATIONS = [
    ("spaces after colons", lambda ln: ln.replace('":', '": ')),
    ("fields in another order", lambda ln: ln.replace('"stream"', '"zz"').replace('{"zz"', '{"stream"')),
    ("price with an exponent", lambda ln: ln.replace('"61800.20"', '"6.180020E4"').replace('"61800.30"', '"6.180030E4"')),
    ("price written with a JSON escape", lambda ln: ln.replace('"61800.20"', '"6\\u0031800.20"').replace('"61800.30"', '"6\\u00318 00.30"')),
    ("a zero price", lambda ln: ln.replace('"61800.20"', '"0"').replace('"61800.30"', '"0.0"')),
    ("a malformed price", lambda ln: ln.replace('"61800.20"', '"61..800"').replace('"61800.30"', '"."')),
    ("a zero trade size", lambda ln: ln.replace('"q":"0.006"', '"q":"0.000"')),
    ("an integer with a leading zero", lambda ln: ln.replace('"u":5', '"u":05').replace('"t":5', '"t":05')),
    ("a trailing space", lambda ln: ln + " "),
    ("trailing garbage", lambda ln: ln + "}"),
    ("an insurance-fund trade", lambda ln: ln.replace('"X":"MARKET"', '"X":"INSURANCE_FUND"')),
    ("the maker flag as a string", lambda ln: ln.replace('"m":false', '"m":"false"')),
    ("a bare event without the stream wrapper", lambda ln: ln.split(" ", 1)[0] + " " + ln.split('"data":', 1)[1][:-1]),
    ("a symbol with a non-ASCII letter", lambda ln: ln.replace('"s":"BTCUSDT"', '"s":"BTCUSDÉ"')),
    ("a stream name with a non-ASCII letter", lambda ln: ln.replace('"stream":"btcusdt@', '"stream":"btcusdté@')),
    ("a receive time with a sign", lambda ln: "+" + ln),
]


@pytest.mark.parametrize("kind", ['"bookTicker"', '"e":"trade"'])
@pytest.mark.parametrize("what,alter", ALTERATIONS, ids=[a[0] for a in ALTERATIONS])
def test_altered_lines_give_the_same_events_or_the_same_error(tmp_path, kind, what, alter):
    lines = first_lines(80)
    i = _first(lines, kind)
    lines[i] = alter(lines[i])
    same_both_ways(write(tmp_path, lines))


def test_errors_name_the_line_on_the_fast_path(tmp_path):
    lines = first_lines(80)
    q = _first(lines, '"bookTicker"')
    lines[q] = lines[q].replace('"B":"2.507"', '"B":"2..507"')
    got = same_both_ways(write(tmp_path, lines))
    assert got[0] == "error" and got[1].endswith(f".txt:{q + 1}: size '2..507' is not a number")


def test_receive_time_going_back_on_a_fast_line(tmp_path):
    lines = first_lines(80)
    t = _first(lines, '"e":"trade"')
    lines[t] = str(int(lines[t].split(" ", 1)[0]) - 10**9) + " " + lines[t].split(" ", 1)[1]
    got = same_both_ways(write(tmp_path, lines))
    assert got[0] == "error" and f":{t + 1}: receive time" in got[1]


def test_filtered_symbols_and_coinm_contracts(tmp_path):
    lines = first_lines(80)
    same_both_ways(write(tmp_path, lines), select=lambda s: None)  # every symbol filtered
    coinm = [ln.replace("BTCUSDT", "BTCUSD_PERP").replace("btcusdt", "btcusd_perp") for ln in lines]
    got = same_both_ways(write(tmp_path, coinm, "btcusd_perp_20240808.txt"), select=lambda s: "BTC-USD")
    assert got[0] == "ok" and got[3]


def test_a_value_gets_one_decimal_object_either_way(tmp_path):
    lines = first_lines(80)
    r = BinanceRecording(write(tmp_path, lines), lambda s: "BTC-USD")
    list(r.events())
    v = r.values
    assert v.prices_b and all(v.prices_b[k] is v.prices[k.decode()] for k in v.prices_b)


def test_full_caches_are_cleared_and_refilled_with_the_same_values(tmp_path, monkeypatch):
    from perpbot.exchanges.replay import binance_parse

    path = write(tmp_path, first_lines(400))
    big = outcome(path, True)
    text, raw = [], []
    monkeypatch.setattr(binance_parse, "CACHE_MAX", 8)
    monkeypatch.setattr(binance_parse, "BYTES_CACHE_MAX", 2)
    for fast in (True, False):
        r = BinanceRecording(path, lambda s: s[:3] + "-USD")
        r.fast_lines = fast
        got = []
        for ts, b in r.events():
            got.append((ts, canon(b)))
            v = r.values
            text.append(max(len(v.prices), len(v.sizes)))
            raw.append(len(v.prices_b))
        assert got == big[1] and r.stats == big[2]
    assert max(text) == 8 and max(raw) == 2 and r.stats["level_entries"] > 1000  # many clears on the way


def test_levels_equal_a_plain_conversion_on_the_real_sample():
    import orjson

    from perpbot.exchanges.replay.binance_parse import ValueParser

    v = ValueParser()
    n = one = k = 0
    with gzip.open(binance_l2_files()[0], "rb") as f:
        for line in f:
            if b'"depthUpdate"' not in line:
                continue
            data = orjson.loads(line.split(b" ", 1)[1])["data"]
            for raw in (data["b"], data["a"]):
                got = v.levels(raw, None)  # every message through the caches, every 3rd checked
                k += 1
                if k % 3 and len(raw) != 1:
                    continue
                want = tuple((Decimal(p), Decimal(q)) for p, q in raw)
                assert type(got) is (Levels if raw else tuple) and got == want
                assert repr(tuple(got)) == repr(want)  # the same exponents
                n += len(raw)
                one += len(raw) == 1
    assert n > 140_000 and one  # a third of the file's levels, every single-level side


@pytest.mark.parametrize("level", ['["61000.10","0.001","7"]', '["61000.10"]'])
def test_a_depth_level_that_is_not_a_pair_names_its_line(tmp_path, level):
    lines = first_lines(120)
    i = next(i for i, ln in enumerate(lines) if i > 60 and '"depthUpdate"' in ln)
    lines[i] = lines[i].replace('"b":[[', '"b":[' + level + ",[", 1)
    got = same_both_ways(write(tmp_path, lines))
    assert got[0] == "error" and f".txt:{i + 1}: malformed depthUpdate (" in got[1]
