#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""GETs/s and p99 latency of memcached over UDP three ways in one run (issue
8, "Performance"): a client against memcached straight, through sluice
without the cache, and through sluice with the cache -- the three measured
one after the other in each round, several rounds.

A lab from tests/netns (namespaces with random names, removed on any exit;
processes killed by PID) with ONE memcached backend, so that all three paths
end at the same server: straight is the backend's own address; "sluice" is
a VIP without the cache (10.99.0.2, set up here) and "sluice+cache" the
lab's VIP 10.99.0.1 with `cache = true`. Both VIPs route by key (hash =
"key"), so the only difference between them is the cache.

The client: worker processes in the client namespace, each a UDP socket
with a window of requests in flight (closed loop), one get per datagram
over a Zipf(s) key set; a request unanswered after --timeout-ms counts as
lost. Latency is from send to the answer's arrival, per request. The hot
keys fill the cache during a warm-up before the first round.

Needs root, memcached, python3-pyroute2 and a built sluice (SLUICE_BIN or
build/control/sluice). Example (about a minute):

    sudo perf/cache_e2e_bench.py --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "netns"))
import sluicelab  # noqa: E402
from sluicelab import MEMCACHED_PORT, VIP4  # noqa: E402

# The VIP without the cache (exists only inside the lab's namespaces).
PLAIN_VIP = "10.99.0.2"


def zipf_cdf(n: int, s: float) -> list[float]:
    w = [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(w)
    acc, out = 0.0, []
    for x in w:
        acc += x / total
        out.append(acc)
    return out


def key_name(i: int) -> str:
    return f"key:{i:07d}"


def worker(ns: str, target: str, seconds: float, window: int, timeout: float, seed: int,
           cdf: list[float], out) -> None:
    """One client socket: keeps `window` gets in flight for `seconds`;
    sends back (answered, lost, wrong, latencies in us)."""
    rng = random.Random(seed)
    n = len(cdf)
    requests = [f"get {key_name(bisect.bisect_left(cdf, rng.random()) % n)}\r\n".encode()
                for _ in range(1 << 16)]
    sock = sluicelab.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((target, MEMCACHED_PORT))
    sock.settimeout(timeout / 4)
    sent: dict[int, float] = {}
    lat: list[int] = []
    lost = wrong = 0
    rid = rng.randrange(0x10000)
    i = 0
    end = time.monotonic() + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while len(sent) < window:
            rid = (rid + 1) & 0xffff
            if rid in sent:
                continue
            sent[rid] = time.monotonic()
            sock.send(struct.pack("!HHHH", rid, 0, 1, 0) + requests[i & 0xffff])
            i += 1
        try:
            data = sock.recv(2048)
        except (socket.timeout, ConnectionRefusedError):
            data = None
        now = time.monotonic()
        if data is not None and len(data) >= 8:
            at = sent.pop(struct.unpack("!H", data[:2])[0], None)
            if at is not None:
                lat.append(int((now - at) * 1e6))
                if not (data[8:14] == b"VALUE " and data.endswith(b"END\r\n")):
                    wrong += 1
        for r in [r for r, t in sent.items() if now - t > timeout]:
            del sent[r]
            lost += 1
    sock.close()
    out.put((len(lat), lost, wrong, lat))


def measure(ns: str, target: str, args, cdf: list[float], seed: int) -> dict:
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=worker, args=(ns, target, args.seconds, args.window,
                                             args.timeout_ms / 1000, seed * 100 + k, cdf, q))
             for k in range(args.clients)]
    for p in procs:
        p.start()
    results = [q.get(timeout=args.seconds + 30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
    lat = sorted(x for r in results for x in r[3])
    answered = sum(r[0] for r in results)

    def pct(p: float) -> int:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0
    return {"gets_per_s": round(answered / args.seconds), "p50_us": pct(0.50),
            "p99_us": pct(0.99), "lost": sum(r[1] for r in results),
            "wrong": sum(r[2] for r in results)}


def preload(ns: str, addr: str, keys: int, value_bytes: int) -> None:
    """Sets every key over TCP, straight at the backend (noreply, batched)."""
    value = b"v" * value_bytes
    sock = sluicelab.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((addr, MEMCACHED_PORT))
    try:
        for start in range(0, keys, 1000):
            batch = b"".join(f"set {key_name(i)} 0 0 {len(value)} noreply\r\n".encode() + value
                             + b"\r\n" for i in range(start, min(start + 1000, keys)))
            sock.sendall(batch)
        sock.sendall(b"version\r\n")
        buf = b""
        while b"VERSION" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise sluicelab.LabError("memcached closed the preload connection")
            buf += chunk
    finally:
        sock.close()


def cache_counters(lab) -> dict:
    out = lab.ctl_json("cache")
    out = out.get("result", out)
    return next(v for v in out["vips"] if v["name"] == "mc-cache")


def extra_vip(lab) -> None:
    """PLAIN_VIP routed to the LB, on the backend's lo, decapsulated there."""
    from pyroute2 import NetNS

    t = lab.topo
    router = NetNS(t.router_ns)
    try:
        router.route("add", dst=f"{PLAIN_VIP}/32", gateway=t.lb.addr4)
    finally:
        router.close()
    for b in t.backends:
        host = NetNS(b.ns)
        try:
            host.addr("add", index=host.link_lookup(ifname="lo")[0], address=PLAIN_VIP,
                      prefixlen=32)
        finally:
            host.close()
        sluicelab.run([lab.sluice, "decap", "attach", b.ifname, "--vip", sluicelab.VIP4,
                       "--vip", sluicelab.VIP6, "--vip", PLAIN_VIP], ns=b.ns)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the three (1..10)")
    ap.add_argument("--seconds", type=float, default=5, help="per measurement (1..60)")
    ap.add_argument("--clients", type=int, default=2, help="client processes (1..8)")
    ap.add_argument("--window", type=int, default=8, help="gets in flight per client (1..64)")
    ap.add_argument("--keys", type=int, default=100_000, help="distinct keys (1..1,000,000)")
    ap.add_argument("--zipf", type=float, default=0.99, help="Zipf exponent")
    ap.add_argument("--value-bytes", type=int, default=100, help="bytes per value (1..1024)")
    ap.add_argument("--timeout-ms", type=float, default=200, help="a get unanswered this long is lost")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of cached load before round 1")
    ap.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = ap.parse_args()
    if not (1 <= args.rounds <= 10 and 1 <= args.seconds <= 60 and 1 <= args.clients <= 8
            and 1 <= args.window <= 64 and 1 <= args.keys <= 1_000_000
            and 1 <= args.value_bytes <= 1024 and 0 <= args.warmup <= 60):
        ap.error("an argument is out of its range")
    if os.geteuid() != 0:
        print("cache_e2e_bench: needs root (network namespaces, XDP)", file=sys.stderr)
        return 77
    missing = sluicelab.missing_requirements(["memcached"])
    if missing:
        print(f"cache_e2e_bench: missing {', '.join(missing)}", file=sys.stderr)
        return 77
    sluicelab._install_signal_teardown()

    cdf = zipf_cdf(args.keys, args.zipf)
    with sluicelab.Lab(backends=1, clients=1) as lab:
        b = lab.topo.backends[0]
        ns = lab.topo.clients[0].ns
        extra_vip(lab)
        mc = lab.spawn(f"memcached-{b.role}", b.ns,
                       ["memcached", "-u", "root", "-l", ",".join([VIP4, PLAIN_VIP, b.addr4]),
                        "-p", str(MEMCACHED_PORT), "-U", str(MEMCACHED_PORT), "-t", "1",
                        "-m", "256", "-c", "4096"])
        lab._wait_serving(mc, MEMCACHED_PORT, "udp")
        lab._wait_serving(mc, MEMCACHED_PORT, "tcp")
        backends = [{"address": b.addr4, "weight": 100}]
        lab.write_config(
            [{"name": "mc-cache", "address": VIP4, "port": MEMCACHED_PORT, "protocol": "udp",
              "hash": "key", "cache": True, "backends": backends},
             {"name": "mc-plain", "address": PLAIN_VIP, "port": MEMCACHED_PORT,
              "protocol": "udp", "hash": "key", "backends": backends}],
            cache={"entries": 10_000, "hot_threshold": 3, "period_ms": 100,
                   "ttl_ms": 3_600_000, "write_settle_ms": 20, "fetch_timeout_ms": 200})
        lab.attach()
        preload(ns, b.addr4, args.keys, args.value_bytes)
        if args.warmup:
            measure(ns, VIP4, argparse.Namespace(**{**vars(args), "seconds": args.warmup}),
                    cdf, 99)
        paths = [("memcached", b.addr4), ("sluice", PLAIN_VIP), ("sluice+cache", VIP4)]
        print(f"# {args.keys} keys, Zipf {args.zipf}, {args.value_bytes}-byte values; "
              f"{args.clients} clients x {args.window} in flight; {args.seconds} s each; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'round':>5} {'path':<13} {'GETs/s':>8} {'p50 us':>7} {'p99 us':>7} "
              f"{'lost':>5} {'wrong':>5} {'cache hits':>10} {'hit %':>5}")
        for r in range(1, args.rounds + 1):
            for name, target in paths:
                before = cache_counters(lab)["hits"]
                m = measure(ns, target, args, cdf, r)
                m["cache_hits"] = cache_counters(lab)["hits"] - before
                m["hit_pct"] = round(100 * m["cache_hits"] / max(1, m["gets_per_s"] * args.seconds))
                if args.json:
                    print(json.dumps({"round": r, "path": name, **m}))
                else:
                    print(f"{r:>5} {name:<13} {m['gets_per_s']:>8} {m['p50_us']:>7} "
                          f"{m['p99_us']:>7} {m['lost']:>5} {m['wrong']:>5} "
                          f"{m['cache_hits']:>10} {m['hit_pct']:>5}", flush=True)
        print(f"# load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
