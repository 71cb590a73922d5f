# SPDX-License-Identifier: BSD-2-Clause
# End to end through the DPDK fast path (ISSUE 7): `sluice run` with a
# [dpdk] section owning the LB's veth through net_af_packet (EAL with
# --no-pci --no-huge and a file prefix of the lab's own), curl from a client
# namespace to the VIPs, nginx on backends decapsulating with `sluice
# decap`, replies straight to the client; the workers' counters through
# `sluice ctl`, and a clean stop on SIGTERM. The lab (namespaces, servers,
# the daemon) is torn down whatever happens, and so is EAL's runtime folder.
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

import sluicelab
import traffic
from conftest import require_lab, skip_or_fail
from sluicelab import VIP4, VIP6

REQUESTS = 60
# The metrics endpoint, on the LB namespace's own loopback.
METRICS = "127.0.0.1:9650"


def dpdk_config(lab, prefix: str) -> Path:
    """A [dpdk] config for the lab: the LB veth through net_af_packet, one
    worker on lcore 1, the router as next hop; an http check per backend."""
    lb = lab.topo.lb
    lines = [
        "# sluice lab config with the DPDK fast path (tests/netns/test_dpdk_e2e.py)",
        "[control]", f'socket = "{lab.socket_path}"',
        "[metrics]", f'listen = "{METRICS}"',
        "[dpdk]",
        f'ports = ["net_af_packet0,iface={lb.ifname}"]',
        "main_lcore = 0", "lcores = [1]",
        "mbufs = 4095", "mbuf_cache = 128", "memory_mb = 256",
        f'file_prefix = "{prefix}"',
        'eal_args = ["--log-level=lib.eal:error"]',
        f'encap_source_v4 = "{lb.addr4}"', f'encap_source_v6 = "{lb.addr6}"',
        f'gateway_mac = "{lb.router_mac}"',
        "[health_checks.web]", 'type = "http"', "interval_ms = 200", "timeout_ms = 150",
        "rise = 2", "fall = 3",
    ]
    for name, vip, fam in (("web-v4", VIP4, "addr4"), ("web-v6", VIP6, "addr6")):
        lines += ["[[vips]]", f'name = "{name}"', f'address = "{vip}"', "port = 80",
                  'protocol = "tcp"']
        for b in lab.topo.backends:
            lines += ["[[vips.backends]]", f'address = "{getattr(b, fam)}"',
                      'health_check = "web"']
    path = lab.dir / "sluice-dpdk.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def lab(lab_factory):
    sluice = require_lab()
    if not sluicelab.sluice_has(sluice, "ctl"):
        skip_or_fail(f"{sluice} has no `ctl`")
    lab = lab_factory(backends=2, servers=["nginx"])
    prefix = f"sluice-{lab.name}"
    runtime_dir = Path("/var/run/dpdk") / prefix
    lab.dpdk_runtime_dir = runtime_dir
    config = dpdk_config(lab, prefix)
    # Cheap first: a build without DPDK says so at start-up.
    check = sluicelab.run([sluice, "check-config", str(config)], check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    pidfile = lab.dir / "sluice.pid"
    proc = lab.spawn("sluice", lab.topo.lb.ns,
                     [sluice, "run", "--config", str(config), "--pidfile", str(pidfile)])
    lab.daemon = proc
    lab.save()
    try:
        def ready() -> bool:
            if not proc.alive():
                log = Path(proc.log).read_text(errors="replace")
                if "built without DPDK" in log:
                    skip_or_fail(f"{sluice} is built without DPDK")
                raise sluicelab.LabError("sluice run exited while starting; its log:\n" + log[-4000:])
            return pidfile.exists() and lab.ctl("status", check=False).returncode == 0
        sluicelab.wait_for("sluice run (dpdk) to be ready", ready, timeout=30, interval=0.1)

        def all_up() -> bool:
            for vip in ("web-v4", "web-v6"):
                rows = lab.ctl_json("backends", "--vip", vip)
                rows = rows.get("result", rows)["backends"]
                if not all(r["state"] == "up" for r in rows):
                    return False
            return True
        sluicelab.wait_for("every backend to be up", all_up, timeout=15, interval=0.1)
        yield lab
    finally:
        if proc.alive():
            lab.stop(proc)
        # A daemon that did not stop cleanly leaves EAL's folder behind.
        shutil.rmtree(runtime_dir, ignore_errors=True)


def stats(lab) -> dict:
    out = lab.ctl_json("stats")
    return out.get("result", out)


def test_status_names_the_dpdk_fast_path(lab):
    st = lab.ctl_json("status")
    st = st.get("result", st)
    assert [fp["kind"] for fp in st["fastpaths"]] == ["dpdk"], st
    assert st["fastpaths"][0]["interface"] == "net_af_packet0", st


@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_curl_through_the_dpdk_path_reaches_every_backend(lab, vip):
    before = stats(lab)
    got = traffic.curl_fresh(lab.topo.clients[0].ns, traffic.url(vip), REQUESTS)
    assert got.failures == [], got.failures[:10]
    assert set(got.served) == {b.role for b in lab.topo.backends}, got.served
    after = stats(lab)
    name = "web-v6" if ":" in vip else "web-v4"
    vip_before = next(v for v in before["vips"] if v["name"] == name)
    vip_after = next(v for v in after["vips"] if v["name"] == name)
    # Every connection: at least SYN, ACK, request and FIN from the client,
    # all forwarded by the worker, each a new flow once.
    assert vip_after["packets"] - vip_before["packets"] >= 4 * REQUESTS, (vip_before, vip_after)
    assert vip_after["new_flows"] - vip_before["new_flows"] >= REQUESTS
    g0, g1 = before["global"], after["global"]
    assert g1["tx_packets"] - g0["tx_packets"] >= 4 * REQUESTS
    assert g1["rx_packets"] >= g1["tx_packets"]
    backends = [b for b in after["backends"] if b["vip"] == name]
    assert sum(b["packets"] for b in backends) == vip_after["packets"], after
    assert all(b["packets"] > 0 for b in backends), backends


def test_prometheus_shows_the_workers_counters_as_ctl_does(lab):
    traffic.curl_fresh(lab.topo.clients[0].ns, traffic.url(VIP4), 10)
    st = stats(lab)
    text = sluicelab.run(["curl", "-sS", "--max-time", "5", f"http://{METRICS}/metrics"],
                         ns=lab.topo.lb.ns).stdout
    def sample(name: str, labels: str) -> int:
        m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\d+)$", text, re.M)
        assert m, f"no {name}{{{labels}}} in:\n{text[:3000]}"
        return int(m.group(1))
    vip = next(v for v in st["vips"] if v["name"] == "web-v4")
    assert vip["packets"] > 0
    # VIP counters do not move without VIP traffic (probes are not).
    assert sample("sluice_vip_packets_total", 'vip="web-v4"') == vip["packets"]
    assert sample("sluice_vip_new_flows_total", 'vip="web-v4"') == vip["new_flows"]
    for b in (b for b in st["backends"] if b["vip"] == "web-v4"):
        assert sample("sluice_backend_packets_total",
                      f'vip="web-v4",backend="{b["backend"]}"') == b["packets"]


def test_sigterm_stops_workers_and_closes_ports(lab):
    proc = lab.daemon
    os.kill(proc.pid, signal.SIGTERM)
    sluicelab.wait_for("sluice run to exit", lambda: not proc.alive(), timeout=15)
    lab.stop(proc)
    log = Path(proc.log).read_text(errors="replace")
    assert "dpdk: stopping the workers, closing the ports" in log, log[-3000:]
    # EAL's runtime folder goes with a clean stop.
    deadline = time.monotonic() + 5
    while lab.dpdk_runtime_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lab.dpdk_runtime_dir.exists()
    # The VIP is nobody's now: the kernel of the LB drops it, curl fails.
    got = traffic.curl_fresh(lab.topo.clients[0].ns, traffic.url(VIP4), 1, timeout=30)
    assert got.failures, got.served
