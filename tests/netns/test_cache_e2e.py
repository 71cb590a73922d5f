# SPDX-License-Identifier: BSD-2-Clause
# The hot-object cache end to end (ISSUE 8): `sluice attach` in front of three
# real memcached backends, a memcached UDP VIP with the cache and key-affinity
# routing (hash = "key") and its TCP twin, clients in a client namespace.
# (a) a Zipf workload over UDP is answered by the cache, byte for byte what
# was SET; (b) clients writing through the VIP over TCP and UDP and then
# reading over UDP never see an older value than their own acknowledged
# write, while readers keep the keys hot; (c) the same with a backend
# killed (SIGKILL by PID) mid-run: misses and timeouts, never a stale or
# wrong value. Each test checks that the cache really served during it.
# With SLUICE_E2E_FASTPATH=dpdk (the netns test `cache_e2e_dpdk`) the same
# tests run on the DPDK path with two workers: a client's TCP writes and
# its UDP reads may meet different workers.
import bisect
import json
import os
import random
import re
import signal
import socket
import struct
import threading
import time

import pytest

import sluicelab
from conftest import FASTPATH, require_lab, skip_or_fail
from sluicelab import MEMCACHED_PORT, VIP4

pytestmark = pytest.mark.fastpaths("xdp", "dpdk")

# Fast enough that keys turn hot and fill within a fraction of a second.
CACHE = {"entries": 2048, "hot_threshold": 3, "period_ms": 100, "ttl_ms": 5000,
         "write_settle_ms": 20, "fetch_timeout_ms": 200}
HEALTH = {"mc": {"type": "memcached", "interval_ms": 200, "timeout_ms": 150, "rise": 2,
                 "fall": 2}}


def record(name: str, **figures) -> None:
    line = {"test": name if FASTPATH == "xdp" else f"{name}_{FASTPATH}", **figures}
    print(f"RESULT {json.dumps(line)}")
    path = os.environ.get("SLUICE_NETNS_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def config(lab):
    backends = [{"address": b.addr4, "weight": 100, "health_check": "mc"}
                for b in lab.topo.backends]
    vips = [
        {"name": "mc-udp", "address": VIP4, "port": MEMCACHED_PORT, "protocol": "udp",
         "hash": "key", "cache": True, "backends": backends},
        # The TCP twin: its writes invalidate the UDP VIP's keys.
        {"name": "mc-tcp", "address": VIP4, "port": MEMCACHED_PORT, "protocol": "tcp",
         "backends": backends},
    ]
    return lab.write_config(vips, health=HEALTH, cache=CACHE)


def ctl_result(lab, *args) -> dict:
    out = lab.ctl_json(*args)
    return out.get("result", out) if isinstance(out, dict) else out


def cache_counters(lab) -> dict:
    vips = ctl_result(lab, "cache")["vips"]
    return next(v for v in vips if v["name"] == "mc-udp")


def backend_states(lab) -> dict[str, str]:
    by_addr = {sluicelab.canonical(b.addr4): b.role for b in lab.topo.backends}
    rows = ctl_result(lab, "backends", "--vip", "mc-udp")["backends"]
    return {by_addr[sluicelab.canonical(r["backend"])]: r["state"] for r in rows}


@pytest.fixture(scope="module")
def lab(lab_factory):
    sluice = require_lab()
    if not sluicelab.sluice_has(sluice, "ctl"):
        skip_or_fail(f"{sluice} has no `ctl`")
    lab = lab_factory(backends=3, servers=["memcached"], fastpath=FASTPATH)
    config(lab)
    try:
        lab.attach()
    except sluicelab.LabError as e:
        pytest.fail(str(e))
    sluicelab.wait_for("every memcached to be up",
                       lambda: set(backend_states(lab).values()) == {"up"}, timeout=10,
                       interval=0.1)
    return lab


def client_ns(lab) -> str:
    return lab.topo.clients[0].ns


# --- memcached clients ------------------------------------------------------


class Udp:
    """A memcached UDP client socket to the VIP (one 5-tuple: with key
    routing its requests still go to each key's owner)."""

    def __init__(self, ns: str, timeout: float = 0.5):
        self.sock = sluicelab.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.sock.connect((VIP4, MEMCACHED_PORT))
        self.rid = random.randrange(1, 0xffff)

    def ask(self, cmd: bytes) -> bytes | None:
        """The answer's payload (frame header off), or None on a timeout."""
        self.rid = self.rid % 0xffff + 1
        self.sock.send(struct.pack("!HHHH", self.rid, 0, 1, 0) + cmd)
        try:
            while True:
                data = self.sock.recv(65536)
                if len(data) >= 8 and struct.unpack("!H", data[:2])[0] == self.rid:
                    return data[8:]
        except (socket.timeout, ConnectionRefusedError):
            # Refused: an ICMP port unreachable from a backend whose
            # memcached is gone, which a connected socket reports.
            return None

    def close(self) -> None:
        self.sock.close()


class Tcp:
    """A memcached TCP connection (to the VIP, or to one backend)."""

    def __init__(self, ns: str, addr: str, timeout: float = 2.0):
        self.sock = sluicelab.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((addr, MEMCACHED_PORT))
        self.buf = b""

    def ask(self, cmd: bytes, end: bytes) -> bytes:
        """Sends cmd and reads up to and including `end` (b"\\r\\n" for a
        one-line answer, b"END\\r\\n" for get and stats)."""
        self.sock.sendall(cmd)
        while end not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def close(self) -> None:
        self.sock.close()


def set_cmd(key: str, value: bytes, flags: int = 0) -> bytes:
    return f"set {key} {flags} 0 {len(value)}\r\n".encode() + value + b"\r\n"


def value_answer(key: str, value: bytes, flags: int = 0) -> bytes:
    return f"VALUE {key} {flags} {len(value)}\r\n".encode() + value + b"\r\nEND\r\n"


def udp_set(c: Udp, key: str, value: bytes, flags: int = 0, deadline: float = 5.0) -> bool:
    """Sets over UDP, the same value again on a timeout (idempotent) until
    acknowledged or `deadline` s passed."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        a = c.ask(set_cmd(key, value, flags))
        if a == b"STORED\r\n":
            return True
        assert a is None, f"set {key}: {a!r}"
    return False


def owners(lab, keys: list[str]) -> dict[str, str]:
    """Which backend holds each key, asked of every backend directly."""
    out = {}
    for b in lab.topo.backends:
        c = Tcp(client_ns(lab), b.addr4)
        try:
            for i in range(0, len(keys), 50):
                got = c.ask(("get " + " ".join(keys[i:i + 50]) + "\r\n").encode(), b"END\r\n")
                for k in re.findall(rb"VALUE (\S+) ", got):
                    out[k.decode()] = b.role
        finally:
            c.close()
    return out


def memcached_pid_roles(lab) -> dict[int, str]:
    return {p.pid: p.what.removeprefix("memcached-") for p in lab.procs
            if p.what.startswith("memcached-")}


def backend_gets(lab) -> int:
    """cmd_get summed over the live backends (asked directly)."""
    total = 0
    for b in lab.topo.backends:
        if lab.find(f"memcached-{b.role}") is None:
            continue
        c = Tcp(client_ns(lab), b.addr4)
        try:
            stats = c.ask(b"stats\r\n", b"END\r\n")
        finally:
            c.close()
        total += int(re.search(rb"STAT cmd_get (\d+)", stats).group(1))
    return total


# --- (a) Zipf over UDP ------------------------------------------------------


def zipf_cdf(n: int, s: float) -> list[float]:
    w = [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(w)
    acc, out = 0.0, []
    for x in w:
        acc += x / total
        out.append(acc)
    return out


def test_zipf_over_udp_is_served_by_the_cache_byte_exact(lab):
    rng = random.Random(8)
    n = 300
    keys = [f"z:{i}" for i in range(n)]
    values = {k: bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                       for _ in range(rng.randint(1, 150))) for k in keys}
    flags = {k: i * 7 for i, k in enumerate(keys)}
    c = Udp(client_ns(lab))
    try:
        for k in keys:
            assert udp_set(c, k, values[k], flags[k]), k
    finally:
        c.close()
    # Key routing put each key on one shard, and the three shards share them.
    where = owners(lab, keys)
    assert set(where) == set(keys)
    assert len(set(where.values())) == 3

    before, gets_before = cache_counters(lab), backend_gets(lab)
    cdf = zipf_cdf(n, 0.99)
    done, bad, lost = [0], [], [0]
    lock = threading.Lock()

    def load(seed: int, count: int) -> None:
        r = random.Random(seed)
        cl = Udp(client_ns(lab))
        try:
            for _ in range(count):
                k = keys[bisect.bisect_left(cdf, r.random())]
                a = cl.ask(f"get {k}\r\n".encode())
                with lock:
                    if a is None:
                        lost[0] += 1
                    elif a != value_answer(k, values[k], flags[k]):
                        bad.append((k, a[:80]))
                    done[0] += 1
        finally:
            cl.close()

    threads = [threading.Thread(target=load, args=(s, 2500)) for s in range(3)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    # The backends first: a fetch still under way then counts in `after`.
    gets_after = backend_gets(lab)
    after = cache_counters(lab)
    hits = after["hits"] - before["hits"]
    backend = gets_after - gets_before
    fills = after["fills"] - before["fills"]
    record("cache_zipf_udp", requests=done[0], lost=lost[0], cache_hits=hits,
           backend_gets=backend, hit_ratio=round(hits / max(done[0], 1), 3), fills=fills,
           seconds=round(elapsed, 2),
           counters={k: after[k] - before[k] for k in after if isinstance(after[k], int)})
    assert bad == [], bad[:5]
    assert lost[0] <= done[0] // 100, f"{lost[0]} of {done[0]} requests unanswered"
    # The cache answered a good share (the hottest keys fill within a few
    # periods), and what it answered never reached a backend: the backends
    # saw the misses (lost answers among them) and the filler's own gets
    # (fetches: installed, refused by the lease, or failed under load).
    fetches = after["fetches"] - before["fetches"]
    assert fills <= fetches, (fills, fetches)
    assert hits >= done[0] // 5, (hits, done[0])
    assert backend <= done[0] - hits + lost[0] + fetches, (backend, done[0], hits, fetches)
    # `ctl cache` names the hottest keys on either fast path, with the gets
    # answered from each (on DPDK summed over the workers): Zipf's head.
    hottest = ctl_result(lab, "cache")["hottest"]
    assert hottest and all(h["key"] in values for h in hottest), hottest[:3]
    assert hottest[0]["key"] in keys[:10] and hottest[0]["hits"] > 0, hottest[:3]
    assert sum(h["hits"] for h in hottest) <= after["hits"], (hottest[:3], after["hits"])


# --- (b), (c) write then read -----------------------------------------------


class History:
    """Per key: the versions written and acknowledged; a value names its key
    and version, so a read can be judged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.problems: list[str] = []
        self.misses = 0
        self.checked = 0

    @staticmethod
    def value(key: str, version: int) -> bytes:
        return f"{key}|v{version}|".encode() + b"x" * (version % 37)

    def judge(self, key: str, answer: bytes | None, acked_at_send: int,
              misses_ok: bool) -> int | None:
        """Checks one GET answer against what was acknowledged before it was
        sent; returns the version read (None: a miss or timeout)."""
        with self.lock:
            self.checked += 1
            if answer is None:
                return None
            if answer == b"END\r\n":
                self.misses += 1
                if not misses_ok:
                    self.problems.append(f"{key}: a miss after v{acked_at_send} was acknowledged")
                return None
            m = re.fullmatch(rb"VALUE (\S+) 0 (\d+)\r\n(.*)\r\nEND\r\n", answer, re.S)
            if m is None or m.group(1).decode() != key or int(m.group(2)) != len(m.group(3)):
                self.problems.append(f"{key}: malformed or another key's answer {answer[:80]!r}")
                return None
            vm = re.fullmatch(rb"(\S+)\|v(\d+)\|x*", m.group(3))
            if vm is None or vm.group(1).decode() != key or \
                    m.group(3) != self.value(key, int(vm.group(2))):
                self.problems.append(f"{key}: a value never written {m.group(3)[:60]!r}")
                return None
            v = int(vm.group(2))
            if v < acked_at_send:
                self.problems.append(f"{key}: read v{v} after v{acked_at_send} was acknowledged")
            if v > self.sent.get(key, -1):
                self.problems.append(f"{key}: read v{v}, never sent")
            return v


def write_read_run(lab, hist: History, udp_keys: list[str], tcp_plan: list[tuple],
                   seconds: float, misses_ok, kill=None) -> dict:
    """Writers set a key to its next version (UDP, or TCP on a connection
    to the key's owner), wait for the acknowledgement, then read it over
    UDP: exactly that version (or, with misses_ok() true, a miss or
    timeout). Readers hammer every key meanwhile so they turn hot and are
    cached between writes. `kill` runs once, a third into the run."""
    stop = time.monotonic() + seconds
    ns = client_ns(lab)
    rounds = [0]

    def writer_loop(keys, write) -> None:
        r = random.Random(",".join(keys))
        reader = Udp(ns)
        try:
            while time.monotonic() < stop:
                for k in keys:
                    with hist.lock:
                        v = hist.sent.get(k, 0) + 1
                        hist.sent[k] = v
                    if not write(k, History.value(k, v)):
                        continue
                    with hist.lock:
                        hist.acked[k] = max(hist.acked.get(k, 0), v)
                        rounds[0] += 1
                    got = hist.judge(k, reader.ask(f"get {k}\r\n".encode()), v, misses_ok())
                    if got is not None and got != v:
                        with hist.lock:
                            hist.problems.append(f"{k}: wrote v{v}, read back v{got}")
                # Long enough for readers to make the keys hot and the
                # filler to cache them before the next write.
                time.sleep(r.uniform(0.05, 0.4))
        finally:
            reader.close()

    def udp_writer(keys) -> None:
        c = Udp(ns)
        try:
            writer_loop(keys, lambda k, val: udp_set(c, k, val, deadline=3.0))
        finally:
            c.close()

    def tcp_writer(conn: Tcp, keys) -> None:
        def write(k, val) -> bool:
            a = conn.ask(set_cmd(k, val), b"\r\n")
            assert a == b"STORED\r\n", a
            return True
        writer_loop(keys, write)

    def reader_loop(seed: int) -> None:
        r = random.Random(seed)
        c = Udp(ns)
        all_keys = udp_keys + [k for _, keys in tcp_plan for k in keys]
        try:
            while time.monotonic() < stop:
                k = r.choice(all_keys)
                with hist.lock:
                    acked = hist.acked.get(k, 0)
                hist.judge(k, c.ask(f"get {k}\r\n".encode()), acked, misses_ok())
        finally:
            c.close()

    errors = []

    def thread(fn, *args) -> threading.Thread:
        def body() -> None:
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - reported as a failure below
                errors.append(repr(e))
        return threading.Thread(target=body)

    threads = [thread(udp_writer, udp_keys[i::2]) for i in range(2)]
    threads += [thread(tcp_writer, conn, keys) for conn, keys in tcp_plan]
    threads += [thread(reader_loop, s) for s in range(3)]
    before = cache_counters(lab)
    for t in threads:
        t.start()
    if kill is not None:
        time.sleep(seconds / 3)
        kill()
    for t in threads:
        t.join()
    after = cache_counters(lab)
    assert errors == [], errors
    return {"rounds": rounds[0], "reads": hist.checked, "misses": hist.misses,
            "hits": after["hits"] - before["hits"],
            "invalidations": after["invalidations"] - before["invalidations"],
            "fills": after["fills"] - before["fills"],
            "stale_fills": after["stale_fills"] - before["stale_fills"]}


def test_write_then_read_never_sees_the_old_value(lab):
    hist = History()
    ns = client_ns(lab)
    udp_keys = [f"wu:{i}" for i in range(6)]
    # Candidate keys for the TCP writers: each needs its owner's connection.
    cand = [f"wt:{i}" for i in range(60)]
    c = Udp(ns)
    try:
        for k in udp_keys + cand:
            assert udp_set(c, k, History.value(k, 0)), k
            hist.sent[k] = hist.acked[k] = 0
    finally:
        c.close()
    where = owners(lab, cand)
    # TCP connections through the VIP land by 5-tuple: keep one per backend,
    # found by the pid `stats` reports.
    roles = memcached_pid_roles(lab)
    conns: dict[str, Tcp] = {}
    spare = []
    for _ in range(60):
        if len(conns) == len(lab.topo.backends):
            break
        t = Tcp(ns, VIP4)
        pid = int(re.search(rb"STAT pid (\d+)", t.ask(b"stats\r\n", b"END\r\n")).group(1))
        if roles[pid] in conns:
            spare.append(t)
        else:
            conns[roles[pid]] = t
    for t in spare:
        t.close()
    assert len(conns) == len(lab.topo.backends), f"TCP connections reached only {list(conns)}"
    tcp_plan = [(conn, [k for k in cand if where[k] == role][:3]) for role, conn in conns.items()]
    try:
        figures = write_read_run(lab, hist, udp_keys, tcp_plan, seconds=12,
                                 misses_ok=lambda: False)
    finally:
        for t in conns.values():
            t.close()
    record("cache_write_then_read", **figures, problems=len(hist.problems))
    assert hist.problems == [], hist.problems[:10]
    assert figures["rounds"] >= 60, figures
    # The cache really served these keys between writes, and the writes
    # (TCP and UDP) really invalidated them.
    assert figures["hits"] > 0, figures
    assert figures["invalidations"] >= figures["rounds"], figures


def test_a_backend_killed_mid_run_never_gives_a_stale_value(lab):
    hist = History()
    ns = client_ns(lab)
    keys = [f"wk:{i}" for i in range(12)]
    c = Udp(ns)
    try:
        for k in keys:
            assert udp_set(c, k, History.value(k, 0)), k
            hist.sent[k] = hist.acked[k] = 0
    finally:
        c.close()
    where = owners(lab, keys)
    victim = max(lab.topo.backends, key=lambda b: sum(r == b.role for r in where.values()))
    killed = threading.Event()

    def kill() -> None:
        proc = lab.find(f"memcached-{victim.role}")
        os.kill(proc.pid, signal.SIGKILL)
        killed.set()
        sluicelab.wait_for(f"memcached-{victim.role} to exit", lambda: not proc.alive(),
                           timeout=5)
        lab.stop(proc)  # forget it (reaped)

    try:
        # Before the kill every key is on a live shard: a miss is a fault;
        # after it the victim's keys are gone with it until written again.
        figures = write_read_run(lab, hist, keys, [], seconds=12,
                                 misses_ok=killed.is_set, kill=kill)
        down = backend_states(lab)[victim.role]
    finally:
        if lab.find(f"memcached-{victim.role}") is None:
            lab.start_memcached(victim)
    record("cache_backend_killed", victim=victim.role, **figures, problems=len(hist.problems))
    assert hist.problems == [], hist.problems[:10]
    assert down == "down", down
    assert figures["hits"] > 0, figures
    assert figures["rounds"] >= 40, figures
