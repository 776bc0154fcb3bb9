"""Publish saved runs into the shared PostgreSQL history: see lenet/cli/publish.py and docs/database.md."""

from lenet.cli.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
