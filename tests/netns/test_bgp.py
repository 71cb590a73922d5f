# SPDX-License-Identifier: BSD-2-Clause
# Several sluice instances behind ECMP, VIPs announced over BGP (ISSUE 9):
# clients -> router (BIRD, multipath, L4 hash) -> 3 sluice instances (XDP,
# each with its BIRD) -> 3 nginx backends (sluice decap, replies straight
# back). 300 long-lived connections each send a request every 100 ms while
# an instance is drained, a fourth is added, one instance's view of the
# backends fails, and one instance crashes; a connection that errs, stalls
# for 10 s or changes backend is broken. Which instance carries a connection
# is read from the instances' flow maps. Tests run in file order on one lab
# (about 25 s); figures go to the output and, with SLUICE_NETNS_RESULTS, to
# a file (perf/RESULTS.md "Scale-out").
import selectors
import shutil
import socket
import statistics
import threading
import time

import pytest

import bgplab
import sluicelab
from conftest import require_lab, skip_or_fail
from sluicelab import VIP4, LabError, run
from test_e2e import record

CONNECTIONS = 300
PERIOD_S = 0.1     # between two requests of one connection
STALL_S = 10.0     # no answer for this long: broken
HEALTH = {"web": {"type": "http", "interval_ms": 200, "timeout_ms": 150, "rise": 2, "fall": 2}}


def vips(lab) -> list[dict]:
    return [{"name": "web-v4", "address": VIP4, "port": 80, "protocol": "tcp",
             "backends": [{"address": b.addr4, "weight": 100, "health_check": "web"}
                          for b in lab.topo.backends]}]


class Conn:
    """One keep-alive connection: its source port, the backend that answers
    it, when each answer came, and what went wrong."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sport = sock.getsockname()[1]
        self.buf = b""
        self.backend: str | None = None
        self.sent_at: float | None = None
        self.answers: list[float] = []
        self.error: str | None = None



class Load:
    """CONNECTIONS keep-alive connections to the VIP from one client, each
    sending GET / every PERIOD_S (the next one after the answer), driven by
    one thread with non-blocking sockets."""

    def __init__(self, ns: str, count: int = CONNECTIONS):
        self.conns: list[Conn] = []
        with sluicelab.in_netns(ns):
            for _ in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(5)
                s.connect((VIP4, sluicelab.HTTP_PORT))
                s.setblocking(False)
                self.conns.append(Conn(s))
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for c in self.conns:
            sel.register(c.sock, selectors.EVENT_READ, c)
        next_send = {id(c): time.monotonic() + i * PERIOD_S / len(self.conns)
                     for i, c in enumerate(self.conns)}
        while not self.stop_flag.is_set():
            now = time.monotonic()
            for c in self.conns:
                if c.error is None and c.sent_at is None and now >= next_send[id(c)]:
                    try:
                        c.sock.send(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
                        c.sent_at = now
                    except OSError as e:
                        c.error = f"send: {e}"
                elif c.error is None and c.sent_at is not None and now - c.sent_at > STALL_S:
                    c.error = f"no answer for {STALL_S} s"
            for key, _ in sel.select(timeout=0.01):
                c = key.data
                if c.error is not None:
                    continue
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    c.error = f"recv: {e}"
                    continue
                if not data:
                    c.error = "closed by the peer"
                    continue
                c.buf += data
                while b"\r\n\r\n" in c.buf:
                    head, rest = c.buf.split(b"\r\n\r\n", 1)
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(rest) < length:
                        break
                    body, c.buf = rest[:length].decode().strip(), rest[length:]
                    t = time.monotonic()
                    if not head.startswith(b"HTTP/1.1 200"):
                        c.error = f"status {head.splitlines()[0]!r}"
                    elif c.backend is None:
                        c.backend = body
                    elif body != c.backend:
                        c.error = f"moved from {c.backend} to {body}"
                    c.answers.append(t)
                    c.sent_at = None
                    next_send[id(c)] = t + PERIOD_S
        sel.close()

    def wait_answered(self, rounds: int = 2, timeout: float = 10) -> None:
        """Until every connection has `rounds` answers (or has failed)."""
        sluicelab.wait_for(f"every connection to be answered {rounds} times",
                           lambda: all(len(c.answers) >= rounds or c.error for c in self.conns),
                           timeout=timeout, interval=0.05)

    def broken(self, since: set[int] = frozenset()) -> list[str]:
        """The broken connections, less those whose source port is in `since`."""
        return [f"sport {c.sport} ({c.backend}): {c.error}" for c in self.conns
                if c.error and c.sport not in since]

    def broken_ports(self) -> set[int]:
        return {c.sport for c in self.conns if c.error}

    def alive(self) -> list[Conn]:
        return [c for c in self.conns if c.error is None]

    def gaps(self, since: float, conns: list[Conn] | None = None) -> list[float]:
        """Per connection, the longest time without an answer after `since`
        (s), less one period (the time between answers when all is well)."""
        out = []
        for c in conns if conns is not None else self.conns:
            times = [since] + [t for t in c.answers if t > since]
            longest = max((b - a for a, b in zip(times, times[1:])), default=0.0)
            out.append(max(0.0, longest - PERIOD_S))
        return out

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=5)
        for c in self.conns:
            c.sock.close()


@pytest.fixture(scope="module")
def world(lab_factory):
    sluice = require_lab(["bird", "birdc"])
    if shutil.which("bird") is None and not shutil.which("/usr/sbin/bird"):
        skip_or_fail("BIRD 2 (bird2) is not installed: scripts/setup-deps installs it")
    if not sluicelab.sluice_has(sluice, "ctl", "drain-instance"):
        skip_or_fail(f"{sluice} has no `ctl drain-instance` (no [bgp] support in this build)")
    lab = lab_factory(backends=3, lbs=4, static_vip_routes=False, servers=["nginx"])
    instances = [bgplab.Instance(lab, lb) for lb in lab.topo.lbs]
    try:
        bgplab.start_router_bird(lab)
        for inst in instances:
            inst.write_config(vips(lab), HEALTH)
        for inst in instances[:3]:
            inst.start()
        bgplab.wait_next_hops(lab, [i.lb for i in instances[:3]], timeout=20)
    except LabError as e:
        pytest.fail(str(e))
    load = Load(lab.topo.clients[0].ns)
    try:
        load.wait_answered()
        yield lab, instances, load
    finally:
        load.stop()


def running(instances) -> list:
    return [i for i in instances if i.sluice() is not None]


def carriers(instances, load: Load) -> dict[int, str]:
    """Source port -> role of the instance carrying it now ("" for none)."""
    running = [i for i in instances if i.sluice() is not None]
    return bgplab.carriers(running, [c.sport for c in load.conns])


def test_status_shows_announcements_and_sessions(world):
    lab, instances, _ = world
    def established(inst) -> dict | None:
        # BIRD is read once a second off the daemon's loop: the first
        # reading may predate the session.
        bgp = inst.ctl_json("status")["bgp"]
        sessions = {s["name"]: s for s in bgp["sessions"]}
        up = sessions.get("uplink", {}).get("info") == "Established"
        return bgp if up else None

    for inst in instances[:3]:
        bgp = sluicelab.wait_for("BIRD's session in status", lambda: established(inst),
                                 timeout=5, interval=0.2)
        assert 0 <= bgp["bird_age_ms"] < 3000, bgp
        assert bgp["routes"] == [VIP4], bgp
        assert bgp["vips"] == [{"name": "web-v4", "address": VIP4, "servable": True,
                                "announced": True}], bgp
        sessions = {s["name"]: s for s in bgp["sessions"]}
        assert sessions["uplink"]["state"] == "up", bgp
        assert sessions["uplink"]["info"] == "Established", bgp
        text = inst.ctl("status").stdout
        assert "web-v4 10.99.0.1: announced" in text, text
        assert "uplink (BGP): up, Established" in text, text


def test_every_instance_carries_some_of_300_connections(world):
    lab, instances, load = world
    by_lb = carriers(instances, load)
    counts = {i.lb.role: sum(1 for d in by_lb.values() if d == i.lb.role)
              for i in instances[:3]}
    packets = {i.lb.role: i.ctl_json("stats")["vips"][0]["packets"] for i in instances[:3]}
    record("bgp_spread", connections=len(load.conns), per_instance=counts,
           vip_packets=packets, backends=sorted({c.backend for c in load.conns}))
    assert not load.broken(), load.broken()[:5]
    assert all(n > 0 for n in counts.values()), counts
    assert all(n > 0 for n in packets.values()), packets


def test_drain_instance_withdraws_first_without_a_pause(world):
    lab, instances, load = world
    drained = instances[1]
    before = load.broken_ports()
    on = carriers(instances, load)
    moved = [c for c in load.alive() if on[c.sport] == drained.lb.role]
    t0 = time.monotonic()
    out = drained.ctl("drain-instance").stdout
    assert "instance drained" in out, out
    bgplab.wait_next_hops(lab, [instances[0].lb, instances[2].lb])
    withdraw_s = time.monotonic() - t0  # from the command
    time.sleep(1.5)
    gaps = load.gaps(t0, moved)
    status = drained.ctl_json("status")["bgp"]
    drained.ctl("undrain-instance")
    bgplab.wait_next_hops(lab, [i.lb for i in instances[:3]])
    record("bgp_drain_instance", moved_connections=len(moved), broken=len(load.broken(before)),
           withdrawn_at_router_s=round(withdraw_s, 3),
           max_gap_s=round(max(gaps, default=0), 3))
    assert status["instance_drained"] and status["routes"] == [], status
    assert status["vips"][0]["announced"] is False, status
    assert moved, "no connection was on the drained instance"
    assert not load.broken(before), load.broken(before)[:5]
    # The drained instance still forwards while the router moves its flows:
    # no answer later than one BGP update (well under 0.5 s here).
    assert max(gaps) < 0.5, sorted(gaps)[-5:]


def test_a_fourth_instance_takes_about_a_quarter(world):
    lab, instances, load = world
    broken_before = load.broken_ports()
    before = carriers(instances, load)
    t0 = time.monotonic()
    instances[3].start()
    join_s = bgplab.wait_next_hops(lab, [i.lb for i in instances])
    time.sleep(1.5)
    after = carriers(instances, load)
    gaps = load.gaps(t0, load.alive())
    to_new = sum(1 for d in after.values() if d == instances[3].lb.role)
    moved = sum(1 for sp in after if after[sp] != before[sp])
    new_packets = instances[3].ctl_json("stats")["vips"][0]["packets"]
    # The share of the VIP's packets each instance forwards over a second:
    # what the router really does, whatever the flow maps say.
    p0 = {i.lb.role: i.ctl_json("stats")["vips"][0]["packets"] for i in instances}
    time.sleep(1.0)
    p1 = {i.lb.role: i.ctl_json("stats")["vips"][0]["packets"] for i in instances}
    total = sum(p1[r] - p0[r] for r in p0) or 1
    packet_share = {r: round((p1[r] - p0[r]) / total, 3) for r in p0}

    per_instance = {i.lb.role: sum(1 for d in after.values() if d == i.lb.role) for i in instances}
    record("bgp_scale_out", connections=len(load.alive()), per_instance=per_instance,
           to_new_instance=to_new, packet_share=packet_share,
           changed_instance=moved, broken=len(load.broken(broken_before)),
           announced_at_router_s=round(join_s, 3), max_gap_s=round(max(gaps), 3))
    assert not load.broken(broken_before), load.broken(broken_before)[:5]
    # A quarter of the live connections, spread binomially by the router's
    # hash (75 +- 7.5 of 300).
    alive = len(load.alive())
    assert 0.15 * alive <= to_new <= 0.35 * alive, (to_new, alive)
    assert new_packets > 0
    assert max(gaps) < 0.5, sorted(gaps)[-5:]


def test_an_instance_whose_backends_all_fail_withdraws(world):
    lab, instances, load = world
    sick = instances[2]
    serving = running(instances)
    before = load.broken_ports()
    on_sick = {sp for sp, d in carriers(instances, load).items() if d == sick.lb.role}
    # Only this instance's probes fail (TCP to port 80 from its own stack,
    # which the XDP fast path never uses): the backends are fine for the
    # others.
    rule = ["ip", "rule", "add", "ipproto", "tcp", "dport", "80", "prohibit"]
    run(rule, ns=sick.lb.ns)
    t0 = time.monotonic()
    try:
        bgplab.wait_next_hops(lab, [i.lb for i in serving if i is not sick])
        withdraw_s = time.monotonic() - t0
        bgp = sick.ctl_json("status")["bgp"]
        time.sleep(1.0)
    finally:
        run(["ip", "rule", "del", "ipproto", "tcp", "dport", "80", "prohibit"], ns=sick.lb.ns)
    back_s = bgplab.wait_next_hops(lab, [i.lb for i in serving])
    broken = load.broken_ports() - before
    record("bgp_health_withdraw", withdrawn_after_s=round(withdraw_s, 3),
           reannounced_after_s=round(back_s, 3), connections_on_it=len(on_sick),
           broken_on_it=len(broken & on_sick), broken_elsewhere=len(broken - on_sick))
    assert bgp["vips"] == [{"name": "web-v4", "address": VIP4, "servable": False,
                            "announced": False}], bgp
    # Its backends go down in its view one by one, and like a single
    # instance it moves the flows of a backend it believes down (to
    # backends that reset them): only connections it carried may break.
    assert not broken - on_sick, load.broken(before)[:5]


def test_a_crashed_instance_loses_no_connection(world):
    lab, instances, load = world
    victim = instances[0]
    serving = running(instances)
    before = load.broken_ports()
    on = carriers(instances, load)
    moved = [c for c in load.alive() if on[c.sport] == victim.lb.role]
    t0 = time.monotonic()
    victim.crash()
    bgplab.wait_next_hops(lab, [i.lb for i in serving if i is not victim])
    withdraw_s = time.monotonic() - t0  # from the crash
    # Long enough for TCP to retransmit what was lost while the route still
    # pointed at the dead instance.
    time.sleep(3.0)
    gaps = load.gaps(t0, moved)
    broken = load.broken(before)
    record("bgp_instance_crash", moved_connections=len(moved), broken=len(broken),
           withdrawn_at_router_after_crash_s=round(withdraw_s, 3),
           gap_median_s=round(statistics.median(gaps), 3) if gaps else None,
           gap_max_s=round(max(gaps, default=0), 3),
           bound_s=bgplab.BFD_MULTIPLIER * bgplab.BFD_INTERVAL_MS / 1000)
    assert moved, "no connection was on the crashed instance"
    assert not broken, broken[:5]
    assert all(len([t for t in c.answers if t > t0 + 1.0]) > 0 for c in moved), \
        "a moved connection was not answered again"
    # BFD: 3 x 100 ms, plus the router's update; generous for a loaded machine.
    assert withdraw_s < 1.5, withdraw_s
    victim.revive()
    bgplab.wait_next_hops(lab, [i.lb for i in serving])
