#!/usr/bin/env bash
# The WAN benchmark (bench/wan.py): Skyshard over six locations behind emulated
# wide-area links of different latency and bandwidth, beside rclone crypt over the
# best of those links, in the same run; then the issue's case of one slow link among
# five healthy ones. Not a test: it prints a table and writes JSON and a PNG chart.
# Needs `./test` (or scripts/deps.sh and a release build) first; installs matplotlib
# into the project's virtualenv for the chart. SKYSHARD_BENCH_QUICK=1 moves less.
#   scripts/bench-wan.sh [--json FILE] [--png FILE]   (default PNG: target/bench-wan/wan.png)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SKYSHARD_VENV:-$PWD/.venv}"
if ! "$venv/bin/python" -c "import matplotlib" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "matplotlib>=3.8"
fi
json="" png="target/bench-wan/wan.png"
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json="$2"; shift 2 ;;
    --png) png="$2"; shift 2 ;;
    *) echo "usage: $0 [--json FILE] [--png FILE]" >&2; exit 2 ;;
  esac
done
mkdir -p "$(dirname "$png")"
work="$(mktemp -d /tmp/skyshard-bench-wan.XXXXXX)"
cleanup() { [ -n "${SKYSHARD_BENCH_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
"$venv/bin/python" bench/wan.py --skyshard target/release/skyshard --wan-link target/release/wan-link \
  --rclone "$venv/bin/rclone" --work "$work" --png "$png" ${json:+--json "$json"}
echo "chart: $png"
