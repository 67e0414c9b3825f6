"""Which time zone a time is shown in: the configuration's own, UTC or the local zone.

Pure: the mode and the configuration are passed in; nothing is flipped to read an answer.
"""

from __future__ import annotations

from datetime import UTC, tzinfo

from services.domain.model import Configuration
from services.domain.schedule import resolve_zone

#: The display modes, in the order the zone key cycles through them.
TIME_MODES = ("config", "utc", "local")


def zone_for(mode: str, config: Configuration | None) -> tzinfo | None:
    """The zone to show a time in under ``mode``; None means the machine's local zone.

    ``config`` mode uses the configuration's zone (Windows or IANA name); a configuration
    without a zone, or one we cannot resolve, falls back to UTC so a time is never shown in
    a zone the operator did not choose.
    """
    if mode == "utc":
        return UTC
    if mode == "local":
        return None
    if config is None or not config.time_zone:
        return UTC
    try:
        return resolve_zone(config.time_zone)
    except Exception:  # an unknown zone name: UTC, as documented above
        return UTC


def next_mode(mode: str) -> str:
    """The mode after ``mode`` in :data:`TIME_MODES` (an unknown mode starts the cycle)."""
    index = TIME_MODES.index(mode) if mode in TIME_MODES else 0
    return TIME_MODES[(index + 1) % len(TIME_MODES)]
