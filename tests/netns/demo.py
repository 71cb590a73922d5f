#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""What `scripts/demo` runs once sluice is built: a lab (a client, a router,
the sluice LB, three backends running nginx and memcached), real traffic
through the VIP, live `sluice ctl stats`, one backend failing and its
traffic moving to the others, the hot-object cache absorbing a hot
memcached key, and a summary; everything is torn down at the end, on ^C and
on failure. Without the daemon in the build it shows what it can (the lab and
the backends' decapsulators) and says what is missing."""

import re
import signal
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sluicelab  # noqa: E402
import traffic  # noqa: E402
from sluicelab import VIP4, VIP6, run  # noqa: E402


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"\n==> {text}")


def served_line(got: traffic.CurlRun) -> str:
    parts = [f"{role} {n}" for role, n in sorted(got.served.items())]
    failed = f", {len(got.failures)} failed" if got.failures else ""
    return ", ".join(parts) + failed


def show_stats(lab) -> None:
    """The human table of `sluice ctl stats`, indented."""
    out = lab.ctl("stats", check=False)
    for line in (out.stdout or out.stderr).rstrip().splitlines():
        say(f"    {line}")


def demo_with_sluice(lab, summary: list[str]) -> None:
    client = lab.topo.clients[0]
    has_ctl = sluicelab.sluice_has(lab.sluice, "ctl")
    step("Attaching sluice to the LB's interface (sluice attach, XDP native mode)")
    sluicelab.default_config(lab, ["nginx", "memcached"], cache=True)
    lab.attach()
    say(f"    config {lab.config_path}; VIPs {VIP4}:80 and [{VIP6}]:80 -> 3 backends, "
        "weight 100 each, HTTP health checks every 500 ms;\n"
        f"    memcached {VIP4}:11211 over UDP with the hot-object cache and hash = \"key\"")
    if has_ctl:
        sluicelab.wait_for("every backend to pass its health check", lambda: all(
            r["state"] in ("up", "unchecked") for r in _backends(lab)), timeout=10, interval=0.1)
    else:
        say("    (`sluice ctl` is not in this build: no live stats below)")

    step(f"curl: 300 requests, each on a new connection, to http://{VIP4}/ and "
         f"http://[{VIP6}]/")
    for vip in (VIP4, VIP6):
        got = traffic.curl_fresh(client.ns, traffic.url(vip), 300)
        say(f"    {vip:<12} served by: {served_line(got)}")
    summary.append("curl through the VIP (IPv4 and IPv6): spread over the 3 backends "
                   f"({served_line(got)})")

    step("wrk: 5 s, 20 connections through the VIP (and 5 s straight to backend1, to compare)")
    through = traffic.wrk(client.ns, traffic.url(VIP4), seconds=5, connections=20)
    direct = traffic.wrk(client.ns, traffic.url(lab.topo.backends[0].addr4), seconds=5,
                         connections=20)
    errors = sum(through.socket_errors.values()) + through.non_2xx
    say(f"    through sluice: {through.requests_per_s:,.0f} requests/s, {errors} errors")
    say(f"    straight to one backend: {direct.requests_per_s:,.0f} requests/s")
    summary.append(f"wrk through sluice: {through.requests_per_s:,.0f} requests/s with {errors} "
                   f"errors (one backend alone: {direct.requests_per_s:,.0f})")

    if has_ctl:
        step("sluice ctl stats, live, while wrk runs")
        load = traffic.WrkInBackground(client.ns, traffic.url(VIP4), seconds=4, connections=10)
        try:
            for i in range(3):
                # A display cadence for people watching, not a synchronisation.
                time.sleep(1)
                say(f"  -- stats {i + 1}/3")
                show_stats(lab)
            load.result()
        finally:
            load.kill()

    victim = lab.topo.backends[1]
    step(f"Failing {victim.role}: stopping its nginx")
    t0 = time.monotonic()
    lab.stop(lab.find(f"nginx-{victim.role}"))
    detect = None
    try:
        if has_ctl:
            sluicelab.wait_for(f"{victim.role} to be marked down", lambda: any(
                r["state"] == "down" for r in _backends(lab, victim.addr4)), timeout=10,
                interval=0.05)
        else:
            # Without ctl, the sign is the traffic itself: 30 new
            # connections in a row, none refused or sent to the victim.
            sluicelab.wait_for(f"traffic to leave {victim.role}", lambda: _moved(
                client.ns, victim.role), timeout=10, interval=0.05)
        detect = time.monotonic() - t0
        say(f"    sluice took {victim.role} out after {detect:.2f} s (2 failed health checks)")
    except sluicelab.LabError:
        say(f"    {victim.role} was not taken out within 10 s (are health probes in this build?)")
    got = traffic.curl_fresh(client.ns, traffic.url(VIP4), 300)
    say(f"    300 new connections now go to: {served_line(got)}")
    if detect is not None:
        summary.append(f"{victim.role} failed: taken out in {detect:.2f} s, new connections "
                       f"went to the others ({served_line(got)})")
    else:
        summary.append(f"{victim.role} failed and was NOT taken out ({served_line(got)})")
    if has_ctl:
        step("sluice ctl backends")
        for line in lab.ctl("backends", check=False).stdout.rstrip().splitlines():
            say(f"    {line}")
        demo_cache(lab, summary)


def _backend_gets(lab) -> int:
    """memcached's cmd_get summed over the backends, asked directly."""
    total = 0
    for b in lab.topo.backends:
        with sluicelab.socket_in(lab.topo.clients[0].ns, socket.AF_INET,
                                 socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect((b.addr4, sluicelab.MEMCACHED_PORT))
            s.sendall(b"stats\r\n")
            out = b""
            while not out.endswith(b"END\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        m = re.search(rb"STAT cmd_get (\d+)", out)
        total += int(m.group(1)) if m else 0
    return total


def _cache_hits(lab) -> int:
    out = lab.ctl_json("cache")
    return sum(v["hits"] for v in out.get("result", out)["vips"])


def demo_cache(lab, summary: list[str]) -> None:
    """One hot key hammered over UDP for a few seconds: who answered."""
    seconds = 3
    key, value = b"demo:hot", b"the hottest value in the lab"
    step(f"Hot-object cache: `get {key.decode()}` over UDP to {VIP4}:11211 for {seconds} s")
    with sluicelab.socket_in(lab.topo.clients[0].ns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect((VIP4, sluicelab.MEMCACHED_PORT))

        def ask(rid: int, cmd: bytes) -> bytes | None:
            s.send(struct.pack("!HHHH", rid, 0, 1, 0) + cmd)
            try:
                while True:
                    data = s.recv(65536)
                    if struct.unpack("!H", data[:2])[0] == rid:
                        return data[8:]
            except socket.timeout:
                return None

        stored = ask(1, b"set " + key + b" 0 0 " + str(len(value)).encode() + b"\r\n" + value +
                     b"\r\n")
        if stored != b"STORED\r\n":
            say(f"    set {key.decode()} through the VIP failed: {stored!r}")
            return
        want = b"VALUE " + key + b" 0 " + str(len(value)).encode() + b"\r\n" + value + \
            b"\r\nEND\r\n"
        gets0, hits0 = _backend_gets(lab), _cache_hits(lab)
        sent = right = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent += 1
            right += ask(sent % 0xffff + 1, b"get " + key + b"\r\n") == want
        gets, hits = _backend_gets(lab) - gets0, _cache_hits(lab) - hits0
    say(f"    {sent:,} gets, {right:,} answered with the value set: {hits:,} by sluice's "
        f"cache, {gets:,} reached memcached\n"
        "    (the first misses make the key hot; the daemon fetches it from its owner and "
        "sluice answers from then on)")
    for line in lab.ctl("cache", check=False).stdout.rstrip().splitlines():
        say(f"    {line}")
    summary.append(f"a hot memcached key: {hits:,} of {sent:,} gets answered by sluice's cache, "
                   f"{gets:,} reached a backend")


def _backends(lab, address: str | None = None) -> list[dict]:
    out = lab.ctl_json("backends")
    rows = out.get("result", out)["backends"]
    if address:
        rows = [r for r in rows if r["backend"] == address]
    return rows


def _moved(ns: str, victim: str) -> bool:
    got = traffic.curl_fresh(ns, traffic.url(VIP4), 30)
    return not got.failures and got.served[victim] == 0


def demo_without_sluice(lab, summary: list[str]) -> None:
    client = lab.topo.clients[0]
    say(f"\n!!  {lab.sluice} has no `attach` subcommand: the sluice daemon is not in this build "
        "yet,\n!!  so nothing balances the VIP. Showing the lab and the backends' decapsulators.")
    step("curl: each backend straight on its own address")
    for b in lab.topo.backends:
        r = run(["curl", "-sS", "--max-time", "5", f"http://{b.addr4}/"], ns=client.ns)
        say(f"    http://{b.addr4}/ -> {r.stdout.strip()}")
    step("wrk: 5 s, 20 connections straight to backend1")
    direct = traffic.wrk(client.ns, traffic.url(lab.topo.backends[0].addr4), seconds=5,
                         connections=20)
    say(f"    {direct.requests_per_s:,.0f} requests/s, "
        f"{sum(direct.socket_errors.values()) + direct.non_2xx} errors")
    step("sluice decap status on backend1 (the decapsulator that undoes sluice's tunnel)")
    b = lab.topo.backends[0]
    for line in run([lab.sluice, "decap", "status", b.ifname], ns=b.ns).stdout.splitlines():
        say(f"    {line}")
    summary.append("the lab came up and its backends serve; load balancing through the VIP, "
                   "live stats and failover need `sluice attach` (the daemon), not built yet")


def main() -> int:
    missing = sluicelab.missing_requirements(["ip", "ethtool", "sysctl", "curl", "wrk", "nginx",
                                              "memcached"])
    if missing:
        say(f"demo: cannot run here, missing: {', '.join(missing)}")
        return 1
    # SIGTERM/SIGHUP unwind like ^C, so the lab is torn down.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _f: sys.exit(128 + signum))
    started = time.monotonic()
    summary: list[str] = []
    lab = sluicelab.Lab(backends=3)
    step("Building a lab: a client, a router, the load balancer, three backends running nginx "
         "and memcached")
    try:
        lab.up()
        lab.start_servers(["nginx", "memcached"])
        for line in lab.describe().splitlines():
            say(f"    {line}")
        say("    Each backend holds the VIPs on lo and strips sluice's IP-in-IP header with "
            "`sluice decap`;\n    replies go straight back to the client (direct server return).")
        if sluicelab.sluice_has(lab.sluice, "attach"):
            demo_with_sluice(lab, summary)
        else:
            demo_without_sluice(lab, summary)
    except (sluicelab.LabError, KeyboardInterrupt) as e:
        say(f"\ndemo: stopped: {e or 'interrupted'}")
        summary.append("the demo stopped early (above)")
        return_code = 1
    else:
        return_code = 0
    finally:
        step(f"Tearing the lab down ({lab.name})")
        problems = lab.down()
        say("    left behind: " + "; ".join(problems) if problems else "    nothing left behind")
    step(f"Summary ({time.monotonic() - started:.0f} s)")
    for line in summary:
        say(f"  * {line}")
    return return_code


if __name__ == "__main__":
    sys.exit(main())
