# SPDX-License-Identifier: BSD-2-Clause
# The lab itself, without the load balancer: every backend answers on its
# own address; a packet encapsulated by hand (as sluice_lb would) from the
# LB's namespace is decapsulated on the backend by `sluice decap`, served
# from the VIP and answered straight to the client (DSR); and a torn-down
# lab leaves nothing behind.
import json
import socket
import struct
from pathlib import Path

import pytest

import sluicelab
from sluicelab import VIP4, VIP6, run


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory(backends=3, servers=["nginx", "memcached"])


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_client_reaches_every_backend_directly(lab, family):
    client = lab.topo.clients[0]
    for b in lab.topo.backends:
        host = b.addr4 if family == "v4" else f"[{b.addr6}]"
        r = run(["curl", "-sS", "-g", "--max-time", "5", f"http://{host}/"], ns=client.ns)
        assert r.stdout == f"{b.role}\n"


def test_vip_is_routed_to_the_lb(lab):
    r = run(["ip", "-j", "route", "get", VIP4], ns=lab.topo.router_ns)
    assert json.loads(r.stdout)[0]["gateway"] == lab.topo.lb.addr4
    r = run(["ip", "-j", "-6", "route", "get", VIP6], ns=lab.topo.router_ns)
    assert json.loads(r.stdout)[0]["gateway"] == sluicelab.canonical(lab.topo.lb.addr6)


def test_backends_do_not_answer_arp_for_the_vip(lab):
    for b in lab.topo.backends:
        r = run(["sysctl", "-n", "net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
                 "net.ipv4.conf.all.rp_filter"], ns=b.ns)
        assert r.stdout.split() == ["1", "2", "0"]


def _csum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _udp_packet(family: str, src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """An IPv4 or IPv6 packet carrying a UDP datagram, checksums filled."""
    ulen = 8 + len(payload)
    if family == "v4":
        s, d = socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst)
        pseudo = s + d + struct.pack("!BBH", 0, socket.IPPROTO_UDP, ulen)
    else:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        pseudo = s + d + struct.pack("!IxxxB", ulen, socket.IPPROTO_UDP)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    udp = udp[:6] + struct.pack("!H", _csum(pseudo + udp) or 0xFFFF) + udp[8:]
    if family == "v4":
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 1, 0, 64, socket.IPPROTO_UDP, 0, s, d)
        return ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:] + udp
    return struct.pack("!IHBB16s16s", 6 << 28, ulen, socket.IPPROTO_UDP, 64, s, d) + udp


def _decap_count(lab, b) -> int:
    r = run([lab.sluice, "decap", "status", b.ifname, "--json"], ns=b.ns)
    return json.loads(r.stdout)["decap_packets"]


# inner family, outer family: every combination sluice_lb emits.
@pytest.mark.parametrize("inner,outer", [("v4", "v4"), ("v6", "v6"), ("v4", "v6"), ("v6", "v4")])
def test_hand_encapsulated_request_is_decapsulated_and_answered_directly(lab, inner, outer):
    """A memcached `version` request over UDP from the client to the VIP,
    wrapped in an outer header from the LB to backend 2 and sent from the
    LB's namespace: the answer comes from the VIP to the client."""
    client, b = lab.topo.clients[0], lab.topo.backends[1]
    fam = socket.AF_INET if inner == "v4" else socket.AF_INET6
    caddr, vip = (client.addr4, VIP4) if inner == "v4" else (client.addr6, VIP6)
    rx = sluicelab.socket_in(client.ns, fam, socket.SOCK_DGRAM)
    with rx:
        rx.bind((caddr, 0))
        rx.settimeout(5)
        sport = rx.getsockname()[1]
        # memcached's UDP frame header: request id, sequence, datagrams, 0.
        request = struct.pack("!HHHH", 0x5EED, 0, 1, 0) + b"version\r\n"
        packet = _udp_packet(inner, caddr, sport, vip, sluicelab.MEMCACHED_PORT, request)
        # The kernel puts the outer header in front: protocol 4 (IPv4
        # inside) or 41 (IPv6 inside), from the LB to the backend.
        proto = socket.IPPROTO_IPIP if inner == "v4" else socket.IPPROTO_IPV6
        ofam, oaddr = (socket.AF_INET, b.addr4) if outer == "v4" else (socket.AF_INET6, b.addr6)
        before = _decap_count(lab, b)
        with sluicelab.socket_in(lab.topo.lb.ns, ofam, socket.SOCK_RAW, proto) as tx:
            tx.sendto(packet, (oaddr, 0))
        data, frm = rx.recvfrom(2048)
    assert sluicelab.canonical(frm[0]) == sluicelab.canonical(vip)
    assert frm[1] == sluicelab.MEMCACHED_PORT
    assert data[:2] == b"\x5e\xed"
    assert data[8:].startswith(b"VERSION ")
    assert _decap_count(lab, b) == before + 1


def test_teardown_leaves_nothing():
    from conftest import require_lab
    sluice = require_lab()
    lab = sluicelab.Lab(backends=1, sluice=sluice)
    try:
        lab.up()
        lab.start_servers(["nginx"])
        pids = [p.pid for p in lab.procs]
        namespaces = list(lab.namespaces)
        # What `scripts/lab down NAME` does: another process reads the state.
        other = sluicelab.Lab.load(lab.name)
        assert other.down() == []
    finally:
        lab.down()
    assert not lab.dir.exists()
    for ns in namespaces:
        assert not Path(f"/run/netns/{ns}").exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"


def test_decap_cli_attaches_replaces_and_detaches_only_its_own(lab):
    """`sluice decap` on a veth of a namespace of its own: attach, attach
    again with another VIP set (replaced, not stacked), refuse the other
    mode, status, detach, and errors with exit status 1."""
    ns = f"{lab.name}-decap"
    lab.namespaces.append(ns)
    lab.save()
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"], ns=ns)
    run(["ip", "link", "set", "va", "up"], ns=ns)
    s = lab.sluice
    first = run([s, "decap", "attach", "va", "--vip", VIP4], ns=ns).stdout
    assert "native mode" in first and VIP4 in first
    run([s, "decap", "attach", "va", "--vip", VIP6, "--vip", VIP4], ns=ns)
    st = json.loads(run([s, "decap", "status", "va", "--json"], ns=ns).stdout)
    assert st["vips"] == [VIP4, VIP6] and st["mode"] == "native"
    other = run([s, "decap", "attach", "va", "--vip", VIP4, "--xdp-mode", "generic"], ns=ns,
                check=False)
    assert other.returncode == 1 and "detach it before" in other.stderr
    run([s, "decap", "detach", "va"], ns=ns)
    gone = run([s, "decap", "status", "va"], ns=ns, check=False)
    assert gone.returncode == 1 and "no XDP program" in gone.stderr
    assert run([s, "decap", "attach", "va"], ns=ns, check=False).returncode == 2
    loopback = run([s, "decap", "attach", "va", "--vip", "127.0.0.1"], ns=ns, check=False)
    assert loopback.returncode == 2 and "loopback" in loopback.stderr
    assert run([s, "decap", "attach", "nosuch0", "--vip", VIP4], ns=ns,
               check=False).returncode == 1
