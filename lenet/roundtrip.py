"""Values of a saved run that would not survive a round trip through a store and back into a reader.

Python's json reads and writes things no other reader takes back: lone surrogates
(``"\\ud800"``, written for a file name that is not UTF-8), integers past 64 bits
(orjson, and so every database reader, refuses them), NUL characters (PostgreSQL
refuses them), nesting deeper than orjson's limits, and times past year 9999 once
moved to UTC (``9999-12-31T23:00:00-05:00`` is year 10000, which PostgreSQL stores
and Python cannot read back). :func:`unstorable` names the first such value of a
document, so the publisher refuses the run in one line and the database never holds
a row that breaks a reader; :func:`escape_surrogates` is what the file reader does
with lone surrogates instead (a file is read, not stored: it is shown escaped).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

INT64 = (-(2**63), 2**63 - 1)
MAX_DEPTH = 200  # under orjson's limits (255 to write, 1024 to read), with room for the columns around a value
TIME_KEYS = ("datetime", "time")  # a run's time, and commit_info.time


def is_time_in_range(text: str) -> bool:
    """Whether an ISO-8601 text is a time Python can hold in UTC (naive times count as UTC)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return False
    return True


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _string_fault(text: str) -> str | None:
    if _has_surrogate(text):
        return "a string that is not valid Unicode (a lone surrogate, as json writes for a name that is not UTF-8)"
    if "\x00" in text:
        return "a NUL character, which PostgreSQL cannot store"
    return None


def unstorable(value: Any, where: str = "run", depth: int = 0) -> str | None:
    """The first value under ``value`` that cannot round-trip, as ``<where>: <what>``; None when all can."""
    if depth > MAX_DEPTH:
        return f"{where}: nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        return None if INT64[0] <= value <= INT64[1] else f"{where}: the integer {value} does not fit in 64 bits"
    if isinstance(value, str):
        fault = _string_fault(value)
        return f"{where}: {fault}" if fault else None
    if isinstance(value, dict):
        for key, item in value.items():
            fault = _string_fault(key) if isinstance(key, str) else None
            if fault:
                return f"{where}: a key holds {fault}"
            inner = f"{where}.{key}"
            if key in TIME_KEYS and isinstance(item, str) and _looks_like_time(item) and not is_time_in_range(item):
                return f"{inner}: the time {item!r} is past year 9999 in UTC"
            found = unstorable(item, inner, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable(item, f"{where}[{index}]", depth + 1)
            if found:
                return found
    return None


def _looks_like_time(text: str) -> bool:
    return len(text) >= 10 and text[:4].isdigit() and text[4] == "-"


def escape_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) written as ``\\udcxx``: printable, storable."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if _has_surrogate(value) else value
    if isinstance(value, dict):
        return {escape_surrogates(k): escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_surrogates(v) for v in value]
    return value
