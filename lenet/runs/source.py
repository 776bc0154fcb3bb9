"""Where runs live, behind one protocol: ``open_source(texts).runs(filter)`` for folders, files and PostgreSQL.

As pytest-benchmark's storage classes answer the same methods, every command takes a SOURCE the
same way and never asks where runs live: saved-run files or folders (one or more), or one
``postgresql://`` URL (``--db`` alone: the URL in ``$LENET_DB_URL``). A file source applies a
:class:`~lenet.runs.selection.RunFilter` after reading; the database applies it in SQL, so
only what is selected leaves the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lenet.runs.files import Progress, read_runs
from lenet.runs.model import Run
from lenet.runs.postgres.connection import (
    BadURLError,
    database_url,
    is_database_url,
    looks_like_database_url,
    redact_url,
)
from lenet.runs.runset import RunSet
from lenet.runs.selection import QueryError, RunFilter, is_empty, select_frame


class RunSource(Protocol):
    def runs(self, filters: RunFilter | None = None, progress: Progress | None = None) -> RunSet:
        """The selected runs, with one line per problem met while reading them."""
        ...

    def describe(self) -> str:
        """What the source is, for messages; never a password."""
        ...


@dataclass(frozen=True)
class FileSource:
    """Saved-run files and folders (pytest-benchmark storage, any version)."""

    paths: tuple[Path, ...]

    def runs(self, filters: RunFilter | None = None, progress: Progress | None = None) -> RunSet:
        found = read_runs(self.paths, progress)
        if not is_empty(filters):
            found.runs = select_runs(found.runs, filters)
        return found

    def describe(self) -> str:
        return ", ".join(str(p) for p in self.paths)


@dataclass(frozen=True)
class DatabaseSource:
    """The shared PostgreSQL history (docs/database.md); psycopg is imported only when it is read."""

    url: str

    def runs(self, filters: RunFilter | None = None, progress: Progress | None = None) -> RunSet:
        from lenet.runs.postgres.read import read_database

        return read_database(self.url, filters)

    def describe(self) -> str:
        return redact_url(self.url)


def open_source(texts: Sequence[str], environ: Mapping[str, str] | None = None) -> RunSource:
    """A source for what a user typed: one ``postgresql://`` URL, or saved-run files and folders.

    ``""`` (``--db`` given alone) is the URL in ``$LENET_DB_URL``; QueryError (exit 2) for a URL
    mixed with paths. An empty ``texts`` is an empty file source.
    """
    urls = [text for text in texts if text == "" or looks_like_database_url(text)]
    if not urls:
        return FileSource(tuple(Path(text) for text in texts))
    if len(texts) > 1:
        raise QueryError("give saved-run files or folders, or one postgresql:// URL, not both")
    if urls[0] and not is_database_url(urls[0]):  # a URL spelled as a path, one slash lost: never read as a path
        raise BadURLError(f"{urls[0]} is not a database URL; expected postgresql://[user@]host[:port]/database")
    return DatabaseSource(database_url(urls[0] or None, environ))


def select_runs(runs: list[Run], filters: RunFilter) -> list[Run]:
    """The runs and benchmarks ``filters`` keeps, by the very rules the database applies in SQL."""
    from lenet.runs.frame import to_frame  # the frame's selection is the one implementation of the rules

    kept = select_frame(to_frame(runs), filters)
    wanted = set(zip(kept["source"], kept["name"], strict=True))
    chosen = [
        dataclasses.replace(run, results=tuple(r for r in run.results if (run.source, r.name) in wanted))
        for run in runs
    ]
    return [run for run in chosen if run.results]
