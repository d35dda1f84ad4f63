"""Windows FILETIME values as AD stores them in ``accountExpires`` and ``lastLogonTimestamp``.

Both are Integer8 (LargeInteger) attributes: 100-nanosecond intervals since 1601-01-01 UTC. Microsoft's schema
docs: "Account-Expires attribute" (https://learn.microsoft.com/en-us/windows/win32/adschema/a-accountexpires):
"A value of 0 or 0x7FFFFFFFFFFFFFFF (9223372036854775807) indicates that the account never expires";
"Last-Logon-Timestamp attribute" (https://learn.microsoft.com/en-us/windows/win32/adschema/a-lastlogontimestamp):
the time of the last logon, replicated (it lags the real last logon by up to ~14 days, ``msDS-LogonTimeSyncInterval``);
0 (or absent) means the account never logged on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: 1601-01-01 UTC, the FILETIME epoch.
EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
#: "Never" in accountExpires (besides 0).
NEVER = 0x7FFFFFFFFFFFFFFF


def from_filetime(value: int | str | None) -> datetime | None:
    """A FILETIME as an aware UTC datetime; None for absent, 0, :data:`NEVER`, or a value past year 9999.

    Raises ValueError for text that is not an integer.
    """
    if value is None or value == "":
        return None
    ticks = int(value)
    if ticks <= 0 or ticks >= NEVER:
        return None
    try:
        return EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def to_filetime(moment: datetime | None) -> int:
    """An aware datetime as a FILETIME; None -> 0 ("never" for lastLogonTimestamp)."""
    if moment is None:
        return 0
    delta = moment.astimezone(UTC) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


__all__ = ["EPOCH", "NEVER", "from_filetime", "to_filetime"]
