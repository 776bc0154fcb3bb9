"""Files the project writes: names checked before they become paths, and files that appear whole.

A value read from a saved run (a machine fingerprint, a device name) may end up naming a
folder. Such a value is checked first (:func:`safe_component`): a run whose fingerprint is
``../../etc`` must never write outside the folder it was given. Files are written to a
temporary name beside their target and renamed into place (:func:`write_atomic`), so a
reader never sees half a file, with the permissions the user's umask asks for.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

# Letters, digits, '.', '_', '+' and '-', starting with a letter or digit: never a path separator,
# never hidden, never an option; '..' is refused as well.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
SAFE_NAME_RULE = "1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit, without '..'"


class UnsafeNameError(ValueError):
    """A value that cannot name a file or folder; the message names it and what is allowed."""


def is_safe_name(value: object, max_length: int = 100) -> bool:
    """True for text that can name a file or folder as it is (:data:`SAFE_NAME_RULE`, at most ``max_length``)."""
    return (
        isinstance(value, str)
        and len(value) <= max_length
        and _SAFE_NAME.fullmatch(value) is not None
        and ".." not in value
    )


def safe_component(value: object, what: str) -> str:
    """``value`` as one path component, or UnsafeNameError naming it and :data:`SAFE_NAME_RULE`."""
    if not is_safe_name(value):
        raise UnsafeNameError(f"{what} {str(value)[:60]!r} cannot name a folder; expected {SAFE_NAME_RULE}")
    return str(value)


def umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, data: bytes | str, exclusive: bool = False) -> Path:
    """Write ``path`` whole or not at all; with ``exclusive``, FileExistsError rather than replace a file."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        os.chmod(temporary, 0o666 & ~umask())  # a temporary file is 0600; the result follows the umask
        if exclusive:
            os.link(temporary, path)  # fails if the target exists: never overwrites
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
