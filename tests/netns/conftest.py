# SPDX-License-Identifier: BSD-2-Clause
# pytest set-up for suite `netns`: the lab module on the path, skipping with
# a reason when the machine cannot run a lab (failing instead under
# SLUICE_REQUIRE_BPF=1, as CI sets), exit status 77 when everything skipped
# (meson's "skipped"), and one lab per test module.
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sluicelab  # noqa: E402

REQUIRED = os.environ.get("SLUICE_REQUIRE_BPF") == "1"

# The fast path the lab's daemon uses in this run (test_e2e.py runs once
# with each): "xdp" (`sluice attach`) or "dpdk" (`sluice run` with [dpdk]).
FASTPATH = os.environ.get("SLUICE_E2E_FASTPATH", "xdp")

# What every netns test drives.
BASE_TOOLS = ["ip", "ethtool", "sysctl", "curl", "nginx", "memcached"]


def skip_or_fail(reason: str) -> None:
    """Skips the test, or fails it when CI requires every test to run."""
    if REQUIRED:
        pytest.fail(f"SLUICE_REQUIRE_BPF=1 but: {reason}")
    pytest.skip(reason)


def require_lab(tools: list[str] = ()) -> str:
    """Skips (or fails) unless a lab can run here; returns the sluice binary."""
    missing = sluicelab.missing_requirements(BASE_TOOLS + list(tools))
    if missing:
        skip_or_fail("cannot build a lab here, missing: " + ", ".join(missing))
    try:
        sluice = sluicelab.find_sluice()
    except sluicelab.LabError as e:
        skip_or_fail(str(e))
    if not sluicelab.sluice_has(sluice, "decap", "attach"):
        skip_or_fail(f"{sluice} has no `decap attach` (built without XDP?)")
    return sluice


@pytest.fixture(scope="module")
def lab_factory():
    """Makes labs that are torn down at the end of the module whatever
    happens; the test fails if teardown leaves anything behind."""
    labs = []

    def make(**kwargs) -> sluicelab.Lab:
        sluice = require_lab(kwargs.pop("tools", []))
        servers = kwargs.pop("servers", ["nginx"])
        lab = sluicelab.Lab(sluice=sluice, **kwargs)
        labs.append(lab)
        try:
            lab.up()
            lab.start_servers(servers)
        except sluicelab.LabError as e:
            pytest.fail(f"lab {lab.name} did not come up: {e}")
        return lab

    yield make
    problems = [p for lab in labs for p in lab.down()]
    assert not problems, f"teardown left: {problems}"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fastpaths(*names): the fast paths a test runs on (unmarked: xdp); "
        "SLUICE_E2E_FASTPATH names this run's")


def pytest_collection_modifyitems(config, items):
    # Only the tests meant for this run's fast path.
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("fastpaths")
        (keep if FASTPATH in (marker.args if marker else ("xdp",)) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    # Every test skipped: tell meson (exit 77) rather than pass silently.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    stats = reporter.stats
    if stats.get("skipped") and not stats.get("passed") and not stats.get("failed"):
        session.exitstatus = 77
