# SPDX-License-Identifier: BSD-2-Clause
"""Clients for the lab: curl on fresh connections, wrk, long-lived HTTP
keep-alive connections, memcached over UDP, and reading their results. The
real tools (curl, wrk, redis-benchmark) run in a client namespace; the
small protocol clients here use sockets made in that namespace."""

from __future__ import annotations

import collections
import re
import socket
import struct
import subprocess
from dataclasses import dataclass

import sluicelab
from sluicelab import run


def url(vip: str, port: int = sluicelab.HTTP_PORT, path: str = "/") -> str:
    host = f"[{vip}]" if ":" in vip else vip
    return f"http://{host}:{port}{path}"


@dataclass
class CurlRun:
    """What N curl requests got: who served each, and the failures."""
    served: collections.Counter
    failures: list[str]
    requests: int

    def shares(self) -> dict[str, float]:
        """Percent of all requests per backend role."""
        return {k: 100.0 * v / self.requests for k, v in self.served.items()}


def curl_fresh(ns: str, target: str, count: int, timeout: float = 120) -> CurlRun:
    """`count` GETs of `target` by one curl process, each on a new TCP
    connection (Connection: close, URL globbing), each answered by a
    backend naming itself. A request that fails shows as a failure with
    curl's HTTP code (000: no answer)."""
    r = run(["curl", "-sS", "--max-time", "5", "-H", "Connection: close",
             "-w", "\\n== %{http_code} %{num_connects}\\n", f"{target}?[1-{count}]"],
            ns=ns, check=False, timeout=timeout)
    served: collections.Counter = collections.Counter()
    failures = []
    body: list[str] = []
    for line in r.stdout.splitlines():
        m = re.match(r"^== (\d{3}) (\d+)$", line)
        if not m:
            if line:
                body.append(line)
            continue
        code, connects = m.group(1), int(m.group(2))
        text = "".join(body)
        body = []
        if code == "200" and connects == 1 and text.startswith("backend"):
            served[text] += 1
        else:
            failures.append(f"http {code}, {connects} new connections, body {text!r}")
    missing = count - sum(served.values()) - len(failures)
    if missing > 0:
        failures.append(f"{missing} requests without an answer; curl: {r.stderr.strip()[-500:]}")
    return CurlRun(served=served, failures=failures, requests=count)


@dataclass
class WrkRun:
    requests: int
    requests_per_s: float
    socket_errors: dict[str, int]
    non_2xx: int
    output: str


def parse_wrk(out: str) -> WrkRun:
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m or not rps:
        raise sluicelab.LabError(f"unreadable wrk output:\n{out}")
    names = ["connect", "read", "write", "timeout"]
    return WrkRun(requests=int(m.group(1)), requests_per_s=float(rps.group(1)),
                  socket_errors=dict(zip(names, map(int, errs.groups()))) if errs else
                  dict.fromkeys(names, 0),
                  non_2xx=int(non2xx.group(1)) if non2xx else 0, output=out)


def wrk_args(target: str, seconds: int, connections: int, threads: int = 2,
             cpu: int | None = None) -> list[str]:
    """wrk's command line; `cpu` pins it to one CPU (see WrkInBackground)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return [*pin, "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "5s", target]


def wrk(ns: str, target: str, seconds: int = 10, connections: int = 50) -> WrkRun:
    r = run(wrk_args(target, seconds, connections), ns=ns, timeout=seconds + 30)
    return parse_wrk(r.stdout)


class WrkInBackground:
    """wrk running while the test does something else; result() waits.
    `cpu` pins wrk to one CPU."""

    def __init__(self, ns: str, target: str, seconds: int, connections: int = 50,
                 cpu: int | None = None):
        self.seconds = seconds
        self.target = target
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *wrk_args(target, seconds, connections, cpu=cpu)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_connected(self, count: int, port: int = sluicelab.HTTP_PORT,
                       timeout: float = 10) -> None:
        """Waits until wrk has `count` established connections to `port`
        (wrk gives up at once if an initial connect fails, so a test breaks
        things only after this)."""
        def established() -> bool:
            n = 0
            for table in ("tcp", "tcp6"):
                try:
                    lines = open(f"/proc/{self.proc.pid}/net/{table}").read().splitlines()[1:]
                except OSError:
                    return False
                n += sum(1 for line in lines
                         if line.split()[3] == "01" and
                         int(line.split()[2].rsplit(":", 1)[1], 16) == port)
            return n >= count
        sluicelab.wait_for(f"wrk to open {count} connections", established, timeout=timeout)

    def result(self) -> WrkRun:
        out, _ = self.proc.communicate(timeout=self.seconds + 30)
        return parse_wrk(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class KeepAlive:
    """One HTTP/1.1 keep-alive connection from a client namespace to a VIP:
    which backend it landed on, and requests on it that either succeed or
    are counted as errors (never raised)."""

    def __init__(self, ns: str, vip: str, port: int = sluicelab.HTTP_PORT, timeout: float = 3):
        fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
        self.sock = sluicelab.socket_in(ns, fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((vip, port))
        self.buf = b""
        self.ok = 0
        self.errors: list[str] = []
        self.backend = self.get()

    def get(self) -> str | None:
        """One GET; the body (the backend's name) or None on an error."""
        try:
            self.sock.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
            while b"\r\n\r\n" not in self.buf:
                self._recv()
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            status = head.split(b"\r\n", 1)[0]
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            while len(self.buf) < length:
                self._recv()
            body, self.buf = self.buf[:length], self.buf[length:]
            if b" 200 " not in status + b" ":
                raise OSError(f"status {status!r}")
        except (OSError, AttributeError) as e:
            self.errors.append(str(e) or type(e).__name__)
            return None
        self.ok += 1
        return body.decode().strip()

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise OSError("connection closed")
        self.buf += data

    def close(self) -> None:
        self.sock.close()


def open_keepalives(ns: str, vip: str, count: int) -> list[KeepAlive]:
    return [KeepAlive(ns, vip) for _ in range(count)]


def memcached_udp(ns: str, vip: str, ops: list[bytes], timeout: float = 3) -> list[bytes]:
    """Sends each memcached text command over UDP from one socket (one flow,
    so one backend) and returns each answer's payload (frame header off)."""
    fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
    answers = []
    with sluicelab.socket_in(ns, fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((vip, sluicelab.MEMCACHED_PORT))
        for rid, op in enumerate(ops, start=1):
            # The UDP frame header: request id, sequence 0 of 1 datagram.
            s.send(struct.pack("!HHHH", rid, 0, 1, 0) + op)
            while True:
                data = s.recv(65536)
                if struct.unpack("!H", data[:2])[0] == rid:
                    break
            answers.append(data[8:])
    return answers
