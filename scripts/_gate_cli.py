"""Kept for older checkouts: the verdict options moved to ``lenet.cli.gate_options``."""

from lenet.cli.gate_options import add_gate_options, fraction, gate_options, publish

__all__ = ["add_gate_options", "fraction", "gate_options", "publish"]
