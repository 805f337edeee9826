"""Walk-forward windows read bar files without leaving a file open (plugins/research/windows.py)."""

from __future__ import annotations

import gc
import gzip
import warnings

from perpbot.plugins.research.windows import cut, data_span

ROWS = "open_time,open,high,low,close,volume\n" + "".join(
    f"{1_700_000_000_000 + i * 300_000},1,2,0.5,1.5,10\n" for i in range(20)
)


def _no_unclosed_file(fn, folder) -> None:
    """``fn()`` leaves no file of ``folder`` open (ResourceWarnings naming another file, e.g. a
    pipe an earlier test on this worker left to the collector, are not this test's)."""
    gc.collect()  # what earlier tests left is collected before the recording starts
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        fn()
        gc.collect()
    leaked = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning) and str(folder) in str(w.message)]
    assert not leaked, leaked


def test_gzip_and_plain_bar_files_are_closed_after_a_span_and_a_cut(tmp_path):
    gz = tmp_path / "bars.csv.gz"
    gz.write_bytes(gzip.compress(ROWS.encode()))
    plain = tmp_path / "bars.csv"
    plain.write_text(ROWS)
    for src in (gz, plain):
        _no_unclosed_file(lambda src=src: data_span([src]), tmp_path)
        _no_unclosed_file(lambda src=src: cut(src, tmp_path / f"cut-{src.name}", 0, 1 << 62), tmp_path)
        assert (tmp_path / f"cut-{src.name}").exists()
