"""Timestamps of log lines: the store keeps UTC ISO 8601 with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ts(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def docker_ts_to_iso(raw: str) -> str:
    """Docker's RFC 3339 nanosecond UTC stamp ("...12.123456789Z", trailing zeros
    trimmed) → the store's microsecond form, by slicing (the hot path: no parsing)."""
    if len(raw) > 20 and raw[19] == ".":
        frac = (raw[20:-1] + "000000")[:6]
    else:
        frac = "000000"
    return f"{raw[:19]}.{frac}+00:00"
