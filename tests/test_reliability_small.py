"""The crash-restart scenario of scripts/reliability.py at a small size."""

import importlib.util
import os
import random
import sys

from conftest import REPO


def load_reliability():
    """Return scripts/reliability.py imported as a module."""
    path = os.path.join(REPO, "scripts", "reliability.py")
    spec = importlib.util.spec_from_file_location("ums_reliability", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_crash_restart_loses_nothing_and_drains(tmp_path):
    """SIGKILLed `ums serve` loses no message and leaves no job queued."""
    reliability = load_reliability()
    outcome = reliability.run_crash_restart(str(tmp_path), 24, 3, random.Random(24))
    assert outcome.inputs == 24, outcome.errors
    assert outcome.lost == []
    assert outcome.queued == 0
