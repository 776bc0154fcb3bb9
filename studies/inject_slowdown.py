"""pytest plugin for the gate study: make LeNet's forward slower by a known amount of CPU work.

Loaded with ``-p inject_slowdown`` (this folder on PYTHONPATH). LENET_STUDY_EXTRA holds
JSON {benchmark name: seconds}; every forward call of that benchmark then spins for that
much CPU time of its own thread after the real forward. Thread CPU time (not wall
time) makes the extra work stretch, like real work, when the machine is busy.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from lenet.model import Net

_extra = {"seconds": 0.0}
_forward = Net.forward


def _slower_forward(self, input):
    output = _forward(self, input)
    end = time.thread_time() + _extra["seconds"]
    while time.thread_time() < end:
        pass
    return output


Net.forward = _slower_forward


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _extra["seconds"] = float(json.loads(os.environ.get("LENET_STUDY_EXTRA", "{}")).get(item.name, 0.0))
