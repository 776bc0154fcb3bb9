"""The PostgreSQL history against a real server the tests start (tests/postgres_server.py); no mock database.

Publishing (once per run, one transaction per run, bad files reported), the schema and its
migrations, failures (unreachable, credentials, newer schema, a publisher killed midway,
publishers at once), passwords never printed, and reading back: filters run in SQL and the
frame equal to the one the files give.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from lenet.analysis.summary import Filters
from lenet.runs.files import read_document, read_run, read_runs
from lenet.runs.postgres.connection import (
    EXIT_BAD_INPUT,
    EXIT_DATABASE,
    EXIT_OK,
    BadURLError,
    CredentialsError,
    UnreachableError,
    connect,
    database_url,
    redact,
    redact_url,
)
from lenet.runs.postgres.connection import (
    EXIT_INTERRUPTED as EXIT_PARTWAY,
)

try:
    import psycopg
except ImportError:
    if os.environ.get("LENET_REQUIRE_POSTGRES") == "1":
        raise
    pytest.skip("the psycopg driver is not installed (pip install 'lenet-bench[db]')", allow_module_level=True)

from lenet.cli.publish import main as publish_main
from lenet.cli.source_options import add_selection_arguments, selection_from_arguments, source_from_arguments
from lenet.runs.postgres import write as publish_module
from lenet.runs.postgres.read import (
    FLOAT8_ARRAY_OID,
    Float8ArrayLoader,
    glob_to_regex,
    machines,
    query_runs,
    read_database,
)
from lenet.runs.postgres.schema import LATEST, MIGRATIONS, SCHEMA, SchemaError, ensure_schema, require_schema
from lenet.runs.postgres.write import content_sha, publish_documents, publish_paths
from lenet.runs.selection import QueryError, RunFilter, parse_commit_range, parse_when, select_frame
from lenet.runs.source import DatabaseSource, FileSource

pytest_plugins = ("postgres_server",)  # the session's server and a fresh database per test (``pg_url``)

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = FIXTURES / "runs"
BAD = FIXTURES / "bad"
CPU_RUN = RUNS / "lenet-cpu" / "Linux-CPython-3.11-64bit" / "0001_5adf536_20261127_121749.json"
REPO = Path(__file__).resolve().parents[1]
PASSWORD_USER = "bench"
PASSWORD = "s3cret-Pa55word"  # must appear in no message, whatever fails


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(f"SELECT count(*) FROM {SCHEMA}.{table}").fetchone()[0]


def write_run(folder: Path, name: str, document: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(document))
    return path


def variant_of(document: dict, index: int, **commit) -> dict:
    """A distinct run (another process) made from a fixture run: its own time, optionally its own commit."""
    new = copy.deepcopy(document)
    new["datetime"] = f"2026-11-{1 + index % 28:02d}T{index // 28 % 24:02d}:00:00.{index:06d}+00:00"
    new["commit_info"].update(commit)
    return new


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- publishing ---------------------------------------------------------------------------


def test_publish_stores_each_run_once_and_reports_each_file(pg_url, capsys):
    assert publish_main([str(RUNS), "--db", pg_url]) == EXIT_OK
    first = capsys.readouterr().out
    assert sum(line.startswith("published  ") for line in first.splitlines()) == 5
    assert "published 5, already there 0, bad 0" in first
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (5, 30 + 30 + 12 + 3 + 3)
    assert publish_main([str(RUNS), "--db", pg_url]) == EXIT_OK  # twice: stored once
    assert "published 0, already there 5, bad 0" in capsys.readouterr().out
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (5, 78)


def test_the_same_run_reformatted_or_copied_is_the_same_run(pg_url, tmp_path):
    document = read_document(CPU_RUN)
    copy_path = tmp_path / "baselines" / "renamed.json"
    copy_path.parent.mkdir()
    copy_path.write_text(json.dumps(document, indent=1, sort_keys=True))
    summary = publish_paths(pg_url, [CPU_RUN, copy_path])
    assert [o.status for o in summary.outcomes] == ["published", "already there"]
    assert content_sha(document) == content_sha(json.loads(copy_path.read_text()))
    assert count(pg_url, "runs") == 1


def test_bad_files_get_one_line_each_and_the_rest_is_published(pg_url, capsys):
    status = publish_main([str(BAD), str(RUNS / "other-pb3"), str(FIXTURES / "missing.json"), "--db", pg_url])
    out, err = capsys.readouterr()
    assert status == EXIT_BAD_INPUT
    lines = err.strip().splitlines()
    assert len(lines) == 5  # empty, truncated, not a run, not UTF-8, missing
    assert all(line.startswith("error: ") for line in lines)
    assert any("truncated.json: is not valid JSON" in line for line in lines)
    assert any("missing.json: no such file or folder" in line for line in lines)
    assert "published 1, already there 0, bad 5" in out
    assert count(pg_url, "runs") == 1


def test_a_run_the_database_cannot_hold_is_bad_and_stores_nothing(pg_url, tmp_path):
    document = read_document(CPU_RUN)
    document["benchmarks"][3]["name"] = "nul\x00char"  # PostgreSQL text cannot hold NUL
    bad = write_run(tmp_path, "nul.json", document)
    good = write_run(tmp_path, "good.json", variant_of(read_document(CPU_RUN), 1))
    summary = publish_paths(pg_url, [bad, good])
    assert [o.status for o in summary.outcomes] == ["bad", "published"]
    assert "benchmarks[3].name: a NUL character" in summary.outcomes[0].detail
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (1, 30)


def test_no_database_named_is_one_line_and_status_2(capsys, monkeypatch):
    monkeypatch.delenv("LENET_DB_URL", raising=False)
    assert publish_main([str(CPU_RUN)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no database named: pass --db URL or set LENET_DB_URL") and "\n" not in err


def test_the_url_comes_from_the_environment(pg_url, monkeypatch, capsys):
    monkeypatch.setenv("LENET_DB_URL", pg_url)
    assert publish_main([str(CPU_RUN)]) == EXIT_OK
    assert count(pg_url, "runs") == 1
    assert database_url(None, {"LENET_DB_URL": " x "}) == "x"
    assert database_url("y", {"LENET_DB_URL": "x"}) == "y"


# --- schema and migrations ----------------------------------------------------------------


def test_the_schema_is_created_by_the_publisher_with_its_version(pg_url):
    publish_paths(pg_url, [CPU_RUN])
    with psycopg.connect(pg_url) as connection:
        versions = connection.execute(f"SELECT version FROM {SCHEMA}.schema_version ORDER BY version").fetchall()
        indexes = {r[0] for r in connection.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [SCHEMA])}
    assert [v[0] for v in versions] == [m.version for m in MIGRATIONS] and versions[-1][0] == LATEST
    assert {"runs_fingerprint_time", "runs_commit", "benchmarks_phase_batch", "benchmarks_label"} <= indexes


def test_an_older_schema_is_migrated_by_the_publisher_and_refused_by_readers(pg_url, capsys):
    with connect(pg_url) as connection:
        assert ensure_schema(connection, MIGRATIONS[:1]) == (0, 1)  # a database left at version 1
        publish_module.publish_run(connection, read_run(CPU_RUN), CPU_RUN.name)  # a run stored under v1
        with pytest.raises(SchemaError, match="schema version 1, older than this code's 2: migrate it with"):
            require_schema(connection)
    assert publish_main(["--migrate", "--db", pg_url]) == EXIT_OK
    assert "migrated the lenet schema of" in (out := capsys.readouterr().out) and "version 1 -> 2" in out
    loaded = read_database(pg_url)
    assert loaded.files_read == 1 and len(loaded.frame) == 30  # the run stored before the migration


def test_a_newer_schema_is_refused_in_one_line(pg_url, capsys):
    publish_paths(pg_url, [CPU_RUN])
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"INSERT INTO {SCHEMA}.schema_version (version, description) VALUES (99, 'future')")
    assert publish_main([str(RUNS), "--db", pg_url]) == EXIT_DATABASE
    err = capsys.readouterr().err.strip()
    assert "schema version 99, newer than this code's 2" in err and "\n" not in err
    assert count(pg_url, "runs") == 1  # nothing written
    with pytest.raises(SchemaError, match="newer"):
        read_database(pg_url)


def test_publishers_starting_together_on_an_empty_database_migrate_it_once(pg_url, tmp_path):
    base = read_document(CPU_RUN)
    paths = [write_run(tmp_path, f"{i}.json", variant_of(base, i)) for i in range(6)]
    errors: list[BaseException] = []
    notices: list[str] = []

    def publish(path: Path) -> None:
        try:
            publish_paths(pg_url, [path], notice=notices.append)
        except BaseException as error:  # noqa: BLE001 - collected and asserted on below
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(pg_url) as connection:
        assert connection.execute(f"SELECT count(*) FROM {SCHEMA}.schema_version").fetchone()[0] == len(MIGRATIONS)
    assert count(pg_url, "runs") == 6
    # Only the one that migrated says so: the others found the schema done once they had the lock.
    assert len(notices) == 1 and notices[0].endswith(f"version 0 -> {LATEST}"), notices


# --- faults -------------------------------------------------------------------------------


def test_a_migration_the_server_refuses_is_one_line_and_changes_nothing(pg_url, monkeypatch, capsys):
    from lenet.runs.postgres.schema import Migration

    broken = (*MIGRATIONS, Migration(LATEST + 1, "a statement the server refuses", ("SELECT * FROM no_such_table",)))
    monkeypatch.setattr(publish_module, "ensure_schema", lambda connection: ensure_schema(connection, broken))
    assert publish_main(["--db", pg_url, str(CPU_RUN)]) == EXIT_DATABASE
    out, err = capsys.readouterr()
    assert err.startswith("error: the database refused to create or migrate the lenet schema (nothing was changed)")
    assert "UndefinedTable" in err and err.count("\n") == 1 and "Traceback" not in out + err
    with psycopg.connect(pg_url) as connection:  # the whole migration rolled back: not even version 1
        assert connection.execute("SELECT to_regclass('lenet.runs')").fetchone()[0] is None


def test_two_publishers_at_once_store_no_duplicate_and_lose_nothing(pg_url, tmp_path):
    base = read_document(CPU_RUN)
    distinct = [write_run(tmp_path / "distinct", f"{i}.json", variant_of(base, i)) for i in range(8)]
    shared = [write_run(tmp_path / "shared", f"{i}.json", variant_of(base, 100 + i)) for i in range(4)]
    outcomes: list[list] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def publisher(index: int) -> None:
        barrier.wait()
        # each publisher: its own distinct run, and every shared run (in its own order)
        order = [distinct[index], *(shared[index % 4 :] + shared[: index % 4])]
        outcomes[index] = publish_paths(pg_url, order).outcomes

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = [o.status for result in outcomes for o in result]
    assert len(statuses) == 8 * 5 and "bad" not in statuses
    assert statuses.count("published") == 8 + 4  # each shared run published by exactly one of them
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (12, 12 * 30)


def test_an_exception_between_benchmark_rows_leaves_nothing_of_the_run(pg_url, monkeypatch, tmp_path):
    original = publish_module._with_run_id

    def failing(rows, run_id):
        for index, row in enumerate(original(rows, run_id)):
            if index == 12:
                raise KeyboardInterrupt  # as a Ctrl-C in the middle of the COPY
            yield row

    monkeypatch.setattr(publish_module, "_with_run_id", failing)
    with pytest.raises(KeyboardInterrupt):
        publish_paths(pg_url, [CPU_RUN])
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (0, 0)
    monkeypatch.setattr(publish_module, "_with_run_id", original)
    assert [o.status for o in publish_paths(pg_url, [CPU_RUN]).outcomes] == ["published"]
    assert count(pg_url, "benchmarks") == 30


KILLED_PUBLISHER = """
import sys, time
from pathlib import Path
import lenet.runs.postgres.write as publish

original = publish._insert_benchmarks

def stall(connection, rows, run_id):
    original(connection, rows, run_id)  # every row of the run is on the server, not yet committed
    print("inside", flush=True)
    time.sleep(120)

publish._insert_benchmarks = stall
publish.publish_paths(sys.argv[1], [Path(sys.argv[2])])
"""


def test_a_publisher_killed_inside_its_transaction_leaves_no_partial_run(pg_url):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_PUBLISHER, pg_url, str(CPU_RUN)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline().strip() == "inside"
        assert count(pg_url, "runs") == 0  # nothing of an uncommitted run is visible
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    # The server rolls the dead publisher back; publishing again stores the run whole.
    assert [o.status for o in publish_paths(pg_url, [CPU_RUN]).outcomes] == ["published"]
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (1, 30)


def test_an_unreachable_server_is_one_line_and_status_3(capsys):
    url = f"postgresql://bench:{PASSWORD}@127.0.0.1:{free_port()}/lenet?connect_timeout=5"
    with pytest.raises(UnreachableError) as info:
        connect(url)
    assert str(info.value).startswith("cannot reach the database at postgresql://bench:***@127.0.0.1:")
    assert PASSWORD not in str(info.value) and "\n" not in str(info.value)
    assert publish_main([str(CPU_RUN), "--db", url]) == EXIT_DATABASE
    out, err = capsys.readouterr()
    assert err.startswith("error: cannot reach the database") and err.count("\n") == 1
    assert PASSWORD not in out + err


def test_wrong_credentials_are_one_line_without_the_password(postgres_server, pg_url, capsys):
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
    dbname = pg_url.split("@/", 1)[1].split("?")[0]
    wrong = postgres_server.url(dbname, PASSWORD_USER, PASSWORD + "-wrong")
    with pytest.raises(CredentialsError) as info:
        connect(wrong)
    message = str(info.value)
    assert "refused the credentials of user bench" in message and "password authentication failed" in message
    assert PASSWORD not in message and "\n" not in message
    assert publish_main([str(CPU_RUN), "--db", wrong]) == EXIT_DATABASE
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and PASSWORD not in out + err
    # The right password: it connects, and the password is printed nowhere either.
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"GRANT CREATE ON DATABASE {dbname} TO {PASSWORD_USER}")
    right = postgres_server.url(dbname, PASSWORD_USER, PASSWORD)
    assert publish_main([str(CPU_RUN), "--db", right]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "published 1" in out and "bench:***@" in out and PASSWORD not in out + err


def test_a_missing_database_and_a_malformed_url_are_one_line_each(postgres_server, capsys):
    assert publish_main([str(CPU_RUN), "--db", postgres_server.url("no_such_db")]) == EXIT_DATABASE
    assert "has no such database" in capsys.readouterr().err
    with pytest.raises(BadURLError, match="is not a libpq connection string"):
        connect(f"postgresql://u:{PASSWORD}@[bad")
    assert publish_main([str(CPU_RUN), "--db", f"host=x password={PASSWORD} nonsense"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert PASSWORD not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "shown", "secret"),
    [
        (f"postgresql://bench:{PASSWORD}@db:5432/lenet", "postgresql://bench:***@db:5432/lenet", PASSWORD),
        (f"postgres://u:{PASSWORD}@db/lenet?sslmode=require", "postgres://u:***@db/lenet?sslmode=require", PASSWORD),
        (
            f"host=db user=bench password={PASSWORD} dbname=lenet",
            "host=db user=bench password=*** dbname=lenet",
            PASSWORD,
        ),
        (f"host=db password='{PASSWORD} x'", "host=db password=***", f"{PASSWORD} x"),
        (f"postgresql:///lenet?host=/tmp&password={PASSWORD}", "postgresql:///lenet?host=/tmp&password=***", PASSWORD),
    ],
)
def test_passwords_are_masked_in_every_spelling(text, shown, secret):
    assert redact_url(text) == shown
    # and wherever else the password turns up in a message about that URL
    assert secret not in redact(f"failed for {text}: server said {secret}", text)


def test_a_url_without_a_password_is_shown_as_it_is():
    assert redact_url("postgresql://bench@db/lenet?host=/tmp") == "postgresql://bench@db/lenet?host=/tmp"


def test_a_url_encoded_password_is_masked_as_written_and_as_decoded():
    url = "postgresql://bench:p%40ss%2Fw0rd@db/lenet"
    assert redact("p@ss/w0rd and p%40ss%2Fw0rd", url) == "*** and ***"


# --- reading ------------------------------------------------------------------------------


def sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["source"]).sort_values(["run", "name"]).reset_index(drop=True)


def values_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's values alone: every column as objects, every missing value as None."""
    frame = sorted_frame(frame).astype(object)
    return frame.where(frame.notna(), None)


def test_the_database_gives_the_frame_the_files_give(pg_url):
    publish_paths(pg_url, [RUNS])
    from_db = read_database(pg_url)
    from_files = read_runs([RUNS])
    assert from_db.problems == from_files.problems == []
    assert from_db.files_read == from_files.files_read == 5
    assert from_db.frame["source"].str.fullmatch(r"postgresql:\d+").all()
    pd.testing.assert_frame_equal(sorted_frame(from_db.frame), sorted_frame(from_files.frame), check_like=True)


@pytest.mark.parametrize(
    "filters",
    [
        Filters(machines=["3fb8"]),  # a fingerprint prefix
        Filters(machines=["*H200*"]),  # a glob over the machine label
        Filters(variants=["cpu-*-fp32-eager"], phases=["train_step", "backward"]),
        Filters(variants=["test_join[[]1*"]),  # a bracket in a foreign benchmark's name
        Filters(batch_sizes=[8], phases=["forward_inference"]),
        Filters(variants=["*channels_last*"], batch_sizes=[2], machines=["Intel*"]),
    ],
)
def test_filters_run_in_sql_select_what_the_report_filters_select(pg_url, filters):
    publish_paths(pg_url, [RUNS])
    expected = filters.apply(read_runs([RUNS]).frame)
    query = RunFilter(
        machines=filters.machines, variants=filters.variants, phases=filters.phases, batch_sizes=filters.batch_sizes
    )
    with connect(pg_url) as connection:
        runs = query_runs(connection, query)
    # Only the selected benchmarks came back from the server: no filtering happens after the query.
    assert sum(len(r.results) for r in runs) == len(expected)
    assert select_frame(read_runs([RUNS]).frame, query).equals(expected)  # files select the same rows
    got = read_database(pg_url, query).frame
    # Files loaded whole have a column for every extra_info key of any run; the selection has its own runs' only.
    assert set(got.columns) <= set(expected.columns)
    assert expected[list(set(expected.columns) - set(got.columns))].isna().all().all()
    # Values must agree; dtypes may not: pandas infers them from the rows present (all None in a subset: object).
    pd.testing.assert_frame_equal(values_of(got), values_of(expected[got.columns]), check_like=True)


def test_commit_time_branch_and_latest_filters(pg_url, tmp_path):
    base = read_document(CPU_RUN)
    commits = ["aaaa111", "bbbb222", "cccc333", "dddd444"]
    paths = []
    for index, commit in enumerate(commits):  # commit i at hour i; two runs (processes) of each
        for process in range(2):
            document = variant_of(
                base, index * 2 + process, id=commit, time=f"2026-11-20T{index:02d}:00:00+00:00", branch="main"
            )
            paths.append(write_run(tmp_path, f"{index}{process}.json", document))
    side = variant_of(base, 50, id="eeee555", time="2026-11-20T05:00:00+00:00", branch="feature")
    paths.append(write_run(tmp_path, "side.json", side))
    publish_paths(pg_url, paths)
    files = read_runs([tmp_path]).frame

    def commits_of(**kwargs) -> list[str]:
        """The commits selected, checking that the files select the very same benchmarks as the database."""
        frame = read_database(pg_url, RunFilter(**kwargs)).frame
        from_files = select_frame(files, RunFilter(**kwargs))
        picked = set(zip(frame["run"], frame["name"], strict=True)) if not frame.empty else set()
        assert picked == set(zip(from_files["run"], from_files["name"], strict=True))
        return sorted(set(frame["commit"])) if not frame.empty else []

    assert commits_of(commits=["bbbb"]) == ["bbbb222"]
    assert commits_of(commit_range=parse_commit_range("aaaa111..cccc")) == ["bbbb222", "cccc333"]
    assert commits_of(branches=["main"], latest_commit=True) == ["dddd444"]
    assert commits_of(latest_commit=True) == ["eeee555"]
    assert commits_of(branches=["main"], latest_processes=3) == ["cccc333", "dddd444"]
    assert commits_of(phases=["backward"], variants=["*channels_last*"], latest_processes=1) == ["eeee555"]
    newest_main = read_database(pg_url, RunFilter(branches=["main"], latest_commit=True, latest_processes=1))
    assert newest_main.files_read == 1 and set(newest_main.frame["commit"]) == {"dddd444"}
    since = datetime(2026, 11, 3, tzinfo=timezone.utc)  # run times are 2026-11-(1 + index)
    assert commits_of(since=since, until=datetime(2026, 11, 5, tzinfo=timezone.utc)) == ["bbbb222"]


def test_a_filter_that_matches_nothing_says_which_and_what_there_is(pg_url):
    publish_paths(pg_url, [RUNS])
    loaded = read_database(pg_url, RunFilter(phases=["train_step"], batch_sizes=[4096]))
    assert loaded.frame.empty and loaded.files_read == 0
    assert loaded.problems == ["batch size filter 4096 matches nothing in the database; it has: 2; 8; 64"]
    with connect(pg_url) as connection, pytest.raises(QueryError, match="in no published run"):
        query_runs(connection, RunFilter(commit_range=("0000000", "5adf536")))


def test_globs_in_sql_match_as_fnmatch_does(pg_url):
    names = ["cpu-contiguous-fp32-eager", "test_join[10]", "a.b", "a+b", "x-y", "a]b", "a\\b", "[x]", "!x", "^a$"]
    patterns = [
        "*",
        "cpu-*",
        "*fp32*",
        "test_join[[]1*",
        "a?b",
        "a[.+]b",
        "[!a]*",
        "x[-]y",
        "a[]]b",
        "a\\b",
        "[",
        "[x",
        "[!]x]",
        "^a$",
        "a[b-z]b",
    ]
    with connect(pg_url) as connection:
        for pattern in patterns:
            got = {
                name
                for name, matched in connection.execute(
                    "SELECT n, n ~ %s FROM unnest(%s::text[]) n", [glob_to_regex(pattern), names]
                )
                if matched
            }
            assert got == {n for n in names if fnmatch.fnmatchcase(n, pattern)}, pattern


def test_time_and_range_arguments_are_parsed_or_refused_in_one_line():
    now = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
    assert parse_when("30d", now) == datetime(2026, 10, 29, 12, tzinfo=timezone.utc)
    assert parse_when("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=timezone.utc)
    assert parse_when("2026-01-31T10:00:00+02:00", now).utcoffset().total_seconds() == 7200
    with pytest.raises(QueryError, match="'yesterday' is not a time"):
        parse_when("yesterday", now)
    assert parse_commit_range("abc..def") == ("abc", "def")
    for bad in ("abc", "..def", "abc...def"):
        with pytest.raises(QueryError, match="must be two commits joined by"):
            parse_commit_range(bad)
    with pytest.raises(QueryError, match="positive"):
        RunFilter(latest_processes=0)
    with pytest.raises(QueryError, match="is not before"):
        RunFilter(since=now, until=now)


def test_per_round_data_decodes_exactly_whatever_the_array(pg_url):
    arrays = [
        "ARRAY[0.1, 1e300, 5e-324, -0.0, 'NaN', 'Infinity']::float8[]",
        "'{}'::float8[]",
        "ARRAY[1.5, NULL]::float8[]",
        "'{{1,2},{3,4}}'::float8[]",
    ]
    with psycopg.connect(pg_url) as connection:
        expected = connection.execute(f"SELECT {', '.join(arrays)}", binary=True).fetchone()
        with connection.cursor(binary=True) as cursor:
            cursor.adapters.register_loader(FLOAT8_ARRAY_OID, Float8ArrayLoader)
            got = cursor.execute(f"SELECT {', '.join(arrays)}").fetchone()
    assert [json.dumps(g) for g in got] == [json.dumps(e) for e in expected]  # NaN == NaN as text


def test_the_selection_options_make_one_filter_for_files_and_database(monkeypatch, capsys):
    parser = argparse.ArgumentParser(prog="report.py")
    parser.add_argument("--machine", action="append", default=[])
    add_selection_arguments(parser, latest_commit=True)
    args = parser.parse_args(
        ["--db", "--machine", "0c1a", "--commit-range", "a1..b2", "--since", "2026-01-01", "--latest-processes", "5"]
    )
    monkeypatch.setenv("LENET_DB_URL", "postgresql://bench@db/lenet")
    assert source_from_arguments([], args.db) == DatabaseSource("postgresql://bench@db/lenet")
    selection = selection_from_arguments(args)
    assert selection.machines == ["0c1a"] and selection.commit_range == ("a1", "b2")
    assert selection.since == datetime(2026, 1, 1, tzinfo=timezone.utc) and selection.latest_processes == 5
    assert isinstance(source_from_arguments([], parser.parse_args([]).db), FileSource)  # no --db: files
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--since", "last tuesday"])
    assert info.value.code == 2 and "'last tuesday' is not a time" in capsys.readouterr().err


def test_a_plugin_publishes_the_run_it_holds_without_its_file(pg_url):
    document = read_document(CPU_RUN)
    summary = publish_documents(pg_url, [("0007_abc_run.json", document), ("0008_abc_run.json", {"benchmarks": "?"})])
    assert [o.status for o in summary.outcomes] == ["published", "bad"] and summary.exit_code == EXIT_BAD_INPUT
    assert set(read_database(pg_url).frame["run"]) == {"0007_abc_run"}


def test_a_connection_lost_partway_is_status_4_and_keeps_what_was_reported(pg_url, tmp_path, monkeypatch, capsys):
    write_run(tmp_path, "0001_a.json", variant_of(read_document(CPU_RUN), 1))
    second = write_run(tmp_path, "0002_b.json", variant_of(read_document(CPU_RUN), 2))
    original = publish_module.publish_run

    def cut_before_the_second(connection, document, name):
        if name == second.name:  # the server ends this session, as a restart or a network cut would
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [connection.info.backend_pid])
        return original(connection, document, name)

    monkeypatch.setattr(publish_module, "publish_run", cut_before_the_second)
    assert publish_main([str(tmp_path), "--db", pg_url]) == EXIT_PARTWAY
    out, err = capsys.readouterr()
    assert "published      " in out and "0001_a.json" in out
    assert err.startswith("error: the connection failed while publishing") and "0002_b.json" in err
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (1, 30)  # the first whole, nothing of the second
    monkeypatch.setattr(publish_module, "publish_run", original)
    assert publish_main([str(tmp_path), "--db", pg_url]) == EXIT_OK  # publishing again finishes the job
    assert "published 1, already there 1, bad 0" in capsys.readouterr().out


def test_a_role_that_may_only_read_is_told_so_in_one_line(postgres_server, pg_url, capsys):
    publish_paths(pg_url, [CPU_RUN])
    dbname = pg_url.split("@/", 1)[1].split("?")[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'")
        admin.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO reader")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO reader")
    reader = postgres_server.url(dbname, "reader", PASSWORD)
    assert read_database(reader).files_read == 1  # reading needs no more
    assert publish_main([str(RUNS / "other-pb3"), "--db", reader]) == EXIT_DATABASE
    err = capsys.readouterr().err
    assert "may not publish" in err and err.count("\n") == 1 and PASSWORD not in err


def test_the_machines_of_the_history_are_listed_newest_first(pg_url):
    publish_paths(pg_url, [RUNS])
    with connect(pg_url) as connection:
        listed = machines(connection)
    assert [m.runs for m in listed] == [2, 2, 1]  # lenet-cpu, the two foreign runs (one machine), the H200 subset
    assert listed[0].fingerprint.startswith("3fb8") and listed[0].commits == 1
    assert listed[0].first_run <= listed[0].last_run


# --- pytest bench --publish-db ------------------------------------------------------------------


@pytest.mark.slow
def test_pytest_bench_publishes_the_run_it_saves_once(pg_url, tmp_path, run_bench, capsys):
    output = tmp_path / "run.json"
    smoke = ("--preset", "smoke", "--phases", "forward_inference", f"--benchmark-json={output}")
    result = run_bench(*smoke, "--publish-db", pg_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lenet-bench: published 1, already there 0, bad 0 to postgresql://" in result.stdout
    assert (count(pg_url, "runs"), count(pg_url, "benchmarks")) == (1, 1)
    assert publish_main([str(output), "--db", pg_url]) == EXIT_OK  # the saved file is the run already stored
    assert "published 0, already there 1, bad 0" in capsys.readouterr().out


@pytest.mark.slow
def test_a_database_out_of_reach_costs_a_line_never_the_run(tmp_path, run_bench):
    output = tmp_path / "run.json"
    url = f"postgresql://bench:{PASSWORD}@127.0.0.1:{free_port()}/lenet?connect_timeout=3"
    result = run_bench(
        "--preset", "smoke", "--phases", "forward_inference", f"--benchmark-json={output}", "--publish-db", url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lenet-bench: not published to postgresql://bench:***@127.0.0.1:" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert len(json.loads(output.read_text())["benchmarks"]) == 1
    unsaved = run_bench("--preset", "smoke", "--publish-db", url)
    assert unsaved.returncode == 4 and "--publish-db publishes the saved run" in unsaved.stderr


def test_baseline_promotes_into_and_lists_the_shared_history(pg_url, capsys):
    from lenet.cli.baseline import main as baseline_main

    assert baseline_main(["promote", str(RUNS / "lenet-cpu"), "--db", pg_url]) == EXIT_OK
    assert "published 2, already there 0, bad 0 into postgresql://" in capsys.readouterr().out
    assert baseline_main(["list", "--db", pg_url]) == EXIT_OK
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("3fb884d1daa2  2 runs  1 commits  last 2026-11-27")


# --- report.py and compare.py reading the shared history ------------------------------------------


def test_report_reads_the_database_with_filters_pushed_into_sql(pg_url, tmp_path, capsys):
    from lenet.cli.report import main as report_main

    assert publish_main([str(RUNS), "--db", pg_url]) == EXIT_OK
    out = tmp_path / "report"
    code = report_main(["--db", pg_url, "--phase", "train_step", "--formats", "md,csv", "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    rows = pd.read_csv(out / "report.csv")
    assert set(rows["phase"]) == {"train_step"} and len(rows) > 0
    assert report_main(["--db", pg_url, str(RUNS)]) == 2  # files or the database, not both
    assert "not both" in capsys.readouterr().err


def test_report_from_an_unreachable_database_is_one_line_and_status_3(capsys):
    from lenet.cli.report import main as report_main

    url = f"postgresql://bench:{PASSWORD}@127.0.0.1:{free_port()}/lenet?connect_timeout=3"
    assert report_main(["--db", url, "--formats", "md"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the database") and err.count("\n") == 1 and PASSWORD not in err


def test_compare_takes_the_latest_processes_of_a_machine_from_the_database_as_baseline(pg_url, capsys):
    from lenet.cli.compare import main as compare_main

    assert publish_main([str(RUNS / "lenet-cpu"), "--db", pg_url]) == EXIT_OK
    capsys.readouterr()
    [candidate] = sorted((RUNS / "lenet-cpu").rglob("0002_*.json"))
    args = [pg_url, str(candidate), "--machine", "3fb884d1daa2", "--latest-processes", "1"]
    assert compare_main(args) == 0
    out = capsys.readouterr().out
    assert "(1 runs)" in out and "postgresql://" in out
    assert compare_main([pg_url, str(candidate), "--machine", "no-such-machine"]) == 2
    err = capsys.readouterr().err
    assert "the baseline postgresql://" in err and "holds no saved runs" in err and "matches nothing" in err
