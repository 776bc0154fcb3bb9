"""Hostile input against every command that reads saved runs or a database: one clear line, a status from the
contract (lenet/exits.py, docs/exit-codes.md), and no password in any output.

Each test holds one reproduction found by trying the commands as a hostile new user would.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lenet.cli.baseline import main as baseline_main
from lenet.cli.compare import main as compare_main
from lenet.cli.report import main as report_main
from lenet.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNUSABLE
from lenet.redact import redact

psycopg = pytest.importorskip("psycopg")

from lenet.cli.publish import main as publish_main  # noqa: E402 - needs psycopg

pytest_plugins = ("postgres_server",)

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "tests/fixtures/runs/lenet-cpu/Linux-CPython-3.11-64bit/0001_5adf536_20261127_121749.json"
SECRETS = ("Tr0ub/4dor", "pa ss", "pa@ss", "S3cret")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable(password: str) -> str:
    return f"postgresql://bench:{password}@127.0.0.1:{free_port()}/lenet?connect_timeout=3"


def assert_clean(out: str, err: str, *secrets: str) -> None:
    """No traceback, one error line at most, no piece of any secret."""
    text = out + err
    assert "Traceback" not in text
    assert sum(line.startswith("error:") for line in err.splitlines()) <= 1
    for secret in secrets:
        for piece in {secret, *secret.replace("@", " ").replace("/", " ").split()}:
            if len(piece) >= 3:
                assert piece not in text, (piece, text)


def document() -> dict:
    return json.loads(RUN.read_text())


def write(folder: Path, name: str, run: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(run if isinstance(run, str) else json.dumps(run))  # json writes "\ud800" for a lone surrogate
    return path


@contextlib.contextmanager
def login_role(server: Any, pg_url: str, role: str, password: str, *grants: str) -> Iterator[str]:
    """A role that logs in with ``password`` and holds ``grants`` (SQL) in pg_url's database, as its URL.

    Afterwards the role, what it owns and the database go, so that no later test meets the role.
    """
    dbname = pg_url.split("@/", 1)[1].split("?")[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        for grant in grants:
            admin.execute(grant)
    try:
        yield server.url(dbname, role, password)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
            admin.execute(f"DROP ROLE {role}")


# 1. A password with an unencoded '/', space or '@' is masked wherever the URL is printed.
@pytest.mark.parametrize("password", SECRETS[:3])
def test_1_a_password_with_slash_space_or_at_is_never_printed(password, capsys, tmp_path):
    url = unreachable(password)
    assert publish_main(["--db", url, str(RUN)]) in (EXIT_BAD_INPUT, EXIT_UNUSABLE)
    assert_clean(*capsys.readouterr(), password)
    assert report_main(["--db", url, "--formats", "md", "-o", str(tmp_path / "r"), "-q"]) in (2, 3)
    assert_clean(*capsys.readouterr(), password)
    assert compare_main([url, str(RUN)]) in (2, 3)
    assert_clean(*capsys.readouterr(), password)
    assert baseline_main(["list", "--db", url]) in (2, 3)
    assert_clean(*capsys.readouterr(), password)


def test_1_the_environment_twin_and_the_keyword_form_are_masked_too(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LENET_DB_URL", unreachable("Tr0ub/4dor"))
    assert publish_main([str(RUN)]) == EXIT_UNUSABLE
    assert_clean(*capsys.readouterr(), "Tr0ub/4dor")
    keywords = f"host=127.0.0.1 port={free_port()} user=bench password='pa ss@x' connect_timeout=3"
    assert baseline_main(["list", "--db", keywords]) == EXIT_UNUSABLE
    assert_clean(*capsys.readouterr(), "pa ss@x")


def test_1_the_pytest_plugin_line_is_masked():
    from lenet.runs.postgres.write import publish_saved_run

    line = publish_saved_run(unreachable("Tr0ub/4dor"), document())
    assert line.startswith("lenet-bench: not published to postgresql://bench:***@127.0.0.1:")
    assert "Tr0ub" not in line and "4dor" not in line


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("at postgresql://bench:Tr0ub/4dor@h:1/lenet said x", "postgresql://bench:Tr0ub/4dor@h:1/lenet"),
        ("at postgresql://bench:p%40ss%2Fw0rd@h/lenet", "postgresql://bench:p%40ss%2Fw0rd@h/lenet"),
        ("p@ss/w0rd appears decoded", "postgresql://bench:p%40ss%2Fw0rd@h/lenet"),
        ("host=h password='a b c d' user=x", None),
        ("postgresql:///lenet?host=/tmp&password=Zz9yy", None),
    ],
)
def test_1_every_spelling_is_masked_by_the_one_redaction(text, url):
    shown = redact(text, url)
    for secret in ("Tr0ub", "4dor", "p%40ss", "p@ss", "a b c d", "Zz9yy"):
        assert secret not in shown


def test_1_a_password_libpq_reads_as_a_host_is_masked_however_the_message_quotes_it():
    url = "postgresql://bench:ZqX7@+a\\Wv9K@127.0.0.1:1/lenet"  # libpq: password ZqX7, host +a\Wv9K@127.0.0.1
    shown = redact(f"at {url}: failed to resolve host '+a\\\\Wv9K@127.0.0.1'", url)
    assert "Wv9K" not in shown and "ZqX7" not in shown
    assert shown.startswith("at postgresql://bench:***@127.0.0.1:1/lenet: ")


# 2. A URL typed where a path is expected is refused in one line, without the password.
def test_2_a_url_where_a_path_is_expected_is_refused_without_its_password(capsys, tmp_path):
    url = "postgresql://bench:S3cret@h/db"
    assert compare_main([str(RUN), url]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert "is a database URL" in err and "bench:***@" in err
    assert_clean(out, err, "S3cret")
    # The report takes a URL as its SOURCE (the database there cannot be reached: 3), never as a path.
    assert report_main([url, "-o", str(tmp_path / "r"), "--formats", "md"]) == EXIT_UNUSABLE
    assert_clean(*capsys.readouterr(), "S3cret")
    assert report_main([url.replace("//", "/", 1), "-o", str(tmp_path / "r"), "--formats", "md"]) == EXIT_BAD_INPUT
    assert_clean(*capsys.readouterr(), "S3cret")
    assert publish_main(["--db", unreachable("x"), url]) == EXIT_BAD_INPUT
    assert_clean(*capsys.readouterr(), "S3cret")


# 3. A lone surrogate in a run file: read escaped, refused when published.
def test_3_a_lone_surrogate_is_shown_escaped_and_never_stored(pg_url, capsys, tmp_path):
    run = document()
    run["benchmarks"][0]["extra_info"]["note"] = "\ud800"
    run["machine_info"]["node"] = "host-\udcff"
    path = write(tmp_path / "runs", "surrogate.json", run)
    assert report_main([str(path), "-o", str(tmp_path / "r"), "--formats", "md,csv", "-q"]) == EXIT_OK
    assert_clean(*capsys.readouterr())
    assert compare_main([str(RUN), str(path), "--allow-mismatch"]) in (0, 1)
    assert_clean(*capsys.readouterr())
    from lenet.runs.postgres.write import publish_documents

    summary = publish_documents(pg_url, [("raw.json", run)])  # as the pytest plugin hands it over, unescaped
    assert summary.count("bad") == 1 and "lone surrogate" in summary.outcomes[0].detail
    assert publish_main(["--db", pg_url, str(path)]) == EXIT_OK  # the file reader escapes it: stored as shown
    assert_clean(*capsys.readouterr())


# 4. A file nested 5,000 levels deep is one line, and the good run beside it is still reported.
def test_4_deep_nesting_is_one_line_and_the_rest_is_read(pg_url, capsys, tmp_path):
    folder = tmp_path / "runs"
    write(folder, "deep.json", "[" * 5000 + "]" * 5000)
    write(folder, "good.json", document())
    assert report_main([str(folder), "-o", str(tmp_path / "r"), "--formats", "md", "-q"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "deep.json: is JSON nested too deeply" in err
    assert_clean(out, err)
    assert compare_main([str(RUN), str(folder / "deep.json")]) == EXIT_BAD_INPUT
    assert_clean(*capsys.readouterr())
    assert publish_main(["--db", pg_url, str(folder)]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert "published 1, already there 0, bad 1" in out
    assert_clean(out, err)


# 5. A file name that is not UTF-8.
@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes in a name")
def test_5_a_file_name_that_is_not_utf8(pg_url, capsys, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / os.fsdecode(b"run-\xff\xfe.json")).write_text(RUN.read_text())
    assert compare_main([str(RUN), str(folder), "--allow-mismatch"]) in (0, 1)
    assert_clean(*capsys.readouterr())
    assert report_main([str(folder), "-o", str(tmp_path / "r"), "-q", "--formats", "md,csv"]) == EXIT_OK
    assert_clean(*capsys.readouterr())
    assert publish_main(["--db", pg_url, str(folder)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "run-\\udcff\\udcfe.json" in out
    assert_clean(out, err)


# 6. Reader errors: a database without the schema, a role without grants.
def test_6_no_schema_and_no_grants_are_one_line(postgres_server, pg_url, capsys, tmp_path):
    assert baseline_main(["list", "--db", pg_url]) == EXIT_UNUSABLE
    out, err = capsys.readouterr()
    assert "no lenet schema" in err
    assert_clean(out, err)
    assert publish_main(["--db", pg_url, str(RUN)]) == EXIT_OK
    capsys.readouterr()
    with login_role(postgres_server, pg_url, "nogrants", "N0grants-pw") as reader:
        assert report_main(["--db", reader, "-o", str(tmp_path / "r"), "--formats", "md", "-q"]) == EXIT_UNUSABLE
        out, err = capsys.readouterr()
        assert "may not read the history" in err and "grant it USAGE" in err
        assert_clean(out, err, "N0grants-pw")
        assert baseline_main(["list", "--db", reader]) == EXIT_UNUSABLE
        assert_clean(*capsys.readouterr(), "N0grants-pw")


# 7. A run dated past year 9999 (in UTC) is refused, and a row stored by older code breaks no reader.
def test_7_a_date_past_9999_is_refused_and_an_old_row_breaks_no_reader(pg_url, capsys, tmp_path):
    run = document()
    run["datetime"] = "9999-12-31T23:00:00-05:00"
    path = write(tmp_path / "runs", "future.json", run)
    assert publish_main(["--db", pg_url, str(path)]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert "past year 9999" in err
    assert_clean(out, err)
    # What an older publisher stored: the reader lists it, and a commit range still works.
    assert publish_main(["--db", pg_url, str(RUN)]) == EXIT_OK
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("UPDATE lenet.runs SET run_time = '10000-01-01T04:00:00Z', commit_time = run_time")
    capsys.readouterr()
    assert baseline_main(["list", "--db", pg_url]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "last ?" in out
    assert_clean(out, err)
    commit = document()["commit_info"]["id"]
    report = ["--db", pg_url, "--commit-range", f"{commit}..{commit}", "-o", str(tmp_path / "r"), "--formats", "md"]
    assert report_main([*report, "-q"]) in (EXIT_OK, EXIT_BAD_INPUT)
    out, err = capsys.readouterr()
    assert "refused a filter" not in err
    assert_clean(out, err)


def test_7_a_stored_value_past_the_readers_limits_is_one_line_naming_the_run(pg_url, capsys, tmp_path):
    assert publish_main(["--db", pg_url, str(RUN)]) == EXIT_OK
    with psycopg.connect(pg_url, autocommit=True) as connection:  # as older code could have stored it
        deep = "[" * 1100 + "]" * 1100
        connection.execute("UPDATE lenet.benchmarks SET extra_info = %s::jsonb WHERE position = 3", [deep])
    capsys.readouterr()
    assert report_main(["--db", pg_url, "-o", str(tmp_path / "r"), "--formats", "md", "-q"]) == EXIT_UNUSABLE
    out, err = capsys.readouterr()
    assert err.startswith("error: run postgresql:1, benchmark ") and "a stored value cannot be read back" in err
    assert_clean(out, err)


# 8. One exit status per meaning: an unset or malformed URL is bad input for every command.
@pytest.mark.parametrize(
    "url",
    [None, "postgresql://u:Pw0rd-x@[bad", "host=x password=Pw0rd-x nonsense", "postgresql://u:Pw0rd-x%ab@h:1/db"],
)
def test_8_no_url_or_a_malformed_one_is_status_2_everywhere(url, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("LENET_DB_URL", raising=False)
    db = ["--db"] if url is None else ["--db", url]
    commands = [
        (report_main, [*db, "-o", str(tmp_path / "r"), "--formats", "md", "-q"]),
        (publish_main, [*db[1:], str(RUN)] if url is None else [*db, str(RUN)]),
        (baseline_main, ["list", *db]),
        *([(compare_main, [url, str(RUN)])] if url else []),
    ]
    for main, argv in commands:
        assert main(argv) == EXIT_BAD_INPUT, argv
        assert_clean(*capsys.readouterr(), "Pw0rd-x")


def run_script(script: str, *args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=REPO,
    )


# 9. A failed write to stdout: a full disk, or a reader that left.
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    ("script", "args"), [("system.py", ["--seconds", "0.1"]), ("compare.py", [str(RUN), str(RUN)])]
)
def test_9_stdout_on_a_full_disk_is_one_line_and_status_3(script, args):
    with open("/dev/full", "w") as full:
        done = run_script(script, *args, stdout=full)
    assert done.returncode == EXIT_UNUSABLE, done.stderr
    assert "Traceback" not in done.stderr and "No space left on device" in done.stderr
    assert done.stderr.count("\n") == 1


def test_9_a_reader_that_leaves_is_one_line_and_status_3(pg_url):
    folder_args = ["--db", pg_url, *[str(RUN)] * 3]
    child = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "publish.py"), *folder_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    child.stdout.close()  # `| true`: the reader is gone before the first line
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=120) == EXIT_UNUSABLE, err
    assert "Traceback" not in err and "closed pipe" in err and err.count("\n") == 1


# 10. system.py prints other processes' names escaped: tests/test_system.py holds it with a real prctl name.


def test_a_batch_size_past_any_column_is_skipped_with_one_line(capsys, tmp_path):
    run = document()
    run["benchmarks"][0]["extra_info"]["batch_size"] = 2**63  # fits uint64, not the frame's Int64
    path = write(tmp_path / "runs", "huge-batch.json", run)
    assert compare_main([str(RUN), str(path)]) in (0, 1)
    out, err = capsys.readouterr()
    assert "extra_info.batch_size is not a positive integer (9223372036854775808); skipped" in err
    assert_clean(out, err)


# Minor: an integer past 64 bits is refused by the publisher (it would be stored as a float, or break orjson).
def test_an_integer_past_64_bits_is_refused_when_published(pg_url, capsys, tmp_path):
    run = document()
    run["benchmarks"][2]["extra_info"]["instructions"] = 2**64
    path = write(tmp_path / "runs", "big.json", run)
    assert publish_main(["--db", pg_url, str(path)]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert "run.benchmarks[2].extra_info.instructions: the integer 18446744073709551616 does not fit in 64 bits" in err
    assert_clean(out, err)


# The summary files compare writes (--markdown, --json) pass through the same redaction as stdout.
def test_compare_summary_files_hold_no_password(postgres_server, pg_url, capsys, tmp_path):
    assert publish_main(["--db", pg_url, str(RUN)]) == EXIT_OK
    grants = ("GRANT USAGE ON SCHEMA lenet TO reader", "GRANT SELECT ON ALL TABLES IN SCHEMA lenet TO reader")
    with login_role(postgres_server, pg_url, "reader", "Rd/p@ss w0rd", *grants) as raw_url:
        url = raw_url.replace("Rd/p@ss w0rd", "Rd%2Fp%40ss%20w0rd")
        summary, data = tmp_path / "summary.md", tmp_path / "summary.json"
        status = compare_main([url, str(RUN), "--markdown", str(summary), "--json", str(data)])
        out, err = capsys.readouterr()
        assert status == EXIT_OK, err
        for text in (out, err, summary.read_text(), data.read_text()):
            assert "p@ss" not in text and "w0rd" not in text and "Rd/p" not in text


# Minor: Ctrl-C during publish is status 4 with what was done, never a traceback.
def test_ctrl_c_during_publish_is_status_4_with_a_summary(pg_url, tmp_path):
    runs = tmp_path / "runs"
    for index in range(30):
        run = copy.deepcopy(document())
        run["datetime"] = f"2026-11-01T00:00:{index:02d}+00:00"
        write(runs, f"run{index:02d}.json", run)
    child = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "publish.py"), "--db", pg_url, str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout.readline().startswith("created the lenet schema")
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    status = child.wait()
    assert "Traceback" not in err
    if status == EXIT_OK:  # it finished before the signal came: nothing to interrupt
        return
    assert status == EXIT_INTERRUPTED
    assert "error: interrupted: published " in err and "publishing again finishes" in err


# A cancelled CI job's SIGTERM during ab.py: status 4, and the baseline's git worktree is removed as on Ctrl-C.
def test_sigterm_during_ab_removes_its_worktree_and_is_status_4(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    command = [sys.executable, str(clone / "scripts" / "ab.py"), "--baseline", "HEAD", "--instructions", "off"]
    command += ["--keep", str(tmp_path / "keep"), "--", "--preset", "smoke", "--phases", "forward_inference"]
    child = subprocess.Popen(command, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def worktrees() -> list[str]:
        listed = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=clone, capture_output=True, text=True)
        return [line.split(" ", 1)[1] for line in listed.stdout.splitlines() if line.startswith("worktree ")]

    for _ in range(600):  # the baseline's worktree is added before any process runs
        if len(worktrees()) == 2 or child.poll() is not None:
            break
        time.sleep(0.05)
    [baseline_tree] = [Path(tree) for tree in worktrees() if Path(tree) != clone]
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=300)
    assert child.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "error: interrupted" in err
    assert worktrees() == [str(clone)] and not baseline_tree.exists()
