"""The scenarios of scripts/reliability.py at a small size."""

import importlib.util
import os
import random
import sys

from conftest import REPO


def load_reliability():
    """Return scripts/reliability.py imported as a module."""
    scripts = os.path.join(REPO, "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    path = os.path.join(scripts, "reliability.py")
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


def test_gateway_crash_restart_reports_every_mail_that_got_250(tmp_path):
    """Every mail the gateway answered 250 is transmitted and reported."""
    reliability = load_reliability()
    outcome = reliability.run_gateway_crash_restart(
        str(tmp_path), 12, 3, random.Random(12)
    )
    assert outcome.inputs == 12, outcome.errors
    assert (outcome.lost, outcome.errors, outcome.queued) == ([], [], 0)


def test_mail_server_dropping_mid_data_loses_nothing(tmp_path):
    reliability = load_reliability()
    outcome = reliability.run_fault(str(tmp_path), "drop-in-data", random.Random(1))
    assert outcome.inputs == 3 and outcome.passed, (outcome.lost, outcome.errors)
