#!/usr/bin/env bash
# The gateway benchmark: Skyshard (4-of-6 over six `rclone serve s3` locations)
# beside one `rclone serve s3` fronting an rclone crypt remote (encrypts, neither
# codes nor spreads), driven by the same boto3 client in the same run. Every
# endpoint, the locations included, serves HTTPS with a certificate from one CA
# made for the run (`skyshard tls issue`), so both sides pay for TLS. Not a test:
# it prints figures (bench/gateway.py: 256 MiB and 1,000 × 4 KiB; bench/small.py:
# small objects from 1 and 16 clients, with CPU, latency and location requests per
# object) and fails only if the 256 MiB PUT's peak RSS reaches 300 MiB. A second
# baseline is rclone crypt over an S3 remote (one more `rclone serve s3`, over TLS):
# the encrypting gateway a user would build from rclone. Needs `./test` (or
# scripts/deps.sh and a release build) first. SKYSHARD_BENCH_QUICK=1 moves a tenth of
# the small objects.
#   scripts/bench-gateway.sh [--json FILE]   (FILE gets {"gateway": ..., "small": ...})
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
  local p a
  p="$(port)"
  a="$(port)"
  # Each gateway under a prefix of its own at the locations (one finding another's
  # data would take it for its own lost database).
  { printf 'etag = "%s"\n' "$2"; sed "s|^bucket = \"frags\"|&\nprefix = \"$1-data\"|" "$config"; } >"$work/$1.toml"
  SKYSHARD_ACCESS_KEY_ID=BENCHACCESSKEY SKYSHARD_SECRET_ACCESS_KEY=benchsecretkey0123456789 SKYSHARD_LOG=warn \
    ./target/release/skyshard serve --config "$work/$1.toml" --data "$work/$1" --listen "127.0.0.1:$p" \
    --admin-listen "127.0.0.1:$a" >/dev/null 2>"$work/$1.log" &
  wait_port "$p"
  wait_port "$a"
  echo "$1=https://127.0.0.1:$p,BENCHACCESSKEY,benchsecretkey0123456789,$!,$ca,https://127.0.0.1:$a/metrics"
}
gw_md5="$(start_gateway skyshard md5)"
gw_blake3="$(start_gateway skyshard-blake3 blake3)"

# The baseline: rclone crypt over a local directory, served as S3.
crypt_port="$(port)"
mkdir -p "$work/crypt-data"
# The second baseline: rclone crypt over an S3 remote, itself one `rclone serve s3`
# over TLS.
remote_port="$(port)"
mkdir -p "$work/crypt-remote/crypt"
"$rclone" serve s3 --addr "127.0.0.1:$remote_port" --cert "$cert" --key "$key" --auth-key "REMOTEKEY,remotesecret" "$work/crypt-remote" >/dev/null 2>&1 &
pids+=($!)
wait_port "$remote_port"
crypt_s3_port="$(port)"
cat >"$work/rclone.conf" <<CONF
[plain]
type = local
[secret]
type = crypt
remote = plain:$work/crypt-data
password = $("$rclone" obscure "bench-password-1")
password2 = $("$rclone" obscure "bench-password-2")
[remote]
type = s3
provider = Other
access_key_id = REMOTEKEY
secret_access_key = remotesecret
endpoint = https://127.0.0.1:$remote_port
[secret-s3]
type = crypt
remote = remote:crypt
password = $("$rclone" obscure "bench-password-1")
password2 = $("$rclone" obscure "bench-password-2")
CONF
"$rclone" --config "$work/rclone.conf" serve s3 --addr "127.0.0.1:$crypt_port" --cert "$cert" --key "$key" --auth-key "CRYPTKEY,cryptsecret" secret: >/dev/null 2>&1 &
crypt_pid=$!
pids+=($crypt_pid)
"$rclone" --config "$work/rclone.conf" --ca-cert "$ca" serve s3 --addr "127.0.0.1:$crypt_s3_port" --cert "$cert" --key "$key" --auth-key "CRYPTKEY,cryptsecret" secret-s3: >/dev/null 2>&1 &
crypt_s3_pid=$!
pids+=($crypt_s3_pid)
wait_port "$crypt_port"
wait_port "$crypt_s3_port"
crypt="rclone-crypt=https://127.0.0.1:$crypt_port,CRYPTKEY,cryptsecret,$crypt_pid,$ca"
crypt_s3="rclone-crypt-s3=https://127.0.0.1:$crypt_s3_port,CRYPTKEY,cryptsecret,$crypt_s3_pid,$ca"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
"$venv/bin/python" bench/gateway.py "$gw_md5" "$gw_blake3" "$crypt" "$crypt_s3" \
  --json "$work/result.json" | tee "$work/table.txt"
"$venv/bin/python" bench/small.py "$gw_md5" "$crypt" "$crypt_s3" --json "$work/small.json" | tee -a "$work/table.txt"
if [ "${1:-}" = "--json" ] && [ -n "${2:-}" ]; then
  python3 -c 'import json, sys; print(json.dumps({"gateway": json.load(open(sys.argv[1])), "small": json.load(open(sys.argv[2]))}, indent=2))' \
    "$work/result.json" "$work/small.json" >"$2"
fi
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
peak = r["peak_rss_after_put_MiB"]
print(f"skyshard peak RSS after the 256 MiB PUT: {peak:.0f} MiB (limit 300 MiB)")
sys.exit(0 if peak < 300 else 1)
PY
