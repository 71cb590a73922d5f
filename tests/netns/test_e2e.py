# SPDX-License-Identifier: BSD-2-Clause
# End to end through sluice (ISSUE 6): real clients (curl, wrk, a memcached
# client, raw keep-alive connections) in a client namespace, `sluice attach`
# on the one-armed LB, nginx and memcached on three backends decapsulating
# with `sluice decap`, replies straight to the client. Tests run in file
# order on one lab; each leaves the balancer as it found it (a `reload`
# re-applies the file). Figures (requests/s, detection times, errors) go to
# the test output and, when SLUICE_NETNS_RESULTS names a file, into it as
# JSON lines for perf/RESULTS.md.
#
# With SLUICE_E2E_FASTPATH=dpdk (the netns test `e2e_dpdk`) the same lab runs
# `sluice run` with the DPDK fast path on the LB veth (net_af_packet, two
# workers sharing it by software distribution) instead of XDP, and only the
# tests marked for both fast paths run: curl, drain, failover; plus a check
# that every DPDK worker carried traffic.
import json
import os
import re
import socket
import struct
import time
from typing import Callable

import pytest

import sluicelab
import traffic
from conftest import FASTPATH, require_lab, skip_or_fail
from sluicelab import VIP4, VIP6, run

WEIGHTS = {"backend1": 100, "backend2": 200, "backend3": 300}
# Health checks fast enough that a failure is seen within a second.
INTERVAL_MS, FALL, RISE = 200, 3, 2
SHARE_TOLERANCE = 5.0  # percentage points


BOTH = pytest.mark.fastpaths("xdp", "dpdk")


def record(name: str, **figures) -> None:
    line = {"test": name if FASTPATH == "xdp" else f"{FASTPATH}_{name}", **figures}
    print(f"RESULT {json.dumps(line)}")
    path = os.environ.get("SLUICE_NETNS_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def config_vips(lab, weights: dict[str, int]) -> list[dict]:
    def backends(family: str, check: str, w: dict[str, int]):
        return [{"address": b.addr4 if family == "v4" else b.addr6, "weight": w[b.role],
                 "health_check": check} for b in lab.topo.backends]
    equal = {b.role: 100 for b in lab.topo.backends}
    return [
        {"name": "web-v4", "address": VIP4, "port": 80, "protocol": "tcp",
         "backends": backends("v4", "web", weights)},
        {"name": "web-v6", "address": VIP6, "port": 80, "protocol": "tcp",
         "backends": backends("v6", "web", weights)},
        {"name": "cache-v4", "address": VIP4, "port": 11211, "protocol": "udp",
         "backends": backends("v4", "cache", equal)},
        {"name": "redis-v4", "address": VIP4, "port": 6379, "protocol": "tcp",
         "backends": backends("v4", "redis", equal)},
    ]


HEALTH = {
    "web": {"type": "http", "interval_ms": INTERVAL_MS, "timeout_ms": 150, "rise": RISE,
            "fall": FALL},
    "cache": {"type": "memcached", "interval_ms": INTERVAL_MS, "timeout_ms": 150, "rise": RISE,
              "fall": FALL},
    "redis": {"type": "redis", "interval_ms": INTERVAL_MS, "timeout_ms": 150, "rise": RISE,
              "fall": FALL},
}


def write_config(lab, weights: dict[str, int]):
    path = lab.write_config(config_vips(lab, weights), health=HEALTH)
    # A flow table small enough for the flood test to overrun.
    text = path.read_text().replace(
        "[control]", "[flow_table]\nflows_per_core = 8192\nprobation_per_core = 2048\n[control]", 1)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def lab(lab_factory):
    sluice = require_lab(["wrk", "redis-server", "redis-benchmark", "redis-cli"])
    if not sluicelab.sluice_has(sluice, "attach"):
        skip_or_fail(f"{sluice} has no `attach` (the daemon is not in this build yet)")
    lab = lab_factory(backends=3, servers=["nginx", "memcached", "redis"], fastpath=FASTPATH)
    write_config(lab, WEIGHTS)
    try:
        lab.attach()
    except sluicelab.LabError as e:
        pytest.fail(str(e))
    wait_all_up(lab)
    return lab


def has_ctl(lab) -> bool:
    return sluicelab.sluice_has(lab.sluice, "ctl")


def need_ctl(lab) -> None:
    """Tests that watch the daemon's view (health, drain, weights) need
    `sluice ctl` and the health probes behind it."""
    if not has_ctl(lab):
        skip_or_fail(f"{lab.sluice} has no `ctl` (the control socket is not in this build yet)")


def ctl_result(lab, *args) -> dict:
    out = lab.ctl_json(*args)
    return out.get("result", out) if isinstance(out, dict) else out


def backends(lab, vip: str) -> dict[str, dict]:
    """The daemon's view of VIP `vip`'s backends, by backend role."""
    by_addr = {sluicelab.canonical(b.addr4): b.role for b in lab.topo.backends}
    by_addr |= {sluicelab.canonical(b.addr6): b.role for b in lab.topo.backends}
    rows = ctl_result(lab, "backends", "--vip", vip)["backends"]
    return {by_addr[sluicelab.canonical(r["backend"])]: r for r in rows}


def wait_all_up(lab, timeout: float = 10) -> None:
    if not has_ctl(lab):
        return

    def up() -> bool:
        return all(r["state"] == "up" for vip in ("web-v4", "web-v6", "cache-v4", "redis-v4")
                   for r in backends(lab, vip).values())
    sluicelab.wait_for("every backend to be up", up, timeout=timeout, interval=0.1)


def restore(lab) -> None:
    """Back to the file's config: weights, no drain, every backend up."""
    write_config(lab, WEIGHTS)
    lab.reload()
    for b in lab.topo.backends:
        if lab.find(f"nginx-{b.role}") is None:
            lab.start_nginx(b)
        if lab.find(f"redis-{b.role}") is None:
            lab.start_redis(b)
    wait_all_up(lab)


def assert_shares(run_: traffic.CurlRun, weights: dict[str, int]) -> None:
    assert run_.failures == [], run_.failures[:10]
    total = sum(weights.values())
    shares = run_.shares()
    for role, w in weights.items():
        want = 100.0 * w / total
        got = shares.get(role, 0.0)
        assert abs(got - want) <= SHARE_TOLERANCE, \
            f"{role}: {got:.1f}% of requests, weight share {want:.1f}% (all: {shares})"


def client(lab):
    return lab.topo.clients[0]


# (1), (2): 1,000 requests on fresh connections, shares follow weights.
@BOTH
@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_1000_fresh_connections_follow_the_weights(lab, vip):
    got = traffic.curl_fresh(client(lab).ns, traffic.url(vip), 1000)
    record(f"curl_1000_{'v6' if ':' in vip else 'v4'}", shares=got.shares(),
           failures=len(got.failures))
    assert_shares(got, WEIGHTS)


# (3): wrk through the VIP, and straight to one backend for comparison.
def test_wrk_through_sluice_has_no_errors(lab):
    through = traffic.wrk(client(lab).ns, traffic.url(VIP4), seconds=10, connections=50)
    direct = traffic.wrk(client(lab).ns, traffic.url(lab.topo.backends[0].addr4), seconds=5,
                         connections=50)
    record("wrk_10s_50c", requests_per_s=through.requests_per_s, requests=through.requests,
           socket_errors=through.socket_errors, non_2xx=through.non_2xx,
           direct_to_one_backend_requests_per_s=direct.requests_per_s)
    assert through.socket_errors == dict.fromkeys(through.socket_errors, 0), through.output
    assert through.non_2xx == 0, through.output
    assert through.requests > 0


# (8): memcached over UDP through a UDP VIP.
def test_memcached_over_udp_through_the_vip(lab):
    served = set()
    for i in range(30):
        key = f"k{i}".encode()
        value = f"value-{i}".encode()
        answers = traffic.memcached_udp(client(lab).ns, VIP4, [
            b"set " + key + b" 0 0 " + str(len(value)).encode() + b"\r\n" + value + b"\r\n",
            b"get " + key + b"\r\n",
        ])
        assert answers[0] == b"STORED\r\n"
        assert answers[1] == b"VALUE " + key + b" 0 " + str(len(value)).encode() + b"\r\n" + \
            value + b"\r\nEND\r\n"
        # Which memcached answered: its pid, from `stats` on the same flow.
        stats = traffic.memcached_udp(client(lab).ns, VIP4, [b"stats\r\n"])[0]
        pid = int(re.search(rb"STAT pid (\d+)", stats).group(1))
        served.add(next(p.what for p in lab.procs if p.pid == pid))
    # 30 flows over three equal backends: every backend took some.
    assert served == {f"memcached-{b.role}" for b in lab.topo.backends}, served


# (6a): a config reload under load: zero errors, shares move to the file's
# new weights.
def test_reload_under_load(lab):
    load = traffic.WrkInBackground(client(lab).ns, traffic.url(VIP4), seconds=6, connections=20)
    try:
        load.wait_connected(20)
        new = {"backend1": 300, "backend2": 200, "backend3": 100}
        write_config(lab, new)
        lab.reload()
        got = traffic.curl_fresh(client(lab).ns, traffic.url(VIP4), 1000)
        result = load.result()
    finally:
        load.kill()
        restore(lab)
    record("reload_under_wrk", requests_per_s=result.requests_per_s,
           socket_errors=result.socket_errors, non_2xx=result.non_2xx, shares=got.shares())
    assert_shares(got, new)
    assert result.socket_errors == dict.fromkeys(result.socket_errors, 0), result.output
    assert result.non_2xx == 0, result.output


# (6b): weights changed at run time (sluice ctl set-weight) under load.
def test_set_weight_under_load(lab):
    need_ctl(lab)
    load = traffic.WrkInBackground(client(lab).ns, traffic.url(VIP4), seconds=6, connections=20)
    try:
        load.wait_connected(20)
        new = {"backend1": 300, "backend2": 200, "backend3": 100}
        b = {x.role: x for x in lab.topo.backends}
        for role, w in new.items():
            lab.ctl("set-weight", "web-v4", b[role].addr4, str(w))
        got = traffic.curl_fresh(client(lab).ns, traffic.url(VIP4), 1000)
        result = load.result()
    finally:
        load.kill()
        restore(lab)
    record("set_weight_under_wrk", requests_per_s=result.requests_per_s,
           socket_errors=result.socket_errors, non_2xx=result.non_2xx, shares=got.shares())
    assert_shares(got, new)
    assert result.socket_errors == dict.fromkeys(result.socket_errors, 0), result.output
    assert result.non_2xx == 0, result.output


# The DPDK path's workers: each carries traffic (software distribution
# hands each worker its flows), and the flow table is per worker x workers.
@pytest.mark.fastpaths("dpdk")
def test_every_dpdk_worker_carries_traffic(lab):
    before = ctl_result(lab, "stats")
    got = traffic.curl_fresh(client(lab).ns, traffic.url(VIP4), 200)
    after = ctl_result(lab, "stats")
    assert got.failures == [], got.failures[:10]
    workers0, workers1 = before["workers"], after["workers"]
    assert len(workers1) == sluicelab.DPDK_WORKERS, workers1
    moved = [w1["tx_packets"] - w0["tx_packets"] for w0, w1 in zip(workers0, workers1)]
    record("dpdk_workers", tx_packets_per_worker=moved)
    # 200 connections of >= 4 client packets each: a worker with none of
    # them would be a (1/2)^200 chance with a working distribution.
    assert all(m > 0 for m in moved), (workers0, workers1)
    assert sum(moved) >= 4 * 200
    assert after["flow_table"]["capacity"] == sum(w["flow_capacity"] for w in workers1)
    assert after["flow_table"]["capacity"] == 8192 * sluicelab.DPDK_WORKERS


# (5): drain: no new connections to the drained backend, its open ones finish.
@BOTH
def test_drain_keeps_open_connections_and_takes_no_new_ones(lab):
    need_ctl(lab)
    conns = traffic.open_keepalives(client(lab).ns, VIP4, 30)
    # Drain the backend holding the most of them: a fixed one (backend1, a
    # sixth of the table) gets none of 30 connections once in 240 runs.
    drained = max(lab.topo.backends,
                  key=lambda b: sum(c.backend == b.role for c in conns))
    try:
        on_drained = [c for c in conns if c.backend == drained.role]
        assert on_drained, "no keep-alive connection landed on any backend"
        lab.ctl("drain", "web-v4", drained.addr4)
        fresh = traffic.curl_fresh(client(lab).ns, traffic.url(VIP4), 300)
        assert fresh.failures == []
        assert fresh.served[drained.role] == 0, fresh.served
        for _ in range(20):
            for c in conns:
                assert c.get() == c.backend, c.errors
        assert all(c.errors == [] for c in conns)
    finally:
        for c in conns:
            c.close()
        restore(lab)
    record("drain", open_connections_on_drained=len(on_drained), fresh_to_drained=0)


# (4): a backend fails under load: marked down within fall x interval, the
# other backends' connections see no error, new connections all succeed.
def taken_out(lab, vip: str, victim, probe: Callable[[], bool]) -> None:
    """Waits until `victim` is out of VIP `vip`: marked down in the daemon's
    view when the build has ctl, else until `probe` (new connections, none
    refused or sent to the victim) holds."""
    if has_ctl(lab):
        sluicelab.wait_for(f"{victim.role} to be marked down in {vip}",
                           lambda: backends(lab, vip)[victim.role]["state"] == "down",
                           timeout=10, interval=0.02)
    else:
        sluicelab.wait_for(f"new connections to {vip} to leave {victim.role}", probe,
                           timeout=10, interval=0.02)


@BOTH
def test_backend_failure_under_load(lab):
    conns = traffic.open_keepalives(client(lab).ns, VIP4, 30)
    victim = lab.topo.backends[2]
    load = traffic.WrkInBackground(client(lab).ns, traffic.url(VIP4), seconds=6, connections=20)
    try:
        load.wait_connected(len(conns) + 20)
        t0 = time.monotonic()
        lab.stop(lab.find(f"nginx-{victim.role}"))
        def avoided() -> bool:
            got = traffic.curl_fresh(client(lab).ns, traffic.url(VIP4), 40)
            return not got.failures and got.served[victim.role] == 0
        taken_out(lab, "web-v4", victim, avoided)
        detect_s = time.monotonic() - t0
        for _ in range(10):
            for c in conns:
                c.get()
        fresh = traffic.curl_fresh(client(lab).ns, traffic.url(VIP4), 300)
        result = load.result()
    finally:
        load.kill()
        for c in conns:
            c.close()
        restore(lab)
    survivors = [c for c in conns if c.backend != victim.role]
    record("backend_failure", detect_s=round(detect_s, 3),
           bound_s=FALL * INTERVAL_MS / 1000, survivor_errors=sum(len(c.errors) for c in survivors),
           wrk_errors=result.socket_errors, fresh_failures=len(fresh.failures))
    # A probe is due at most one interval after the failure, then fall - 1
    # more; allow one more interval for timing on a loaded machine.
    assert detect_s <= (FALL + 1) * INTERVAL_MS / 1000 + 0.5
    assert all(c.errors == [] for c in survivors)
    assert fresh.failures == [] and fresh.served[victim.role] == 0, fresh.served


# (7): the daemon restarts under load; established connections survive
# (the program stays attached, the maps are pinned and re-used).
def test_daemon_restart_keeps_established_connections(lab):
    conns = traffic.open_keepalives(client(lab).ns, VIP4, 20)
    try:
        lab.stop(lab.daemon)
        # Between the two daemons the fast path keeps forwarding alone.
        for c in conns:
            c.get()
        lab.attach()
        for _ in range(10):
            for c in conns:
                c.get()
        assert all(c.errors == [] for c in conns), [c.errors for c in conns if c.errors]
        if has_ctl(lab):
            status = ctl_result(lab, "status")
            assert all(fp["reused_pinned_maps"] for fp in status["fastpaths"]), status
    finally:
        for c in conns:
            c.close()
    wait_all_up(lab)
    record("daemon_restart", connections=len(conns), errors=0)


# (9): a flood of new flows far beyond the flow table: established
# connections keep working, and the flood ends (bounded count and time).
def test_flood_of_new_flows_leaves_established_connections_working(lab):
    conns = traffic.open_keepalives(client(lab).ns, VIP4, 10)
    c = client(lab)
    flows = 64_000  # distinct source ports; the flow table holds 8192 per core
    try:
        # A raw UDP socket: the kernel adds the IP header, the datagram
        # header is ours, so each datagram comes from its own source port
        # and is a new 5-tuple to the UDP VIP (memcached drops the payload,
        # which has no frame header).
        sender = sluicelab.socket_in(c.ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        with sender:
            t0 = time.monotonic()
            sent = 0
            for i in range(flows):
                sport = 1024 + i
                datagram = struct.pack("!HHHH", sport, sluicelab.MEMCACHED_PORT, 9, 0) + b"x"
                try:
                    sender.sendto(datagram, (VIP4, 0))
                    sent += 1
                except OSError:
                    pass
                if i % 10_000 == 0:
                    for k in conns:
                        k.get()
            flood_s = time.monotonic() - t0
        for _ in range(5):
            for k in conns:
                k.get()
    finally:
        for k in conns:
            k.close()
    stats = ctl_result(lab, "stats")["global"] if has_ctl(lab) else {}
    record("flood", flows=sent, seconds=round(flood_s, 2),
           flow_insert_failed=stats.get("flow_insert_failed"),
           keepalive_errors=sum(len(k.errors) for k in conns))
    assert all(k.errors == [] for k in conns), [k.errors for k in conns if k.errors]
    fresh = traffic.curl_fresh(c.ns, traffic.url(VIP4), 100)
    assert fresh.failures == []


def redis_served_by(lab, count: int) -> dict[str, int]:
    """`count` redis-cli runs, each a new connection to the Redis VIP; which
    backend answered each (each Redis runs in a folder named after it)."""
    served: dict[str, int] = {}
    for _ in range(count):
        out = run(["redis-cli", "-h", VIP4, "config", "get", "dir"], ns=client(lab).ns,
                  check=False, timeout=10).stdout.split()
        role = out[-1].rsplit("redis-", 1)[-1] if out else "no answer"
        served[role] = served.get(role, 0) + 1
    return served


def redis_benchmark(lab) -> tuple[str, str]:
    r = run(["redis-benchmark", "-h", VIP4, "-q", "-n", "20000", "-c", "20", "-t", "ping,set,get"],
            ns=client(lab).ns, check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, r.stderr


# (8b): three Redis backends behind a TCP VIP, health-checked with PING.
def test_redis_benchmark_through_the_vip(lab):
    out, err = redis_benchmark(lab)
    assert "error" not in (out + err).lower(), out + err
    rps = dict(re.findall(r"([A-Z_]+): ([\d.]+) requests per second", out))
    record("redis_benchmark", requests_per_s=rps)
    assert set(redis_served_by(lab, 60)) == {"backend1", "backend2", "backend3"}


def test_a_redis_failing_moves_its_share(lab):
    before = redis_served_by(lab, 60)
    assert set(before) == {"backend1", "backend2", "backend3"}, before
    victim = lab.topo.backends[0]
    try:
        lab.stop(lab.find(f"redis-{victim.role}"))
        taken_out(lab, "redis-v4", victim,
                  lambda: set(redis_served_by(lab, 30)) <= {"backend2", "backend3"})
        after = redis_served_by(lab, 60)
        out2, err2 = redis_benchmark(lab)
    finally:
        restore(lab)
    record("redis_failure", served_before=before, served_after_failure=after)
    assert set(after) == {"backend2", "backend3"}, after
    assert "error" not in (out2 + err2).lower(), out2 + err2
