"""Feature rows with the signal: :func:`perpbot.core.analysis.feature_rows` plus the confluence columns.

A training row needs the analyzers' features AND the signal the model judges: the market's
confluence (:func:`perpbot.core.analysis.combine` of its analyzers' interpretations, the score
weighting the confluence strategy trades on). :func:`signal_rows` is ``feature_rows`` (same
sampling: a row for sample time ``t``, a multiple of ``every_ns``, reflects every event of the
market with ``ts_ns <= t`` and is yielded when the first later event arrives; rows before a
price are skipped) with its ``extra`` columns:

- ``confluence.direction``: +1 long, -1 short, 0 none (the signal; see :mod:`.dataset`);
- ``confluence.score``: the signed score, ``direction * score`` (-100..100).

Both are features of the model too (a long and a short signal are different questions), so
a strategy that asks the gate passes them with the hub's features (:mod:`.gate`).
``tests/plugins/ml/test_features.py`` checks that the feature columns equal ``feature_rows``'.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from perpbot.core.analysis import feature_rows

__all__ = ["signal_rows", "DIRECTION", "SCORE", "signal_columns"]

DIRECTION = "confluence.direction"
SCORE = "confluence.score"


def signal_columns(confluence) -> dict[str, float]:
    """The two signal columns of a :class:`~perpbot.core.analysis.Confluence`: ``{DIRECTION, SCORE}``."""
    return {DIRECTION: float(confluence.direction), SCORE: float(confluence.direction * confluence.score)}


def signal_rows(events: Iterable[Any], tickers: Iterable[str], analyzers: Sequence[type], every_ns: int,
                params: Mapping[str, Mapping] | None = None, weights: Mapping[str, float] | None = None,
                ) -> Iterator[dict]:
    """Feature rows with the confluence signal (see the module docstring).

    :param events: time-ordered :mod:`perpbot.core.model` events and
        :class:`~perpbot.core.analysis.OpenInterest` samples.
    :param tickers: the markets; events of others are skipped.
    :param analyzers: analyzer classes; :param params: name -> overrides; :param weights: name -> weight.
    :param every_ns: sampling step, ns (> 0).
    :returns: dicts ``ts_ns, ticker, close``, the hub's features, ``confluence.direction``, ``confluence.score``.
    :raises ValueError: ``every_ns`` not positive or a bad analyzer parameter (from ``build_hubs``).
    """
    return feature_rows(events, tickers, analyzers, every_ns, params, weights=weights,
                        extra=lambda hub, ts: signal_columns(hub.confluence(ts)))
