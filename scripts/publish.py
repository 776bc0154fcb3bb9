"""Publish saved runs into the shared PostgreSQL history: see lenet/cli/publish.py and docs/database.md."""

import sys
from pathlib import Path

# This checkout's lenet, whatever is installed: another clone's `pip install -e` must not be what runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet.cli.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
