"""``PERPBOT_NO_SHARED_DATA=1`` hides the shared data folder from every fixture and fake
(tests/shared_data.py), so the suite can be run as in a user's clone (issue 9, item 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import shared_data
from tests.fakes.indexer import DATA_DIR_ENV, FakeIndexer, default_data_dir, load_dataset

REPO = Path(__file__).resolve().parents[2]


def test_hidden_means_absent_for_lookups_and_the_fakes(monkeypatch, tmp_path):
    (tmp_path / "dydx_v4").mkdir()
    monkeypatch.setenv(shared_data.DIR_ENV, str(tmp_path))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(shared_data.HIDE_ENV, "0")
    assert shared_data.shared_data_dir() == tmp_path and default_data_dir() == tmp_path
    monkeypatch.setenv(shared_data.HIDE_ENV, "1")
    assert shared_data.hidden() and shared_data.shared_data_dir() is None
    assert shared_data.shared_root() == shared_data.HIDDEN_ROOT and not shared_data.HIDDEN_ROOT.exists()
    assert "PERPBOT_NO_SHARED_DATA=1" in shared_data.absent_reason()
    assert default_data_dir() is None  # even with $DYDX_FAKES_DATA_DIR set
    assert load_dataset().source == "builtin"


async def test_the_fake_indexer_serves_the_builtin_dataset_when_hidden(monkeypatch):
    monkeypatch.setenv(shared_data.HIDE_ENV, "1")
    async with FakeIndexer() as ix:
        assert set(ix.markets) == {"BTC-USD", "ETH-USD"}


def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv(shared_data.HIDE_ENV, "please")
    with pytest.raises(ValueError, match=r"^PERPBOT_NO_SHARED_DATA='please': expected 1"):
        shared_data.hidden()


def test_the_guard_stops_reads_under_the_hidden_folder(tmp_path):
    """A test reaching the folder by a path of its own fails instead of passing on data a user lacks."""
    shared = tmp_path / "shared" / "data"
    (shared / "sub").mkdir(parents=True)
    (shared / "sub" / "f.json").write_text("{}")
    outside = tmp_path / "outside.txt"
    outside.write_text("ok")
    code = textwrap.dedent(f"""
        import glob, os
        from pathlib import Path
        from tests import shared_data
        assert shared_data.install_guard()
        assert Path({str(outside)!r}).read_text() == "ok"
        assert Path({str(shared)!r}).is_dir()  # stat: still answers
        for what, fn in (("open", lambda: open({str(shared / "sub" / "f.json")!r})),
                         ("listdir", lambda: os.listdir({str(shared)!r})),
                         ("glob.glob", lambda: glob.glob({str(shared)!r} + "/*"))):
            try:
                fn()
            except PermissionError as e:
                assert "hidden by PERPBOT_NO_SHARED_DATA=1" in str(e), e
            else:
                raise SystemExit(what + " was not stopped")
        # pathlib's glob swallows PermissionError itself: the hidden folder just looks empty
        assert list(Path({str(shared)!r}).glob("*/*.json")) == []
        print("guarded")
    """)
    env = {**os.environ, shared_data.HIDE_ENV: "1", shared_data.DIR_ENV: str(shared)}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "guarded", r.stderr
    env[shared_data.HIDE_ENV] = "0"
    r = subprocess.run([sys.executable, "-c", "from tests import shared_data; print(shared_data.install_guard())"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
