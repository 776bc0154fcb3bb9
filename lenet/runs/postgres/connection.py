"""Connecting to the shared PostgreSQL history: the URL, its secrets, and one line per failure.

The database is named by a libpq connection string, as a URL
(``postgresql://user:password@host:5432/lenet?sslmode=require``) or as keywords
(``host=db user=bench dbname=lenet``), given with ``--db`` or in the environment
variable ``LENET_DB_URL``. libpq's own variables (``PGPASSWORD``, ``PGHOST``, ...)
and ``~/.pgpass`` apply as usual, which keeps a password out of the URL entirely.

A password is never printed: every message that could hold the URL or the server's
answer goes through :func:`redact`. Each failure becomes a :class:`StoreError`
whose message is one line and whose ``exit_code`` is the command's exit status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lenet.redact import MASK as MASK  # re-exported: the mask messages show
from lenet.redact import redact as redact_text

if TYPE_CHECKING:
    import psycopg

ENV_VAR = "LENET_DB_URL"
DEFAULT_CONNECT_TIMEOUT = 10  # seconds; libpq's default is to wait forever for an unresponsive host

# Exit statuses of every command that talks to the database (docs/database.md lists them).
EXIT_OK = 0
EXIT_BAD_INPUT = 2  # usage, no or malformed URL, a path that is missing or not a saved run
EXIT_DATABASE = 3  # unreachable, credentials refused, no such database, schema of another version: nothing written
EXIT_INTERRUPTED = 4  # the connection broke or the server refused a run partway: what was reported stored is stored


class StoreError(Exception):
    """A database failure the user can act on; ``str()`` is one line, already redacted."""

    exit_code = EXIT_DATABASE


class BadURLError(StoreError):
    exit_code = EXIT_BAD_INPUT


class UnreachableError(StoreError):
    """No server answered (refused, unknown host, timeout, no such socket)."""


class CredentialsError(StoreError):
    """A server answered and refused the user, password or host entry (pg_hba.conf)."""


class NoDatabaseError(StoreError):
    """The server has no database of that name."""


class SchemaError(StoreError):
    """The database's schema is of another version than this code's, or missing where it must exist."""


class FailedPartwayError(StoreError):
    """The connection broke or the server refused a statement partway through a command."""

    exit_code = EXIT_INTERRUPTED


def is_database_url(text: str) -> bool:
    """Whether a command-line input names a database rather than a file or folder."""
    return text.strip().lower().startswith(("postgresql://", "postgres://"))


def looks_like_database_url(text: str) -> bool:
    """A URL where a path is expected, also as a Path spells it (``postgresql:/...``, one slash gone)."""
    return text.strip().lower().startswith(("postgresql:/", "postgres:/"))


def database_url(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The URL given on the command line, else the one in ``LENET_DB_URL``; BadURLError when neither is set."""
    environ = os.environ if environ is None else environ
    url = explicit if explicit is not None else environ.get(ENV_VAR)
    if url is None or not url.strip():
        raise BadURLError(
            f"no database named: pass --db URL or set {ENV_VAR} "
            "(e.g. postgresql://bench@db.example:5432/lenet; keep the password in PGPASSWORD or ~/.pgpass)"
        )
    return url.strip()


def redact(text: str, url: str | None = None) -> str:
    """``text`` with any password in it masked (:func:`lenet.redact.redact`, the one redaction)."""
    return redact_text(text, url)


def redact_url(url: str) -> str:
    """The URL as it may be printed: ``postgresql://bench:***@db:5432/lenet``."""
    return redact_text(url, url)


def libpq_message(text: str) -> str:
    """libpq's messages span lines (FATAL, DETAIL, HINT, one per host tried): join them with '; '."""
    parts = [" ".join(line.split()) for line in str(text).splitlines()]
    return "; ".join(p for p in parts if p)


def server_error(error: BaseException, url: str) -> str:
    """A driver error as one line, with anything of ``url``'s secrets masked."""
    return libpq_message(redact(str(error), url))


def _conninfo(url: str) -> dict[str, Any]:
    """The URL's keywords; empty when psycopg is missing or the URL is malformed (reported where it is used)."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return {}
    try:
        return conninfo_to_dict(url)
    except (psycopg.ProgrammingError, UnicodeDecodeError):  # %ab: percent-encoding of bytes that are not UTF-8
        return {}


def _user_of(url: str) -> str:
    user = _conninfo(url).get("user")
    return str(user or os.environ.get("PGUSER") or "(the default user)")


_CREDENTIAL_SIGNS = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "pg_hba.conf",
    "role ",  # role "x" does not exist
    "permission denied for database",
)


def classify_connect_error(error: Exception, url: str) -> StoreError:
    """The StoreError for a failed connection attempt, with a redacted one-line message."""
    message = server_error(error, url)
    where = redact_url(url)
    state = getattr(error, "sqlstate", None)
    lowered = message.lower()
    if state in ("28P01", "28000") or any(sign in lowered for sign in _CREDENTIAL_SIGNS):
        return CredentialsError(f"the database at {where} refused the credentials of user {_user_of(url)}: {message}")
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return NoDatabaseError(
            f"the server at {where} has no such database ({message}); create it first (createdb) or fix the URL"
        )
    return UnreachableError(f"cannot reach the database at {where}: {message}")


def connect(url: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
    """An autocommit connection (callers open their own transactions), or a StoreError.

    ``connect_timeout`` applies unless the URL sets its own.
    """
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise StoreError(
            "the database needs the psycopg driver, which is not installed: pip install 'psycopg[binary]'"
        ) from None
    try:
        options = conninfo_to_dict(url)
    except (psycopg.ProgrammingError, UnicodeDecodeError) as error:  # %ab: percent-encoding of bytes not UTF-8
        reason = server_error(error, url)
        raise BadURLError(f"the database URL {redact_url(url)!r} is not a libpq connection string ({reason})") from None
    extra: dict[str, Any] = {"application_name": options.get("application_name") or "lenet-bench"}
    if "connect_timeout" not in options:
        extra["connect_timeout"] = connect_timeout
    try:
        connection = psycopg.connect(url, autocommit=True, **extra)
    except psycopg.OperationalError as error:
        raise classify_connect_error(error, url) from None
    _use_fast_json(connection)
    return connection


def _use_fast_json(connection: psycopg.Connection[Any]) -> None:
    """orjson for JSONB both ways: several times faster than json on machine_info and extra_info.

    orjson writes NaN and infinities as null (JSON has no spelling for them and JSONB refuses
    json's ``NaN``); stats columns are double precision and keep them.
    """
    import orjson
    from psycopg.types.json import set_json_dumps, set_json_loads

    set_json_dumps(orjson.dumps, context=connection)
    set_json_loads(_loads, context=connection)


def _loads(data: str | bytes) -> Any:
    import orjson

    return orjson.loads(data)
