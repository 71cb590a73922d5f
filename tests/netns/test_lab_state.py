# SPDX-License-Identifier: BSD-2-Clause
# `scripts/lab list` says whether each lab is whole: a lab whose recorded
# processes died (or whose PIDs now name other processes) is "stale", not
# "running". Works on state files alone: no root, no namespaces.
import json
import os
import subprocess

import sluicelab


def write_state(root, name, procs, namespaces=()):
    d = root / name
    d.mkdir()
    (d / "state.json").write_text(json.dumps({
        "name": name, "backends": 1, "clients": 1, "sluice": "/bin/true",
        "namespaces": list(namespaces), "pins": [], "procs": procs,
        "daemon": procs[0]["pid"] if procs else None, "config": None}))


def proc(what, pid, start):
    return {"what": what, "pid": pid, "start": start, "log": "/dev/null"}


def listed(monkeypatch, tmp_path, capsys) -> str:
    monkeypatch.setattr(sluicelab, "LAB_ROOT", tmp_path)
    assert sluicelab.cmd_list(None) == 0
    return capsys.readouterr().out


def test_lab_whose_processes_run_is_running(tmp_path, monkeypatch, capsys):
    me = os.getpid()
    start = sluicelab._start_time(me)
    write_state(tmp_path, "sl-live", [proc("sluice", me, start), proc("nginx@backend1", me, start)])
    out = listed(monkeypatch, tmp_path, capsys)
    assert out.startswith("lab sl-live  running  ")
    assert "stale" not in out and "not running" not in out
    assert f"sluice         running (pid {me})" in out


def test_lab_whose_processes_died_is_stale(tmp_path, monkeypatch, capsys):
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its PID names no process now
    me = os.getpid()
    write_state(tmp_path, "sl-dead", [proc("sluice", child.pid, 12345),
                                      # our PID, but a different start time:
                                      # the PID was given to another process
                                      proc("nginx@backend1", me, sluicelab._start_time(me) - 1)],
                namespaces=["sl-dead-lb"])
    out = listed(monkeypatch, tmp_path, capsys)
    assert out.startswith("lab sl-dead  stale  ")
    assert f"stale          sluice (pid {child.pid}) is not running" in out
    assert f"stale          nginx@backend1 (pid {me}) is not running" in out
    assert "stale          namespace sl-dead-lb is gone" in out
    assert "`scripts/lab down sl-dead` removes what is left" in out
    assert f"sluice         not running (pid {child.pid} exited)" in out
    assert "servers        nginx@backend1 (not running)" in out
