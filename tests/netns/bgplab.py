# SPDX-License-Identifier: BSD-2-Clause
"""Several sluice instances behind ECMP in a lab (tests/netns/sluicelab.py):
the router runs BIRD, learns the VIP from every instance over eBGP (each
instance runs its own BIRD beside sluice) and installs one multipath route
(`merge paths`), hashed by 5-tuple (fib_multipath_hash_policy = 1). BFD on
every session (3 x 100 ms) withdraws a dead instance within about 0.3 s.

Each instance's sluice keeps a route per servable VIP address in routing
table BGP_TABLE through its TUN device; the instance's BIRD learns that
table (`kernel` protocol, `learn`) and announces it with itself as next hop.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import sluicelab
from sluicelab import BPFFS_ROOT, VIP4, Host, Lab, LabError, Proc, run, wait_for

ROUTER_AS = 65000
LB_AS = 65001
BGP_TABLE = 4242
VIPS_DEVICE = "sluice-vips"
# BFD: detection after 3 missed packets 100 ms apart.
BFD_INTERVAL_MS, BFD_MULTIPLIER = 100, 3

# Short timers so a lab converges in about a second (defaults are minutes).
SESSION_TIMERS = """  hold time 3; keepalive time 1;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  bfd on;"""
BFD = f"""protocol bfd {{
  interface "*" {{ min rx interval {BFD_INTERVAL_MS} ms; min tx interval {BFD_INTERVAL_MS} ms;
                   multiplier {BFD_MULTIPLIER}; }};
}}"""


def instance_bird_config(lb: Host) -> str:
    """BIRD beside one sluice instance: learn sluice's table, announce it."""
    return f"""# BIRD beside sluice on {lb.role} (tests/netns/bgplab.py)
log stderr all;
router id {lb.addr4};
protocol device {{ scan time 10; }}
# sluice's routes: one per servable VIP address, in table {BGP_TABLE}.
protocol kernel sluice_vips {{
  ipv4 {{ import all; export none; }};
  kernel table {BGP_TABLE};
  learn;
}}
{BFD}
protocol bgp uplink {{
  local {lb.addr4} as {LB_AS};
  neighbor {lb.gw4} as {ROUTER_AS};
{SESSION_TIMERS}
  ipv4 {{ import none; export where proto = "sluice_vips"; next hop self; }};
}}
"""


def router_bird_config(lab: Lab) -> str:
    """The router: a session per instance, equal routes merged into one
    multipath kernel route."""
    t = lab.topo
    sessions = "\n".join(f"""protocol bgp {lb.role} {{
  local {lb.gw4} as {ROUTER_AS};
  neighbor {lb.addr4} as {LB_AS};
{SESSION_TIMERS}
  ipv4 {{ import all; export none; }};
}}""" for lb in t.lbs)
    return f"""# BIRD on the lab's router (tests/netns/bgplab.py)
log stderr all;
debug protocols {{ states, events }};
router id {t.lb.gw4};
protocol device {{ scan time 10; }}
protocol kernel {{
  ipv4 {{ import none; export all; }};
  merge paths on;
}}
{BFD}
{sessions}
"""


@dataclass
class Instance:
    """One sluice instance (daemon + its BIRD) on load balancer `lb`."""
    lab: Lab
    lb: Host

    @property
    def dir(self) -> Path:
        return self.lab.dir / self.lb.role

    @property
    def socket(self) -> Path:
        return self.dir / "sluice.sock"

    @property
    def bird_socket(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pin_root(self) -> str:
        return str(BPFFS_ROOT / f"sluice-lab-{self.lab.name}-{self.lb.role}")

    def sluice(self) -> Proc | None:
        return self.lab.find(f"sluice-{self.lb.role}")

    def bird(self) -> Proc | None:
        return self.lab.find(f"bird-{self.lb.role}")

    def write_config(self, vips: list[dict], health: dict) -> Path:
        """The same VIPs, backends, seed and checks as every other instance;
        only the interface, encap sources and sockets are its own."""
        self.dir.mkdir(exist_ok=True)
        lb = self.lb
        lines = [
            f"# sluice on {lb.role} (tests/netns/bgplab.py)",
            "hash_seed = 7",
            "[control]", f'socket = "{self.socket}"',
            "[metrics]", 'listen = ""',
            "[xdp]", f'interfaces = ["{lb.ifname}"]', 'mode = "native"',
            f'encap_source_v4 = "{lb.addr4}"', f'encap_source_v6 = "{lb.addr6}"',
            "[bgp]", "announce = true", f"table = {BGP_TABLE}", f'device = "{VIPS_DEVICE}"',
            f'bird_socket = "{self.bird_socket}"',
        ]
        for name, keys in health.items():
            lines.append(f"[health_checks.{name}]")
            lines += [f"{k} = {sluicelab._toml(v)}" for k, v in keys.items()]
        for vip in vips:
            lines.append("[[vips]]")
            lines += [f"{k} = {sluicelab._toml(v)}" for k, v in vip.items() if k != "backends"]
            for be in vip["backends"]:
                lines.append("[[vips.backends]]")
                lines += [f"{k} = {sluicelab._toml(v)}" for k, v in be.items()]
        path = self.dir / "sluice.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_bird(self) -> Proc:
        self.dir.mkdir(exist_ok=True)
        conf = self.dir / "bird.conf"
        conf.write_text(instance_bird_config(self.lb))
        return start_bird(self.lab, f"bird-{self.lb.role}", self.lb.ns, conf, self.bird_socket)

    def start_sluice(self, timeout: float = 20) -> Proc:
        if self.pin_root not in self.lab.pins:
            self.lab.pins.append(self.pin_root)
        pidfile = self.dir / "sluice.pid"
        pidfile.unlink(missing_ok=True)
        proc = self.lab.spawn(f"sluice-{self.lb.role}", self.lb.ns, [
            self.lab.sluice, "attach", self.lb.ifname, "--config", str(self.dir / "sluice.toml"),
            "--xdp-mode", "native", "--pidfile", str(pidfile), "--pin-root", self.pin_root])

        def ready() -> bool:
            if not proc.alive():
                raise LabError(f"sluice on {self.lb.role} exited while starting; its log:\n"
                               + Path(proc.log).read_text(errors="replace")[-3000:])
            return pidfile.exists() and self.ctl("status", check=False).returncode == 0
        wait_for(f"sluice on {self.lb.role}", ready, timeout=timeout, interval=0.05)
        return proc

    def flows_last_seen(self, vip: str = VIP4) -> dict[int, int]:
        """Client source port -> last_seen (ms, the fast path's coarse
        clock, 32 bits) of each flow entry to `vip` in this instance's flow
        map, read with bpftool; {} when the instance has no maps."""
        path = Path(self.pin_root) / "sluice_flows"
        if not path.exists():
            return {}
        r = run(["bpftool", "-j", "map", "dump", "pinned", str(path)], timeout=30)
        want = ipaddress.ip_address(vip).packed
        out = {}
        for e in json.loads(r.stdout):
            key = bytes(int(b, 16) for b in e["key"])
            value = bytes(int(b, 16) for b in e["value"])
            # sluice_flow_key: src[16] dst[16] sport dport (network order)
            # proto family; sluice_flow_value: backend_id last_seen (host order).
            if key[16:16 + len(want)] != want:
                continue
            out[int.from_bytes(key[32:34], "big")] = int.from_bytes(value[4:8], "little")
        return out

    def start(self) -> None:
        self.start_bird()
        self.start_sluice()

    def ctl(self, *args: str, check: bool = True):
        return run([self.lab.sluice, "ctl", "--socket", str(self.socket), *args], check=check,
                   timeout=30)

    def ctl_json(self, *args: str) -> dict:
        import json
        out = json.loads(self.ctl("--json", *args).stdout)
        return out.get("result", out) if isinstance(out, dict) else out

    def crash(self) -> None:
        """The whole instance dies at once: SIGKILL to sluice and its BIRD,
        and its fast path stops forwarding (the XDP program, which outlives
        a daemon on purpose, is detached: packets to the VIP then meet a
        kernel that neither owns nor forwards them, as on a dead host)."""
        procs = [p for p in (self.sluice(), self.bird()) if p is not None]
        # Silent at once, as a host that loses power: what its kernel would
        # still send (the FIN of the BGP session when BIRD's socket closes,
        # RSTs, ICMP) is dropped by a queue of length 0 (a blackhole route
        # is not enough: the closing socket's FIN still left), so the
        # router learns of the death by BFD alone.
        run(["tc", "qdisc", "replace", "dev", self.lb.ifname, "root", "pfifo", "limit", "0"],
            ns=self.lb.ns)
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        # Gone (the daemon's lock on the pin folder with it) before detach.
        wait_for("the killed instance to be gone", lambda: not any(p.alive() for p in procs),
                 timeout=5, interval=0.005)
        run(["nsenter", f"--net=/run/netns/{self.lb.ns}", "--", self.lab.sluice, "detach",
             self.lb.ifname, "--pin-root", self.pin_root])
        for p in procs:
            self.lab.stop(p)

    def revive(self) -> None:
        """Back after crash(): the host's network, then BIRD and sluice."""
        run(["tc", "qdisc", "del", "dev", self.lb.ifname, "root"], ns=self.lb.ns)
        self.start()


def start_bird(lab: Lab, what: str, ns: str, conf: Path, ctl: Path) -> Proc:
    """BIRD in the foreground (-f, so the lab holds its pid) in `ns`."""
    ctl.unlink(missing_ok=True)
    proc = lab.spawn(what, ns, ["bird", "-f", "-c", str(conf), "-s", str(ctl),
                                "-P", str(conf.with_suffix(".pid"))])
    wait_for(f"{what}'s control socket", lambda: ctl.exists() or not proc.alive(), timeout=10)
    if not proc.alive():
        raise LabError(f"{what} exited; its log:\n" + Path(proc.log).read_text(errors="replace"))
    return proc


def start_router_bird(lab: Lab) -> Path:
    conf = lab.dir / "router-bird.conf"
    conf.write_text(router_bird_config(lab))
    ctl = lab.dir / "router-bird.ctl"
    start_bird(lab, "bird-router", lab.topo.router_ns, conf, ctl)
    return ctl


def vip_next_hops(lab: Lab, vip: str = VIP4) -> list[str]:
    """The router's kernel route to `vip`: the interfaces (router ends, e.g.
    "lb", "lb2") of its next hops; [] without a route."""
    r = run(["ip", "-o", "route", "show", f"{vip}/32"], ns=lab.topo.router_ns, check=False)
    return sorted(re.findall(r"\bdev (\S+)", r.stdout))


def wait_next_hops(lab: Lab, want: list[Host], timeout: float = 15) -> float:
    """Waits until the router's route to the VIP goes through exactly the
    load balancers `want`; returns the seconds it took."""
    import time
    t0 = time.monotonic()
    names = sorted(h.router_if for h in want)
    wait_for(f"the router's route to {VIP4} via {names}",
             lambda: vip_next_hops(lab) == names, timeout=timeout, interval=0.01)
    return time.monotonic() - t0


def carriers(instances: list[Instance], sports: list[int], fresh_ms: int = 1000) -> dict[int, str]:
    """Source port -> role of the instance whose fast path saw the flow last,
    if within `fresh_ms` (the connections send every 100 ms); "" for none.
    The router's choice cannot be asked for (`ip route get` hashes the
    5-tuple, but a forwarded packet that carries a socket's L4 hash is
    steered by that hash, which TCP re-rolls after a timeout), so it is
    read where it lands."""
    # CLOCK_MONOTONIC_COARSE (6), the packet path's clock; Python 3.11 does not name it.
    now = time.clock_gettime(getattr(time, "CLOCK_MONOTONIC_COARSE", 6))
    now_ms = int(now * 1000) & 0xFFFFFFFF
    best: dict[int, tuple[int, str]] = {}
    for inst in instances:
        for sport, seen in inst.flows_last_seen().items():
            age = (now_ms - seen) & 0xFFFFFFFF
            age = age - (1 << 32) if age >= 1 << 31 else age
            if age <= fresh_ms and (sport not in best or age < best[sport][0]):
                best[sport] = (age, inst.lb.role)
    return {sp: best[sp][1] if sp in best else "" for sp in sports}
