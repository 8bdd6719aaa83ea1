#!/usr/bin/env bash
# The gateway benchmark: Skyshard (4-of-6 over six `rclone serve s3` locations)
# beside one `rclone serve s3` fronting an rclone crypt remote (encrypts, neither
# codes nor spreads), driven by the same boto3 client in the same run. Every
# endpoint, the locations included, serves HTTPS with a certificate from one CA
# made for the run (`skyshard tls issue`), so both sides pay for TLS. Not a test:
# it prints figures (bench/gateway.py) and fails only if the 256 MiB PUT's peak
# RSS reaches 300 MiB. Needs `./test` (or scripts/deps.sh and a release build) first.
#   scripts/bench-gateway.sh [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SKYSHARD_VENV:-$PWD/.venv}"
rclone="$venv/bin/rclone"
work="$(mktemp -d /tmp/skyshard-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f -- "$work" 2>/dev/null || true # gateways started in subshells
  [ -n "${SKYSHARD_BENCH_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# One certificate for every server of the run.
ca="$work/ca/ca.pem"
cert="$work/server.pem"
key="$work/server.key"
./target/release/skyshard tls issue --ca "$work/ca" --name 127.0.0.1 --cert-out "$cert" --key-out "$key" >/dev/null 2>&1

# Six locations.
config="$work/locations.toml"
printf '[tls]\ncert_file = "%s"\nkey_file = "%s"\n\n' "$cert" "$key" >"$config"
for i in 0 1 2 3 4 5; do
  p="$(port)"
  mkdir -p "$work/loc$i/frags"
  "$rclone" serve s3 --addr "127.0.0.1:$p" --cert "$cert" --key "$key" --auth-key "BENCHKEY$i,benchsecret$i" "$work/loc$i" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$p"
  printf '[[locations]]\nname = "rc%s"\nkind = "s3"\nendpoint = "https://127.0.0.1:%s"\nbucket = "frags"\naccess_key_id = "BENCHKEY%s"\nsecret_access_key = "benchsecret%s"\nca_file = "%s"\n' \
    "$i" "$p" "$i" "$i" "$ca" >>"$config"
done
printf '[policies.default]\nk = 4\nn = 6\n' >>"$config"

# Two gateways over the same locations: MD5 ETags (the default) and BLAKE3 ETags,
# to show what MD5 costs.
start_gateway() { # NAME ETAG
  local p
  p="$(port)"
  { printf 'etag = "%s"\n' "$2"; cat "$config"; } >"$work/$1.toml"
  SKYSHARD_ACCESS_KEY_ID=BENCHACCESSKEY SKYSHARD_SECRET_ACCESS_KEY=benchsecretkey0123456789 SKYSHARD_LOG=warn \
    ./target/release/skyshard serve --config "$work/$1.toml" --data "$work/$1" --listen "127.0.0.1:$p" \
    --admin-listen 127.0.0.1:0 >/dev/null 2>"$work/$1.log" &
  wait_port "$p"
  echo "$1=https://127.0.0.1:$p,BENCHACCESSKEY,benchsecretkey0123456789,$!,$ca"
}
gw_md5="$(start_gateway skyshard md5)"
gw_blake3="$(start_gateway skyshard-blake3 blake3)"

# The baseline: rclone crypt over a local directory, served as S3.
crypt_port="$(port)"
mkdir -p "$work/crypt-data"
cat >"$work/rclone.conf" <<CONF
[plain]
type = local
[secret]
type = crypt
remote = plain:$work/crypt-data
password = $("$rclone" obscure "bench-password-1")
password2 = $("$rclone" obscure "bench-password-2")
CONF
"$rclone" --config "$work/rclone.conf" serve s3 --addr "127.0.0.1:$crypt_port" --cert "$cert" --key "$key" --auth-key "CRYPTKEY,cryptsecret" secret: >/dev/null 2>&1 &
crypt_pid=$!
pids+=($crypt_pid)
wait_port "$crypt_port"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
"$venv/bin/python" bench/gateway.py "$gw_md5" "$gw_blake3" \
  "rclone-crypt=https://127.0.0.1:$crypt_port,CRYPTKEY,cryptsecret,$crypt_pid,$ca" \
  --json "$work/result.json" | tee "$work/table.txt"
if [ "${1:-}" = "--json" ] && [ -n "${2:-}" ]; then cp "$work/result.json" "$2"; fi
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
peak = r["peak_rss_after_put_MiB"]
print(f"skyshard peak RSS after the 256 MiB PUT: {peak:.0f} MiB (limit 300 MiB)")
sys.exit(0 if peak < 300 else 1)
PY
