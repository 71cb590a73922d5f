#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""The sluice lab: a network-namespace topology to try sluice in, with real
servers behind it and real clients in front; `scripts/lab` and the netns
end-to-end tests both build on it.

Topology (one-armed load balancer, direct server return):

    client<k> --c<k>--+                  +--b<i>-- backend<i>  (VIP on lo, sluice decap)
                      |---- router ------|
       lb (sluice) --lb-+                  (routes the VIP to the LB)

A packet to the VIP goes client -> router -> LB; sluice encapsulates it
(IP-in-IP) and sends it back out the same interface (XDP_TX) to the router,
which routes the outer destination (a backend address) to the backend. The
backend's decapsulator strips the outer header, the server bound to the VIP
answers, and the reply goes client-wards through the router, never through
the LB.

Every namespace is named <lab>-<role> with <lab> "sl-<6 hex>" by default, so
labs running side by side never collide; the LB's interface is named
<lab>-lb, which makes sluice's default pin folder (/sys/fs/bpf/sluice/<if>)
unique as well. All state (configs, logs, the processes started, by PID and
start time) lives in /run/sluice-lab/<lab>/, which is what `down` reads: a
lab is torn down completely by the process that made it or by any later one.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

LAB_ROOT = Path("/run/sluice-lab")
BPFFS_ROOT = Path("/sys/fs/bpf")
REPO = Path(__file__).resolve().parents[2]

# The VIPs every lab serves (they exist only inside its namespaces).
VIP4 = "10.99.0.1"
VIP6 = "fd00:99::1"

HTTP_PORT = 80
# A VIP no packet in a lab carries: sluice_decap serving only it passes
# everything, which makes it the XDP program a veth needs to take XDP_TX
# frames (see Lab.up).
PASS_ONLY_VIP = "192.0.2.255"
MEMCACHED_PORT = 11211
REDIS_PORT = 6379

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(Exception):
    """A lab step failed; the message carries the command and its output."""


# --- running things ----------------------------------------------------------


def run(args: list[str], ns: str | None = None, check: bool = True, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Runs a command (in namespace `ns` if given), capturing its output. A
    failure raises LabError with the command line, exit status and output."""
    argv = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout} s: {' '.join(argv)}\n"
                       f"{e.stdout or ''}{e.stderr or ''}") from None
    if check and p.returncode != 0:
        raise LabError(f"failed (exit {p.returncode}): {' '.join(argv)}\n"
                       f"--- stdout\n{p.stdout}--- stderr\n{p.stderr}")
    return p


def wait_for(what: str, cond: Callable[[], object], timeout: float = 10.0,
             interval: float = 0.02) -> object:
    """Polls cond() until it returns something truthy and returns that, or
    raises LabError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Runs the body with the calling thread in namespace `ns`. Sockets made
    inside stay in `ns` after it returns (a socket keeps the namespace it was
    created in), which is how tests get clients in a namespace without a
    subprocess."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(there)
            try:
                yield
            finally:
                _setns(here)
        finally:
            os.close(there)
    finally:
        os.close(here)


def socket_in(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket in namespace `ns`."""
    with in_netns(ns):
        return socket.socket(family, kind, proto)


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field
    22), or None when it is gone: with the PID it names one process for
    good, so a recycled PID is never killed."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


@dataclass
class Proc:
    """A process the lab started (in its own process group)."""
    what: str
    pid: int
    start: int
    log: str

    def alive(self) -> bool:
        if _start_time(self.pid) != self.start:
            return False
        if not _is_zombie(self.pid):
            return True
        # A killed thread-group leader is a zombie while its other threads
        # still exit, holding its open files (a daemon's lock on its pin
        # folder among them): alive until no thread but the leader is left.
        try:
            return len(os.listdir(f"/proc/{self.pid}/task")) > 1
        except FileNotFoundError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to its process group, SIGKILL if still there after
        `timeout` s; waits until it is gone."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            with contextlib.suppress(LabError):
                wait_for(f"{self.what} (pid {self.pid}) to exit", lambda: not self.alive(),
                         timeout=timeout)
        _reap(self.pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat[stat.rindex(")") + 2] == "Z":
        _reap(pid)
        return True
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _listening(pid: int, port: int, proto: str) -> bool:
    """Whether the namespace of process `pid` has a socket bound to `port`
    (TCP: listening), read from /proc/PID/net/{tcp,tcp6,udp,udp6}."""
    for table in (proto, proto + "6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return False
        for line in lines:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and (proto == "udp" or cols[3] == "0A"):
                return True
    return False


# --- topology ----------------------------------------------------------------


@dataclass
class Host:
    """One namespace at the end of a veth whose other end is on the router."""
    role: str           # client1, lb, backend1, ...
    ns: str
    ifname: str         # its interface
    router_if: str      # the router's end
    mac: str
    router_mac: str
    addr4: str
    addr6: str
    gw4: str            # the router's address on this link
    gw6: str


def canonical(addr: str) -> str:
    """An address in its canonical text form ("fd00:90::2", not "fd00:90:0::2")."""
    return str(ipaddress.ip_address(addr))


def _mac(kind: int, index: int, side: int) -> str:
    return f"02:5e:{kind:02x}:{index:02x}:00:{side:02x}"


def _host(name: str, role: str, kind: int, index: int, net4: str, net6: str, ifname: str,
          router_if: str) -> Host:
    return Host(role=role, ns=f"{name}-{role}", ifname=ifname, router_if=router_if,
                mac=_mac(kind, index, 2), router_mac=_mac(kind, index, 1),
                addr4=f"{net4}.2", addr6=canonical(f"{net6}::2"), gw4=f"{net4}.1",
                gw6=canonical(f"{net6}::1"))


@dataclass
class Topology:
    """Who is where: computed from a name and counts, nothing created."""
    name: str
    clients: list[Host]
    lb: Host
    backends: list[Host]
    router_ns: str
    # Every load balancer: lb first, then lb2, lb3, ... (several instances
    # behind ECMP; tests/netns/bgplab.py).
    lbs: list[Host] = field(default_factory=list)

    @classmethod
    def make(cls, name: str, backends: int, clients: int, lbs: int = 1) -> "Topology":
        if not 1 <= backends <= 200 or not 1 <= clients <= 200:
            raise LabError("backends and clients: 1..200 each")
        if not 1 <= lbs <= 9:
            raise LabError("load balancers: 1..9")
        topo = cls(
            name=name,
            clients=[_host(name, f"client{k}", 1, k, f"10.91.{k}", f"fd00:91:{k}", "eth0", f"c{k}")
                     for k in range(1, clients + 1)],
            # The LB's interface carries the lab's name: sluice pins its maps
            # by interface name, so parallel labs never share a pin folder.
            lb=_host(name, "lb", 2, 0, "10.90.0", "fd00:90:0", f"{name}-lb", "lb"),
            backends=[_host(name, f"backend{i}", 3, i, f"10.92.{i}", f"fd00:92:{i}", "eth0",
                            f"b{i}") for i in range(1, backends + 1)],
            router_ns=f"{name}-router")
        # Interface names stay within 15 bytes: <name>-l<i>.
        topo.lbs = [topo.lb] + [_host(name, f"lb{i}", 2, i - 1, f"10.90.{i - 1}",
                                      f"fd00:90:{i - 1}", f"{name}-l{i}", f"lb{i}")
                                for i in range(2, lbs + 1)]
        return topo

    def hosts(self) -> list[Host]:
        return [*self.clients, *self.lbs, *self.backends]

    def namespaces(self) -> list[str]:
        return [self.router_ns, *(h.ns for h in self.hosts())]


def new_name() -> str:
    return f"sl-{secrets.token_hex(3)}"


# Worker lcores of a DPDK lab daemon (Lab(fastpath="dpdk")).
DPDK_WORKERS = 2
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")


class Lab:
    """A lab: build it with up(), tear it down with down() (or use it as a
    context manager, which tears down on any exit). Construct with
    Lab.load(name) to take over a lab another process brought up."""

    def __init__(self, backends: int = 3, clients: int = 1, name: str | None = None,
                 sluice: str | None = None, lbs: int = 1, static_vip_routes: bool = True,
                 fastpath: str = "xdp"):
        """`lbs` load balancers; with `static_vip_routes` false the router
        has no route to the VIPs until something (BGP) adds them. `fastpath`
        "dpdk" makes write_config() and attach() use `sluice run` with a
        [dpdk] section (net_af_packet on the LB veth, DPDK_WORKERS workers)
        instead of `sluice attach` with XDP."""
        if fastpath not in ("xdp", "dpdk"):
            raise LabError(f"fast path '{fastpath}': xdp or dpdk")
        self.fastpath = fastpath
        self.name = name or new_name()
        if not NAME_RE.match(self.name):
            raise LabError(f"lab name '{self.name}': 1-12 of a-z, 0-9, '-', starting with a letter")
        self.static_vip_routes = static_vip_routes
        self.topo = Topology.make(self.name, backends, clients, lbs)
        self.dir = LAB_ROOT / self.name
        self.sluice = sluice or find_sluice()
        self.procs: list[Proc] = []
        self.namespaces: list[str] = []
        self.pins: list[str] = []
        self.daemon: Proc | None = None
        self.config_path: Path | None = None

    # -- state ----------------------------------------------------------------

    def _state_file(self) -> Path:
        return self.dir / "state.json"

    def save(self) -> None:
        """Records everything there is to tear down; written before each new
        resource is made, so a crash leaves a state `down` can finish."""
        state = {
            "name": self.name, "backends": len(self.topo.backends),
            "clients": len(self.topo.clients), "sluice": self.sluice,
            "lbs": len(self.topo.lbs), "static_vip_routes": self.static_vip_routes,
            "namespaces": self.namespaces, "pins": self.pins,
            "procs": [p.__dict__ for p in self.procs],
            "daemon": self.daemon.pid if self.daemon else None,
            "config": str(self.config_path) if self.config_path else None,
            "fastpath": self.fastpath,
        }
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self._state_file())

    @classmethod
    def load(cls, name: str) -> "Lab":
        path = LAB_ROOT / name / "state.json"
        try:
            state = json.loads(path.read_text())
        except OSError as e:
            raise LabError(f"no lab named {name} ({path}: {e.strerror})") from None
        lab = cls(backends=state["backends"], clients=state["clients"], name=name,
                  sluice=state["sluice"], lbs=state.get("lbs", 1),
                  static_vip_routes=state.get("static_vip_routes", True),
                  fastpath=state.get("fastpath", "xdp"))
        lab.namespaces = state["namespaces"]
        lab.pins = state["pins"]
        lab.procs = [Proc(**p) for p in state["procs"]]
        lab.daemon = next((p for p in lab.procs if p.pid == state["daemon"]), None)
        lab.config_path = Path(state["config"]) if state["config"] else None
        return lab

    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # -- bring up -------------------------------------------------------------

    def up(self) -> None:
        """Creates the namespaces, links, addresses, routes, static
        neighbours and sysctls; attaches sluice's decapsulator on every
        backend. Starts no server and no load balancer."""
        from pyroute2 import NetNS, netns  # Debian's python3-pyroute2

        if self.dir.exists():
            raise LabError(f"a lab named {self.name} exists ({self.dir}); "
                           f"`scripts/lab down {self.name}` first")
        self.dir.mkdir(parents=True, mode=0o700)
        self.save()
        t = self.topo
        for ns in t.namespaces():
            if Path(f"/run/netns/{ns}").exists():
                raise LabError(f"namespace {ns} exists already")
            self.namespaces.append(ns)
            self.save()
            netns.create(ns)
        for ns in t.namespaces():
            self._sysctls(ns)

        router = NetNS(t.router_ns)
        try:
            self._link_up(router, "lo")
            for h in t.hosts():
                self._wire(router, h)
            for vip, host, plen, fam in ((VIP4, t.lb.addr4, 32, socket.AF_INET),
                                         (VIP6, t.lb.addr6, 128, socket.AF_INET6)):
                if self.static_vip_routes:
                    router.route("add", dst=f"{vip}/{plen}", gateway=host, family=fam)
        finally:
            router.close()

        # The LB sends what it encapsulates back out with XDP_TX. A veth
        # takes XDP frames from its peer only while an XDP program is
        # attached to it (on this kernel, 6.18, turning GRO on is not
        # enough): the router's end gets sluice's decapsulator serving a
        # VIP no packet carries (TEST-NET-1), which passes every packet on.
        for lb in t.lbs:
            run([self.sluice, "decap", "attach", lb.router_if, "--vip", PASS_ONLY_VIP],
                ns=t.router_ns)
        # Veths have no RSS. Receive packet steering on the router's
        # client-facing ends spreads the router's work over all CPUs by flow
        # hash, but it does not keep a flow on one CPU at the LB: the LB
        # veth's one NAPI instance takes frames queued from any CPU on
        # whichever CPU runs it, so a flow's packets meet XDP on several
        # CPUs (why sluice's established-flow table is shared by all CPUs).
        every_cpu = format((1 << os.cpu_count()) - 1, "x")
        for c in t.clients:
            # Packets leaving with a partial checksum (TX offload) reach the
            # backend unfinished through XDP forwarding and are dropped there.
            run(["ethtool", "-K", c.ifname, "tx", "off"], ns=c.ns)
            rps = f"/sys/class/net/{c.router_if}/queues/rx-0/rps_cpus"
            run(["sh", "-c", f"echo {every_cpu} > {rps}"],
                ns=t.router_ns)
        for b in t.backends:
            self._backend_vips(b)
            run([self.sluice, "decap", "attach", b.ifname, "--vip", VIP4, "--vip", VIP6],
                ns=b.ns)

    def _sysctls(self, ns: str) -> None:
        settings = [
            # Replies leave backends from the VIP, which the router routes
            # to the LB: strict reverse-path filtering would drop them.
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
            # Addresses are usable at once (no duplicate detection to wait for).
            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
        ]
        if ns == self.topo.router_ns:
            settings += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                         # ECMP over several LBs by the flow's 5-tuple (L4
                         # hash), so a connection keeps its LB.
                         "net.ipv4.fib_multipath_hash_policy=1",
                         "net.ipv6.fib_multipath_hash_policy=1"]
        if ns in (b.ns for b in self.topo.backends):
            # The VIP on lo must not be answered for by ARP on eth0.
            settings += ["net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                         "net.ipv4.conf.default.arp_ignore=1",
                         "net.ipv4.conf.default.arp_announce=2"]
        run(["sysctl", "-q", "-w", *settings], ns=ns)

    @staticmethod
    def _link_up(ipr, ifname: str) -> int:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, state="up")
        return idx

    def _wire(self, router, h: Host) -> None:
        """A veth from the router to host `h`, both ends addressed, routes
        and permanent neighbour entries on both sides (no ARP/ND to wait for
        or to fail under load)."""
        from pyroute2 import NetNS
        from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

        nud_permanent = 0x80
        router.link("add", ifname=h.router_if, kind="veth", address=h.router_mac,
                    peer={"ifname": h.ifname, "net_ns_fd": h.ns, "address": h.mac})
        ridx = self._link_up(router, h.router_if)
        router.addr("add", index=ridx, address=h.gw4, prefixlen=24)
        router.addr("add", index=ridx, address=h.gw6, prefixlen=64, flags=IFA_F_NODAD)
        router.neigh("add", dst=h.addr4, lladdr=h.mac, ifindex=ridx, state=nud_permanent)
        router.neigh("add", dst=h.addr6, lladdr=h.mac, ifindex=ridx, state=nud_permanent,
                     family=socket.AF_INET6)
        host = NetNS(h.ns)
        try:
            self._link_up(host, "lo")
            idx = self._link_up(host, h.ifname)
            host.addr("add", index=idx, address=h.addr4, prefixlen=24)
            host.addr("add", index=idx, address=h.addr6, prefixlen=64, flags=IFA_F_NODAD)
            host.neigh("add", dst=h.gw4, lladdr=h.router_mac, ifindex=idx, state=nud_permanent)
            host.neigh("add", dst=h.gw6, lladdr=h.router_mac, ifindex=idx, state=nud_permanent,
                       family=socket.AF_INET6)
            host.route("add", dst="0.0.0.0/0", gateway=h.gw4)
            host.route("add", dst="::/0", gateway=h.gw6, family=socket.AF_INET6)
        finally:
            host.close()

    def _backend_vips(self, b: Host) -> None:
        from pyroute2 import NetNS
        from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

        host = NetNS(b.ns)
        try:
            lo = host.link_lookup(ifname="lo")[0]
            host.addr("add", index=lo, address=VIP4, prefixlen=32)
            host.addr("add", index=lo, address=VIP6, prefixlen=128, flags=IFA_F_NODAD)
        finally:
            host.close()

    # -- processes ------------------------------------------------------------

    def spawn(self, what: str, ns: str, argv: list[str]) -> Proc:
        """Starts argv in namespace `ns` in a session of its own (so it
        outlives `scripts/lab up` and ignores the terminal's ^C), output to
        <lab>/<what>.log; recorded for down()."""
        log = self.dir / f"{what}.log"
        with open(log, "ab") as out:
            # nsenter, not `ip netns exec`: that one also mounts a sysfs of
            # its own, which hides the machine's bpffs at /sys/fs/bpf, so a
            # daemon would pin its maps in a private mount that vanishes
            # when it exits (and a restart could never re-use them).
            p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", *argv],
                                 stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        start = wait_for(f"{what} to start", lambda: _start_time(p.pid), timeout=5)
        proc = Proc(what=what, pid=p.pid, start=int(start), log=str(log))
        self.procs.append(proc)
        self.save()
        return proc

    def _wait_serving(self, proc: Proc, port: int, proto: str, timeout: float = 10) -> None:
        def ready() -> bool:
            if not proc.alive():
                raise LabError(f"{proc.what} exited while starting; its log {proc.log}:\n"
                               + Path(proc.log).read_text(errors="replace")[-2000:])
            return _listening(proc.pid, port, proto)
        wait_for(f"{proc.what} to listen on {proto} port {port}", ready, timeout=timeout)

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs = [p for p in self.procs if p is not proc]
        if self.daemon is proc:
            self.daemon = None
        self.save()

    def find(self, what: str) -> Proc | None:
        return next((p for p in self.procs if p.what == what), None)

    def start_nginx(self, b: Host) -> Proc:
        """nginx on backend `b`: port 80 on the VIPs and the backend's own
        addresses (health checks go there); every answer is the backend's
        role name and a newline, so clients can tell who served them."""
        tmp = self.dir / f"nginx-{b.role}"
        tmp.mkdir(exist_ok=True)
        conf = tmp / "nginx.conf"
        listens = "".join(f"    listen {a}:{HTTP_PORT} reuseport backlog=4096;\n"
                          for a in (VIP4, f"[{VIP6}]", b.addr4, f"[{b.addr6}]"))
        conf.write_text(f"""# sluice lab: nginx on {b.role}
daemon off;
master_process off;
worker_rlimit_nofile 65536;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{
{listens}    default_type text/plain;
    location / {{ return 200 "{b.role}\\n"; }}
  }}
}}
""")
        proc = self.spawn(f"nginx-{b.role}", b.ns, ["nginx", "-c", str(conf), "-e",
                                                    f"{tmp}/error.log"])
        self._wait_serving(proc, HTTP_PORT, "tcp")
        return proc

    def start_memcached(self, b: Host) -> Proc:
        """memcached on backend `b`, TCP and UDP port 11211, on the VIPs and
        its own addresses."""
        addrs = ",".join([VIP4, VIP6, b.addr4, b.addr6])
        proc = self.spawn(f"memcached-{b.role}", b.ns,
                          ["memcached", "-u", "root", "-l", addrs, "-p", str(MEMCACHED_PORT),
                           "-U", str(MEMCACHED_PORT), "-t", "1", "-m", "16", "-c", "4096"])
        self._wait_serving(proc, MEMCACHED_PORT, "udp")
        self._wait_serving(proc, MEMCACHED_PORT, "tcp")
        return proc

    def start_redis(self, b: Host) -> Proc:
        """redis-server on backend `b`, port 6379, VIPs and own addresses, no
        persistence."""
        tmp = self.dir / f"redis-{b.role}"
        tmp.mkdir(exist_ok=True)
        proc = self.spawn(f"redis-{b.role}", b.ns,
                          ["redis-server", "--bind", VIP4, VIP6, b.addr4, b.addr6,
                           "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
                           "--protected-mode", "no", "--daemonize", "no", "--dir", str(tmp),
                           "--maxclients", "4096"])
        self._wait_serving(proc, REDIS_PORT, "tcp")
        return proc

    def start_servers(self, kinds: list[str]) -> None:
        starters = {"nginx": self.start_nginx, "memcached": self.start_memcached,
                    "redis": self.start_redis}
        for kind in kinds:
            if kind not in starters:
                raise LabError(f"unknown server '{kind}' (nginx, memcached, redis)")
            for b in self.topo.backends:
                starters[kind](b)

    # -- sluice ---------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        return self.dir / "sluice.sock"

    def pin_folder(self) -> str:
        """Where sluice pins its maps: a folder of the lab's own when `sluice
        attach` takes --pin-root, else its default for the LB interface
        (unique too: the interface carries the lab's name)."""
        if self._takes_pin_root():
            return str(BPFFS_ROOT / f"sluice-lab-{self.name}")
        return str(BPFFS_ROOT / "sluice" / self.topo.lb.ifname)

    def _takes_pin_root(self) -> bool:
        r = subprocess.run([self.sluice, "attach", "--help"], capture_output=True, text=True)
        return "--pin-root" in r.stdout

    def write_config(self, vips: list[dict], health: dict | None = None,
                     mode: str = "native", cache: dict | None = None) -> Path:
        """Writes a sluice config for this lab: the LB interface, the encap
        sources, the control socket in the lab folder, metrics off, and the
        VIPs given as dicts of [[vips]] keys whose 'backends' lists dicts of
        [[vips.backends]] keys. `health` maps check names to dicts of keys;
        `cache` is the [cache] table's keys."""
        lb = self.topo.lb
        lines = [
            "# sluice lab config (written by tests/netns/sluicelab.py)",
            "[control]", f'socket = "{self.socket_path}"',
            "[metrics]", 'listen = ""',
        ]
        if self.fastpath == "dpdk":
            # The workers share the machine's last CPU (busy-polling: one
            # CPU is left to everything else); worker 0 reads the veth and
            # hands the other workers their flows (software distribution).
            cpu = max(os.cpu_count() or 1, 1) - 1
            lcores = list(range(1, DPDK_WORKERS + 1))
            lines += [
                "[dpdk]", f'ports = ["net_af_packet0,iface={lb.ifname}"]',
                "main_lcore = 0", f"lcores = {_toml(lcores)}",
                f"worker_cpus = {_toml([cpu] * DPDK_WORKERS)}",
                "mbufs = 8191", "mbuf_cache = 128", "memory_mb = 256",
                f'file_prefix = "{self.dpdk_prefix}"',
                'eal_args = ["--log-level=lib.eal:error"]',
                f'gateway_mac = "{lb.router_mac}"',
            ]
        else:
            lines += ["[xdp]", f'interfaces = ["{lb.ifname}"]', f'mode = "{mode}"']
        lines += [f'encap_source_v4 = "{lb.addr4}"', f'encap_source_v6 = "{lb.addr6}"']
        if cache:
            lines.append("[cache]")
            lines += [f"{k} = {_toml(v)}" for k, v in cache.items()]
        for hname, keys in (health or {}).items():
            lines.append(f"[health_checks.{hname}]")
            lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
        for vip in vips:
            lines.append("[[vips]]")
            lines += [f"{k} = {_toml(v)}" for k, v in vip.items() if k != "backends"]
            for be in vip.get("backends", []):
                lines.append("[[vips.backends]]")
                lines += [f"{k} = {_toml(v)}" for k, v in be.items()]
        path = self.dir / "sluice.toml"
        path.write_text("\n".join(lines) + "\n")
        self.config_path = path
        self.save()
        return path

    @property
    def dpdk_prefix(self) -> str:
        """EAL's file prefix for this lab's DPDK daemon."""
        return f"sluice-{self.name}"

    def attach(self, config: Path | None = None, mode: str = "native",
               timeout: float = 20) -> Proc:
        """Runs `sluice attach` on the LB interface (the daemon, in the
        foreground, recorded like a server), or `sluice run` for the DPDK
        fast path, and waits until its control socket answers `status`."""
        config = config or self.config_path
        if config is None:
            raise LabError("no sluice config: write_config() first")
        pidfile = self.dir / "sluice.pid"
        pidfile.unlink(missing_ok=True)
        if self.fastpath == "dpdk":
            argv = [self.sluice, "run", "--config", str(config), "--pidfile", str(pidfile)]
        else:
            if self.pin_folder() not in self.pins:
                self.pins.append(self.pin_folder())
            argv = [self.sluice, "attach", self.topo.lb.ifname, "--config", str(config),
                    "--xdp-mode", mode, "--pidfile", str(pidfile)]
            if self._takes_pin_root():
                argv += ["--pin-root", self.pin_folder()]
        proc = self.spawn("sluice", self.topo.lb.ns, argv)
        self.daemon = proc
        self.save()
        has_ctl = sluice_has(self.sluice, "ctl")

        # Ready: the pid file is written once the program is attached and
        # the config published; with `sluice ctl` in the build, the control
        # socket answers too.
        def ready() -> bool:
            if not proc.alive():
                raise LabError(f"sluice {argv[1]} exited while starting; its log:\n"
                               + Path(proc.log).read_text(errors="replace")[-4000:])
            if not pidfile.exists():
                return False
            return not has_ctl or self.ctl("status", check=False).returncode == 0
        wait_for(f"sluice {argv[1]} to be ready", ready, timeout=timeout, interval=0.05)
        return proc

    def reload(self, timeout: float = 10) -> None:
        """Makes the daemon re-read its config: `sluice ctl reload` when the
        build has ctl (it answers once applied), else SIGHUP and waiting for
        the daemon's log to report the reload. Raises LabError when the
        reload was refused."""
        if self.daemon is None:
            raise LabError("sluice is not attached")
        if sluice_has(self.sluice, "ctl"):
            self.ctl("reload")
            return
        log = Path(self.daemon.log)
        start = log.stat().st_size
        os.kill(self.daemon.pid, signal.SIGHUP)

        def reported() -> str:
            with open(log, errors="replace") as f:
                f.seek(start)
                text = f.read()
            return text if re.search(r"\breload(: | of )", text) else ""
        text = wait_for("the daemon to report the reload", reported, timeout=timeout)
        if "failed" in text:
            raise LabError(f"reload refused:\n{text}")

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`sluice ctl --socket <lab socket> ARGS` (from the root namespace: a
        Unix socket is reached by path, whatever the namespace)."""
        return run([self.sluice, "ctl", "--socket", str(self.socket_path), *args], check=check,
                   timeout=30)

    def ctl_json(self, *args: str) -> dict:
        return json.loads(self.ctl("--json", *args).stdout)

    # -- tear down ------------------------------------------------------------

    def down(self) -> list[str]:
        """Removes everything the lab made, in reverse: processes (daemon
        last to go is fine: namespaces go after all processes), pinned maps,
        namespaces (their veths and XDP programs go with them), the lab
        folder. Best effort to the end; returns what could not be removed."""
        problems: list[str] = []
        for p in reversed(self.procs):
            try:
                p.stop()
            except OSError as e:
                problems.append(f"{p.what} (pid {p.pid}): {e}")
            if p.alive():
                problems.append(f"{p.what} (pid {p.pid}) still running")
        self.procs = []
        self.daemon = None
        for pin in self.pins:
            if not pin.startswith(str(BPFFS_ROOT) + "/"):
                continue
            path = Path(pin)
            with contextlib.suppress(FileNotFoundError):
                for f in path.iterdir():
                    f.unlink()
                path.rmdir()
            if path.exists():
                problems.append(f"pin folder {pin} remains")
        for ns in reversed(self.namespaces):
            if Path(f"/run/netns/{ns}").exists():
                r = run(["ip", "netns", "delete", ns], check=False)
                if r.returncode != 0:
                    problems.append(f"namespace {ns}: {r.stderr.strip()}")
        self.namespaces = []
        # EAL's runtime folder, left behind by a DPDK daemon that did not
        # stop cleanly.
        if self.fastpath == "dpdk":
            shutil.rmtree(Path("/var/run/dpdk") / self.dpdk_prefix, ignore_errors=True)
        if self.dir.exists() and not problems:
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    # -- describing it --------------------------------------------------------

    def gone(self) -> list[str]:
        """What the lab recorded that is no longer there: processes (by PID
        and start time, so a PID the kernel gave to another process since
        does not pass for ours) and namespaces. Empty for a whole lab."""
        missing = [f"{p.what} (pid {p.pid}) is not running" for p in self.procs if not p.alive()]
        missing += [f"namespace {ns} is gone" for ns in self.namespaces
                    if not Path(f"/run/netns/{ns}").exists()]
        return missing

    def describe(self) -> str:
        t = self.topo
        missing = self.gone()
        rows = [f"lab {self.name}  {'stale' if missing else 'running'}  (state in {self.dir})"]
        for m in missing:
            rows.append(f"  stale          {m}")
        if missing:
            rows.append(f"  stale          `scripts/lab down {self.name}` removes what is left")
        rows += [f"  VIPs           {VIP4}  {VIP6}  (routed by the router to the LB)",
                 f"  router         {t.router_ns}"]
        for h in t.hosts():
            rows.append(f"  {h.role:<14} {h.ns:<22} {h.ifname:<15} {h.addr4:<12} {h.addr6}")
        servers = ", ".join(p.what + ("" if p.alive() else " (not running)")
                            for p in self.procs if p is not self.daemon) or "none"
        rows.append(f"  servers        {servers}")
        if self.daemon is None:
            sluice = "not attached"
        elif self.daemon.alive():
            sluice = f"running (pid {self.daemon.pid}), ctl socket {self.socket_path}"
        else:
            sluice = f"not running (pid {self.daemon.pid} exited)"
        rows.append("  sluice         " + sluice)
        return "\n".join(rows)


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(str(v))


def find_sluice() -> str:
    """The sluice binary: $SLUICE_BIN, else the repository's build/, else
    PATH."""
    env = os.environ.get("SLUICE_BIN")
    if env:
        return env
    built = REPO / "build" / "control" / "sluice"
    if built.exists():
        return str(built)
    found = shutil.which("sluice")
    if found:
        return found
    raise LabError("no sluice binary: build it (meson setup build && ninja -C build) or set "
                   "SLUICE_BIN")


def sluice_has(sluice: str, *subcommand: str) -> bool:
    """Whether this sluice binary has the (nested) subcommand: its parent's
    --help lists it under "Subcommands:"."""
    *parents, name = subcommand
    r = subprocess.run([sluice, *parents, "--help"], capture_output=True, text=True)
    listing = r.stdout.split("Subcommands:", 1)
    return r.returncode == 0 and len(listing) == 2 and \
        re.search(rf"^\s+{re.escape(name)}\s", listing[1], re.M) is not None


def missing_requirements(tools: list[str]) -> list[str]:
    """What this machine lacks to run a lab: root, the tools named, the
    Python modules."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, XDP)")
    for tool in tools:
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            missing.append(tool)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        missing.append("python3-pyroute2")
    return missing


# --- command line ------------------------------------------------------------


def default_config(lab: Lab, servers: list[str], cache: bool = False) -> Path:
    """The config `scripts/lab up --attach` runs: one VIP per server kind and
    family, every backend at weight 100 with a fast health check. With
    `cache`, the IPv4 memcached VIP has the hot-object cache and key-affinity
    routing, and a TCP twin whose writes invalidate its keys."""
    checks = {"web": {"type": "http", "interval_ms": 500, "timeout_ms": 250, "rise": 2, "fall": 2},
              "cache": {"type": "memcached", "interval_ms": 500, "timeout_ms": 250},
              "redis": {"type": "redis", "interval_ms": 500, "timeout_ms": 250}}
    kinds = {"nginx": ("http", HTTP_PORT, "tcp", "web"),
             "memcached": ("memcached", MEMCACHED_PORT, "udp", "cache"),
             "redis": ("redis", REDIS_PORT, "tcp", "redis")}
    vips = []
    for kind in servers:
        label, port, proto, check = kinds[kind]
        for fam, vip in (("v4", VIP4), ("v6", VIP6)):
            vips.append({"name": f"{label}-{fam}", "address": vip, "port": port,
                         "protocol": proto,
                         "backends": [{"address": b.addr4 if fam == "v4" else b.addr6,
                                       "weight": 100, "health_check": check}
                                      for b in lab.topo.backends]})
            if cache and kind == "memcached" and fam == "v4":
                vips[-1] |= {"hash": "key", "cache": True}
                vips.append(dict(vips[-1], name=f"{label}-tcp-{fam}", protocol="tcp",
                                 hash="5-tuple", cache=False))
    return lab.write_config(vips, health={kinds[k][3]: checks[kinds[k][3]] for k in servers})


def _install_signal_teardown() -> None:
    # SIGTERM and SIGHUP unwind like ^C, so `with Lab()` tears down.
    def bail(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, bail)


def cmd_up(args) -> int:
    server_tools = {"nginx": "nginx", "memcached": "memcached", "redis": "redis-server"}
    missing = missing_requirements(["ip", "ethtool", "sysctl",
                                    *(server_tools.get(s, s) for s in args.servers)])
    if missing:
        print(f"lab: cannot run here, missing: {', '.join(missing)} "
              f"(scripts/setup-deps installs the packages)", file=sys.stderr)
        return 1
    lab = Lab(backends=args.backends, clients=args.clients, name=args.name)
    _install_signal_teardown()
    try:
        lab.up()
        lab.start_servers(args.servers)
        if args.attach:
            if not sluice_has(lab.sluice, "attach"):
                raise LabError(f"{lab.sluice} has no `attach` subcommand yet (the daemon)")
            lab.attach(args.config or default_config(lab, args.servers), mode=args.xdp_mode)
    except BaseException as e:
        problems = lab.down()
        print(f"lab: bringing {lab.name} up failed, torn down: {e}", file=sys.stderr)
        for p in problems:
            print(f"lab: left behind: {p}", file=sys.stderr)
        return 1
    print(lab.describe())
    c = lab.topo.clients[0]
    print(f"\ntry:   ip netns exec {c.ns} curl http://{VIP4}/   (straight to a backend: "
          f"http://{lab.topo.backends[0].addr4}/)")
    print(f"       scripts/lab exec {lab.name} {c.role} -- curl -g 'http://[{VIP6}]/'")
    if lab.daemon and sluice_has(lab.sluice, "ctl"):
        print(f"       {lab.sluice} ctl --socket {lab.socket_path} stats")
    print(f"down:  scripts/lab down {lab.name}")
    return 0


def cmd_down(args) -> int:
    names = args.names
    if args.all:
        names = sorted(p.name for p in LAB_ROOT.iterdir()) if LAB_ROOT.exists() else []
    if not names:
        print("lab: name a lab (or --all)", file=sys.stderr)
        return 2
    rc = 0
    for name in names:
        try:
            lab = Lab.load(name)
        except LabError as e:
            print(f"lab: {e}", file=sys.stderr)
            rc = 1
            continue
        problems = lab.down()
        for p in problems:
            print(f"lab: {name}: left behind: {p}", file=sys.stderr)
            rc = 1
        if not problems:
            print(f"lab {name}: torn down")
    return rc


def cmd_list(_args) -> int:
    if not LAB_ROOT.exists():
        return 0
    for d in sorted(LAB_ROOT.iterdir()):
        try:
            print(Lab.load(d.name).describe())
        except (LabError, KeyError, ValueError) as e:
            print(f"{d.name}: unreadable state ({e})")
    return 0


def cmd_exec(args) -> int:
    lab = Lab.load(args.name)
    roles = {h.role: h.ns for h in lab.topo.hosts()} | {"router": lab.topo.router_ns}
    if args.role not in roles:
        print(f"lab: no role {args.role} in {args.name} ({', '.join(roles)})", file=sys.stderr)
        return 2
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    os.execvp("ip", ["ip", "netns", "exec", roles[args.role], *(argv or ["bash"])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/lab",
        description="A network-namespace lab for sluice: clients, a router, the load balancer "
                    "(one-armed) and backends running real servers behind a VIP "
                    f"({VIP4}, {VIP6}), replies straight to the client (DSR).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build a lab and leave it running")
    up.add_argument("--backends", type=int, default=3, help="backend namespaces (default 3)")
    up.add_argument("--clients", type=int, default=1, help="client namespaces (default 1)")
    up.add_argument("--name", help="lab name, 1-12 of [a-z0-9-] (default sl-<random>)")
    up.add_argument("--servers", default="nginx",
                    type=lambda s: [x for x in s.split(",") if x],
                    help="servers on every backend: comma-separated nginx, memcached, redis, or "
                         "'' for none (default nginx)")
    up.add_argument("--attach", action="store_true",
                    help="run sluice attach on the LB with a config for the servers")
    up.add_argument("--config", type=Path, help="with --attach: this config instead")
    up.add_argument("--xdp-mode", default="native", choices=["native", "generic"])
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="tear labs down completely")
    down.add_argument("names", nargs="*")
    down.add_argument("--all", action="store_true", help="every lab on this machine")
    down.set_defaults(func=cmd_down)
    ls = sub.add_parser("list", help="the labs on this machine")
    ls.set_defaults(func=cmd_list)
    ex = sub.add_parser("exec", help="run a command in a lab namespace (default: a shell)")
    ex.add_argument("name")
    ex.add_argument("role", help="client1, router, lb, backend1, ...")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
