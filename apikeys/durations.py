"""Short durations in requests: `90s`, `30m`, `12h`, `7d` (a bare number is seconds)."""

import re
from datetime import timedelta

from rest_framework import serializers

_SPEC = re.compile(r"^\s*(\d{1,7})\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int) -> timedelta:
    """The duration `value` names; ValueError when it is not of the form above."""
    match = _SPEC.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 90s, 30m, 12h or 7d.")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


class DurationSpecField(serializers.Field):
    """A duration given as `7d`, `12h`, `30m`, `90s` or seconds, bounded by `max_value`."""

    default_error_messages = {
        "invalid": "Give a duration such as 90s, 30m, 12h or 7d.",
        "max_value": "Must be at most {max_value}.",
    }

    def __init__(self, *, max_value: timedelta, **kwargs):
        self.max_value = max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> timedelta:
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid")
        try:
            duration = parse_duration(data)
        except ValueError:
            self.fail("invalid")
        if duration > self.max_value:
            self.fail("max_value", max_value=_describe(self.max_value))
        return duration

    def to_representation(self, value: timedelta) -> int:
        return int(value.total_seconds())


def _describe(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
