"""Analysis in a bot run: which analyzers a strategy asks for, the hubs the wiring builds, the ML gate.

The wiring (:func:`perpbot.core.bot.wiring.wire`) calls :func:`analysis_for_run` and
:func:`signal_gate_for` before it builds the strategy and hands what they return to it in
``StrategyContext.options`` (``"analysis"``: qualified ticker -> :class:`AnalysisHub`;
``"signal_gate"``: a :class:`~perpbot.core.analysis.SignalGate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import attrs

from perpbot.core.analysis.hub import AnalysisHub, HubEngine, build_hubs, resolve_analyzers
from perpbot.core.errors import ConfigError


@attrs.frozen
class AnalysisSpec:
    """What a strategy wants analysed (returned by its ``analysis_spec(params)`` classmethod).

    :param analyzers: registered analyzer names, in order (e.g. ``("technical", "orderflow")``).
    :param params: analyzer name -> its parameter overrides (name -> number).
    :param weights: analyzer name -> weight in the confluence score (default 1.0).
    """

    analyzers: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]] = attrs.Factory(dict)
    weights: Mapping[str, float] = attrs.Factory(dict)


def parse_names(text: str) -> tuple[str, ...]:
    """``"technical, volume"`` -> ``("technical", "volume")`` (blanks and empty items dropped)."""
    return tuple(n.strip() for n in str(text).split(",") if n.strip())


def analysis_for_run(strat_cls: type, params: Any, registered: Mapping[str, type], states: Mapping[str, Any],
                     engines: dict) -> dict[str, AnalysisHub] | None:
    """Build the run's analysis hubs when the strategy asks for them, and feed them from the loop.

    A strategy asks through a classmethod ``analysis_spec(params) -> AnalysisSpec | None``. Each
    market gets an :class:`AnalysisHub`; its entry in ``engines`` (the loop calls
    ``engines[ticker].on_event(state, ev)`` after every event) is replaced, in place, by a
    :class:`HubEngine` that updates the signal engine and then the hub.

    :param registered: analyzer name -> class (the plugin registry's ``analyzers``).
    :param states: qualified ticker -> MarketState.
    :param engines: qualified ticker -> signal engine (changed in place).
    :returns: qualified ticker -> hub, or None when the strategy wants no analysis.
    :raises ConfigError: an unknown analyzer (closest name given), a bad analyzer parameter
        or weight (one line, prefixed with the strategy's name).
    """
    spec_of = getattr(strat_cls, "analysis_spec", None)
    spec = spec_of(params) if spec_of is not None else None
    if spec is None or not spec.analyzers:
        return None
    where = f"strategy {getattr(strat_cls, 'name', strat_cls.__name__)}"
    try:
        classes = resolve_analyzers(registered, spec.analyzers)
        hubs = build_hubs(states, classes, spec.params, spec.weights)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for t, hub in hubs.items():
        engines[t] = HubEngine(engines.get(t), hub)
    return hubs


def signal_gate_for(params: Any, hook: Any, strategy: str) -> Any:
    """The ML gate a strategy's ``ml_model`` parameter names, loaded through the ``load_signal_gate`` hook.

    :param params: the strategy's parsed Params (read: ``ml_model``, optional ``ml_threshold``,
        a Decimal; above 0 it replaces the model's own threshold).
    :param hook: the plugin manager's hook relay (``pm.hook``).
    :param strategy: the strategy's name, for messages.
    :returns: the gate, or None when ``ml_model`` is empty or absent.
    :raises ConfigError: no such file, no plugin reads the file (one line naming it), or a plugin refused it.
    """
    path = str(getattr(params, "ml_model", "") or "")
    if not path:
        return None
    try:
        gate = hook.load_signal_gate(path=path)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"strategy {strategy}: parameter ml_model: {path!r}: {exc}") from None
    if gate is None:
        if not Path(path).exists():
            raise ConfigError(f"strategy {strategy}: parameter ml_model: no such file {path!r}")
        raise ConfigError(f"strategy {strategy}: parameter ml_model: no plugin can load {path!r} as a signal gate "
                          f"(is it a model file written by 'runbot.py ml train'?)")
    threshold = getattr(params, "ml_threshold", None)
    if threshold is not None and threshold > 0:
        try:
            gate.threshold = float(threshold)
        except AttributeError:
            raise ConfigError(f"strategy {strategy}: parameter ml_threshold: the gate from {path!r} "
                              f"does not accept a threshold") from None
    return gate


#: every built-in analyzer, in hub order (perpbot.plugins.analysis)
BUILTIN_NAMES = ("technical", "volume", "orderflow", "orderbook", "structure", "sentiment")


def confluence_input(weight: Any) -> AnalysisSpec | None:
    """The spec of a strategy that blends the confluence into its own score with ``weight`` (0-1):
    every built-in analyzer when ``weight > 0``, else None (no analysis, no cost)."""
    return AnalysisSpec(BUILTIN_NAMES) if weight and weight > 0 else None


def blend_confluence(hubs: Mapping[str, AnalysisHub], ticker: str, ts_ns: int, long: bool, composite: float,
                     weight: Any) -> tuple[float, tuple[str, ...]]:
    """A 0-100 score of one side blended with the market's confluence (cross-venue), and its reasons.

    The confluence becomes a 0-100 score for the side, ``50 + s * direction * score / 2``
    (``s`` +1 long, -1 short: 100 = the strongest agreement for the side, 50 = none), and the
    result is ``(1 - w) * composite + w * that``.

    :param hubs: qualified ticker -> hub (``StrategyContext.options["analysis"]``).
    :param long: the side the composite is for.
    :param composite: the strategy's own 0-100 score for that side.
    :param weight: ``w``, 0-1 (Decimal or float).
    :returns: ``(blended score, the confluence's reasons)``; the composite unchanged and no
        reasons when the market has no hub.
    """
    from perpbot.core.analysis.hub import market_confluence

    if ticker.split(":", 1)[-1] not in {t.split(":", 1)[-1] for t in hubs}:
        return composite, ()
    c = market_confluence(hubs, ticker, ts_ns)
    w = float(weight)
    side_score = 50.0 + (1 if long else -1) * c.direction * c.score / 2.0
    return (1.0 - w) * composite + w * side_score, c.reasons
