#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# One run, one lcore: sluice's DPDK worker (build/perf/bench_dpdk) and
# dpdk-testpmd in io and macswap mode on net_null ports, forwarding on the
# same lcore, so the figures compare as ratios. Needs root (EAL without
# hugepages). Usage: perf/dpdk_bench.sh [BUILD_DIR] [LCORE]
set -euo pipefail
build=${1:-build}
lcore=${2:-1}
seconds=${SLUICE_TESTPMD_SECONDS:-8}
reps=${SLUICE_BENCH_REPETITIONS:-5}

echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), load: $(cut -d' ' -f1-3 /proc/loadavg)"

# testpmd MODE: total Rx-pps over both ports, median of the stats periods
# after the first two (start-up).
testpmd() {
  local mode=$1 prefix=sluice-testpmd-$$-$1 out
  out=$(mktemp)
  timeout -s INT "${seconds}" dpdk-testpmd --no-pci --no-huge -m 512 --file-prefix "${prefix}" \
    -l "0,${lcore}" --main-lcore 0 --vdev net_null0 --vdev net_null1 --log-level=lib.eal:error -- \
    --forward-mode="${mode}" --nb-cores=1 --stats-period=1 --total-num-mbufs=8192 \
    >"${out}" 2>&1 || true
  rm -rf "/var/run/dpdk/${prefix}"
  python3 - "${out}" "${mode}" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
pps = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", text)]
# Two ports per stats period.
periods = [pps[i] + pps[i + 1] for i in range(0, len(pps) - 1, 2)][2:]
if not periods:
    print(f"testpmd {sys.argv[2]}: no figures (see {sys.argv[1]})")
    sys.exit(0)
print(f"testpmd {sys.argv[2]:8s} {statistics.median(periods) / 1e6:8.2f} Mpps (wall, median of {len(periods)} s)")
PY
  rm -f "${out}"
}

testpmd io
testpmd macswap
SLUICE_BENCH_LCORE=${lcore} "${build}/perf/bench_dpdk" --benchmark_repetitions="${reps}" \
  --benchmark_report_aggregates_only=true --benchmark_min_time=0.5 2>/dev/null | grep -E "_median|Benchmark"
