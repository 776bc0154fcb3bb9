"""Publish saved runs into the shared PostgreSQL history: see lenet/cli/publish.py and docs/database.md."""

from _command import run

if __name__ == "__main__":
    run("publish")
