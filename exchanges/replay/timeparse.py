"""Timestamps in data files -> integer ns since the epoch (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_ns(value) -> int:
    """Parse an epoch number (s, ms, us or ns, told apart by magnitude) or an ISO-8601 text.

    Naive ISO times are taken as UTC. ``"2024-02-01T16:00:00.002Z"`` keeps its milliseconds.

    :raises ValueError: naming the value when it is neither.
    """
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        delta = dt - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    s = str(value).strip()
    if s.isdigit():
        n = int(s)
        if n < 100_000_000_000:  # seconds (until year 5138)
            return n * 1_000_000_000
        if n < 100_000_000_000_000:  # milliseconds
            return n * 1_000_000
        if n < 100_000_000_000_000_000:  # microseconds
            return n * 1_000
        return n
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise ValueError(f"timestamp {value!r} is neither an epoch number nor an ISO-8601 time") from None
    return epoch_ns(dt)
