"""The commands: each module parses its arguments and prints; what it does lives in the library."""

from __future__ import annotations

import argparse


def command_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: its module docstring is the help text, with its line breaks kept."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
