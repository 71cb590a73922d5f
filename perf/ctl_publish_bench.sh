#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Time from `sluice ctl set-weight` to the published table, through the real
# daemon: `sluice attach` on a veth in a network namespace of its own (XDP,
# pinned maps in a private folder), one VIP with 3 backends (M = 65,537),
# then RUNS `sluice ctl set-weight` calls alternating the first backend's
# weight 50 / 100. The daemon answers only once Loader::publish returned
# (new table written, swapped in, running programs waited for), so the
# command's wall time, process start included, bounds the time from the
# operator's command to the table in the fast path. `sluice ctl status`
# (no publication) is timed the same way to show the command's own cost.
# Usage (root): perf/ctl_publish_bench.sh [BUILD_DIR] [RUNS]
set -euo pipefail

build=${1:-build}
runs=${2:-30}
sluice=$(realpath "$build/control/sluice")
if [[ ${EUID} -ne 0 ]]; then
  echo "ctl_publish_bench: needs root (namespaces, XDP)" >&2
  exit 77
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

ns=slctl-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
dir=$(mktemp -d)
pin=/sys/fs/bpf/$ns
pid=

cleanup() {
  if [[ -n ${pid} ]]; then
    kill "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  fi
  nsenter --net="/run/netns/${ns}" -- "${sluice}" detach lb0 --pin-root "${pin}" \
    >/dev/null 2>&1 || true
  ip netns del "${ns}" 2>/dev/null || true
  rm -rf "${dir}" "${pin}"
}
trap cleanup EXIT

ip netns add "${ns}"
ip -n "${ns}" link set lo up
ip -n "${ns}" link add lb0 type veth peer name peer0
ip -n "${ns}" link set lb0 up
ip -n "${ns}" link set peer0 up

cat >"${dir}/sluice.toml" <<EOT
[control]
socket = "${dir}/ctl.sock"
[metrics]
listen = ""
[xdp]
interfaces = ["lb0"]
encap_source_v4 = "192.0.2.10"
gateway_mac = "02:00:00:00:00:01"
[[vips]]
name = "web"
address = "198.51.100.1"
port = 80
table_size = 65537
[[vips.backends]]
address = "10.0.0.1"
[[vips.backends]]
address = "10.0.0.2"
[[vips.backends]]
address = "10.0.0.3"
EOT

nsenter --net="/run/netns/${ns}" -- "${sluice}" attach lb0 --config "${dir}/sluice.toml" \
  --pin-root "${pin}" >"${dir}/daemon.log" 2>&1 &
pid=$!
ctl=("${sluice}" ctl --socket "${dir}/ctl.sock")
for _ in $(seq 100); do
  "${ctl[@]}" status >/dev/null 2>&1 && break
  sleep 0.1
done
"${ctl[@]}" status >/dev/null || { cat "${dir}/daemon.log" >&2; exit 1; }

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

: >"${dir}/set"
: >"${dir}/status"
moved=()
for i in $(seq "${runs}"); do
  weight=$(( i % 2 ? 50 : 100 ))
  t0=$(now_ns)
  out=$("${ctl[@]}" --json set-weight web 10.0.0.1 "${weight}")
  t1=$(now_ns)
  echo $(( (t1 - t0) / 1000 )) >>"${dir}/set"
  moved+=("$(sed -n 's/.*"entries_moved": *\([0-9]*\).*/\1/p' <<<"${out}")")
  t0=$(now_ns)
  "${ctl[@]}" status >/dev/null
  t1=$(now_ns)
  echo $(( (t1 - t0) / 1000 )) >>"${dir}/status"
done

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: ${runs}; VIP web, 3 backends, M = 65537; weight of 10.0.0.1 50 <-> 100"
echo "sluice ctl set-weight (to published table): median $(median <"${dir}/set") us," \
  "min $(sort -n "${dir}/set" | head -1) us, max $(sort -n "${dir}/set" | tail -1) us"
echo "sluice ctl status (no publication):          median $(median <"${dir}/status") us," \
  "min $(sort -n "${dir}/status" | head -1) us, max $(sort -n "${dir}/status" | tail -1) us"
echo "entries moved per change: $(printf '%s\n' "${moved[@]}" | sort -n | uniq -c | awk '{printf "%s x %s  ", $2, $1}')"
grep -c "published generation" "${dir}/daemon.log" | sed 's/^/daemon log: publications: /'
