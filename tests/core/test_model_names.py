"""core/model and core/signals are packages, but every public name keeps one stable home.

The journal codec stores enums and attrs values as ``"module:Qualname"``
(``plugins/journal/codec.py``). Checkpoints written before the split name
``perpbot.core.model:Fill`` etc.; they must still load, and the codec must keep
writing the same names (so moving a class between the submodules never strands a
journal). ``data/pre_split_state_blobs.json`` holds blobs written by the code at
commit a5c0771, before the split.
"""

from __future__ import annotations

import enum
import json
import re
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

import perpbot.core.model as model
import perpbot.core.signals as signals
from perpbot.plugins.journal.codec import dumps_state, loads_state

BLOBS = json.loads((Path(__file__).parent / "data" / "pre_split_state_blobs.json").read_text())
NAME = re.compile(r'"\$(?:attrs|enum)":"([^"]+)"')


@pytest.mark.parametrize("package", [model, signals], ids=lambda p: p.__name__)
def test_every_public_name_lives_at_the_package_path(package):
    for name in package.__all__:
        obj = getattr(package, name)
        if isinstance(obj, type) and obj.__module__ == "builtins":
            continue  # model.Level is tuple
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == package.__name__, f"{name}.__module__ is {obj.__module__}"


@pytest.mark.parametrize("key", ["every_model_type", "signals", "sniper_paper_checkpoint"])
def test_a_blob_written_before_the_split_decodes_and_reencodes_identically(key):
    text = BLOBS[key]
    names = set(NAME.findall(text))
    assert names and all(n.startswith(("perpbot.core.model:", "perpbot.core.signals:", "perpbot.core.portfolio:")) for n in names)
    value = loads_state(text)
    assert dumps_state(value) == text  # same type names, same fields, same order


def test_the_old_blob_gives_the_values_it_was_written_from():
    values = loads_state(BLOBS["every_model_type"])
    assert values["side"] is model.Side.SELL
    assert values["mode"] is model.MarginMode.ISOLATED
    fill = values["fill"]
    assert type(fill) is model.Fill
    assert (fill.price, fill.size, fill.fee, fill.liquidity) == (
        Decimal("50000"),
        Decimal("0.01"),
        Decimal("0.25"),
        model.Liquidity.TAKER,
    )
    assert values["info"].market == values["market"] and values["market"].oracle_price == Decimal("50000")
    assert values["position"].size == Decimal("-0.01")
    assert values["snap"].bids == ((Decimal("1"), Decimal("2")),)
    every = {type(v) for v in values.values()}
    public = {getattr(model, n) for n in model.__all__}
    kinds = {t for t in public if isinstance(t, type) and (attrs.has(t) or issubclass(t, enum.Enum))}
    # types added after the blob was written: each must round-trip under the package path instead
    added_later = {model.CollateralTransfer}
    assert kinds - {model.MarketEvent} - added_later <= every, f"fixture lacks {kinds - every - added_later}"
    t = model.CollateralTransfer(1, "TRANSFER", "a/0", "a/128", Decimal("1.5"), "r", "H", "confirmed", venue="dydx")
    text = dumps_state({"t": t})
    assert "perpbot.core.model:CollateralTransfer" in text and loads_state(text)["t"] == t
    scores = loads_state(BLOBS["signals"])
    assert type(scores["scores"]) is signals.Scores and scores["scores"].momentum == 61.5
    assert scores["config"] == signals.SignalConfig(book_levels=5, warmup_s=30)


def test_new_values_are_stored_under_the_package_path():
    fill = model.Fill(1, "BTC-USD", model.Side.BUY, "1", "0.1", "0", model.Liquidity.MAKER, 5)
    text = dumps_state({"f": fill, "s": signals.Scores()})
    assert set(NAME.findall(text)) == {
        "perpbot.core.model:Fill",
        "perpbot.core.model:Side",
        "perpbot.core.model:Liquidity",
        "perpbot.core.signals:Scores",
    }
