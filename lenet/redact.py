"""One redaction for every output: no database password is ever printed, logged or written.

A password reaches a message in many spellings: inside a URL as written
(``postgresql://bench:Tr0ub/4dor@db/lenet``, where an unencoded ``/``, space or ``@``
confuses any pattern), percent-encoded or decoded, as a keyword (``host=db
password='a b'``), in the URL's query (``?password=...``), in libpq's own error
messages, or as a path a URL was mistaken for (``postgresql:/bench:S3cret@db``).

So the secrets are collected where they come in, parsed with psycopg's own
conninfo parser (libpq's rules, not a pattern of ours): every command-line
argument, the environment twin ``LENET_DB_URL`` and libpq's ``PGPASSWORD``
(:func:`remember_secrets`). Where libpq's parser misreads a URL (an unencoded ``/``
or ``@`` in the password moves the password into the host or port), the URL's user
information is also taken as everything between ``//`` and its *last* ``@``.
:func:`redact` then masks every spelling of every known secret, and any connection
string found in the text itself. The commands apply it at one edge: their stdout and
stderr are wrapped (:func:`redacted_output`, installed by ``lenet.exits.command``),
so no call site has to remember. docs/exit-codes.md states the rule.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO
from urllib.parse import quote, unquote

MASK = "***"
SECRET_VARIABLES = ("LENET_DB_URL", "LENET_PUBLISH_DB", "PGPASSWORD")  # the --db twins, and libpq's own
# A secret shorter than this is masked only where it stands in a connection string, never as a bare
# substring anywhere: masking every "1" of a report for a password "1" would hide the report, not the secret.
MIN_BARE_SECRET = 4

_URL_START = re.compile(r"postgres(?:ql)?:/+", re.IGNORECASE)
_KEYWORD = re.compile(r"\bpassword\s*=\s*", re.IGNORECASE)
_known: set[str] = set()  # passwords
_known_parts: set[str] = set()  # what libpq misread a password as (a host, a port), and the password's pieces


def _parsed(text: str) -> dict[str, str]:
    """The keywords libpq's parser reads from a connection string; empty when it does not parse."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # the file-only harness runs without psycopg: the structural reading still applies
        return {}
    try:
        return {key: str(value) for key, value in conninfo_to_dict(text).items() if value is not None}
    except Exception:  # noqa: BLE001 - any text may be tried; what does not parse has no password to read here
        return {}


def _misread_parts(parsed: Mapping[str, str], password: str) -> set[str]:
    """Where libpq misread a URL's password as its host, port or database (``bench:pa@ss@db`` has the host
    ``ss@db``), those values carry pieces of it into libpq's messages: they are secrets too."""
    found = set()
    for key in ("host", "hostaddr", "port", "dbname", "user"):
        value = parsed.get(key, "")
        if value and (value in password or "@" in value or any(p in value for p in _pieces(password))):
            found.add(value)
    return found | _pieces(password)


def _pieces(password: str) -> set[str]:
    """The parts of a password between the characters that split URLs: each may be printed apart."""
    return {p for p in re.split(r"[@/:\s?#&='\"\\]+", password) if len(p) >= MIN_BARE_SECRET}


def _url_userinfo_password(url: str) -> str | None:
    """The password of a URL read as a person meant it: user info runs from ``//`` to the last ``@``."""
    match = _URL_START.match(url)
    if match is None:
        return None
    rest = url[match.end() :]
    at = rest.rfind("@")
    if at < 0:
        return None
    _user, colon, password = rest[:at].partition(":")
    return password if colon and password else None


def _keyword_password(text: str) -> str | None:
    """A ``password=`` keyword's value where the whole string does not parse: quoted, or up to a space."""
    match = _KEYWORD.search(text)
    if match is None:
        return None
    rest = text[match.end() :]
    if rest.startswith("'"):
        end = _quoted_end(rest, 0)
        return re.sub(r"\\(.)", r"\1", rest[1 : end - 1] if rest[end - 1 : end] == "'" else rest[1:])
    value = rest.split(None, 1)[0] if rest.strip() else ""
    return value.split("&", 1)[0] or None


def _quoted_end(text: str, start: int) -> int:
    """The index after the quote that closes the one at ``start`` (libpq's ``\\'`` escapes skipped), or the end."""
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == "'":
            return index + 1
        index += 1
    return len(text)


def passwords_in(text: str) -> set[str]:
    """Every password a connection string (URL or keywords) could carry, as libpq reads it and as it was typed."""
    found = {_parsed(text).get("password"), _url_userinfo_password(text.strip()), _keyword_password(text)}
    return {p for p in found if p}


def misread_parts_in(text: str) -> set[str]:
    """Where libpq misreads the URL's password: the host, port or database it took from it, and its pieces."""
    parsed, typed = _parsed(text), _url_userinfo_password(text.strip())
    return _misread_parts(parsed, typed) if typed and typed != parsed.get("password") else set()


def spellings(secret: str) -> set[str]:
    """The forms a password can take in a message: as typed, percent-encoded, decoded, whitespace collapsed."""
    keyword = secret.replace("\\", "\\\\").replace("'", "\\'")  # as quoted in libpq's keyword form
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(secret, safe="@/:+"), " ".join(secret.split())}
    forms |= {keyword, secret.replace("\\", "\\\\")}  # and as a message quotes it, backslashes doubled
    return {f for f in forms if f}


def remember_secrets(arguments: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Learn the passwords in a command's arguments and in the environment, so that :func:`redact` masks them."""
    environ = os.environ if environ is None else environ
    texts = [a.partition("=")[2] if a.startswith("-") and "=" in a else a for a in arguments]  # --db=URL too
    texts += [environ[name] for name in SECRET_VARIABLES if environ.get(name) and name != "PGPASSWORD"]
    for text in texts:
        _known.update(passwords_in(text))
        _known_parts.update(misread_parts_in(text))
    if environ.get("PGPASSWORD"):
        _known.add(environ["PGPASSWORD"])


def forget_secrets() -> None:
    _known.clear()
    _known_parts.clear()


def _mask_connection_strings(text: str) -> str:
    """Mask the user information of every URL and every ``password=`` value found in the text itself."""

    def url_end(text: str, end: int) -> int:
        while end < len(text) and not text[end].isspace():
            end += 1
        return end

    def mask_user_information(token: str, scheme_end: int) -> str:
        at = token.rfind("@")
        colon = token.find(":", scheme_end, at) if at > 0 else -1
        return token[: colon + 1] + MASK + token[at:] if colon > 0 else token

    return _mask_keywords(_rewrite_tokens(text, _URL_START, url_end, mask_user_information))


def _mask_keywords(text: str) -> str:
    def value_end(text: str, end: int) -> int:
        if text[end : end + 1] == "'":
            return _quoted_end(text, end)
        while end < len(text) and not text[end].isspace() and text[end] not in "&'\"":
            end += 1
        return end

    return _rewrite_tokens(text, _KEYWORD, value_end, lambda token, keyword_end: token[:keyword_end] + MASK)


def _rewrite_tokens(
    text: str, pattern: re.Pattern[str], token_end: Callable[[str, int], int], rewrite: Callable[[str, int], str]
) -> str:
    """``text`` with each token that starts at a match of ``pattern`` and runs to ``token_end(text, match end)``
    replaced by ``rewrite(token, length of the match)``; a match inside an earlier token is part of that token."""
    out, position = [], 0
    for match in pattern.finditer(text):
        if match.start() < position:
            continue
        end = token_end(text, match.end())
        out.append(text[position : match.start()] + rewrite(text[match.start() : end], match.end() - match.start()))
        position = end
    return "".join(out) + text[position:]


def redact(text: str, *connection_strings: str | None) -> str:
    """``text`` with every password masked: those remembered, those of ``connection_strings``, and any
    connection string in the text itself."""
    secrets, parts = set(_known), set(_known_parts)
    for conninfo in connection_strings:
        if conninfo:
            secrets |= passwords_in(conninfo)
            parts |= misread_parts_in(conninfo)
    # Passwords first, whole: a space or '@' in one would split it across the connection strings found next.
    text = _replace(text, {form for secret in secrets for form in spellings(secret)})
    text = _mask_connection_strings(text)
    # last, so that a URL keeps its host where the whole password was found
    return _replace(text, {form for part in parts for form in spellings(part)})


def _replace(text: str, forms: set[str]) -> str:
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= MIN_BARE_SECRET:
            text = text.replace(form, MASK)
    return text


def redact_url(url: str) -> str:
    """A connection string as it may be printed: ``postgresql://bench:***@db:5432/lenet``."""
    return redact(url, url)


class RedactingStream:
    """A text stream that masks passwords in everything written through it, and escapes what its encoding cannot
    hold (a lone surrogate from a non-UTF-8 name) rather than failing the command."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_encodable(redact(text), getattr(self._stream, "encoding", None) or "utf-8"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _encodable(text: str, encoding: str) -> str:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        return text
    return text


@contextlib.contextmanager
def redacted_output(arguments: Iterable[str]) -> Iterator[None]:
    """Within the block, stdout and stderr mask every password from ``arguments`` and the environment."""
    known, parts = set(_known), set(_known_parts)
    remember_secrets(arguments)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        forget_secrets()
        _known.update(known)
        _known_parts.update(parts)
