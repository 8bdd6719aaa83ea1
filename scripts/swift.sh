#!/usr/bin/env bash
# A throwaway one-node OpenStack Swift for tests, from Debian's packages: proxy
# (tempauth, tempurl), account, container and object servers, memcached; one replica,
# loopback only.
#   scripts/swift.sh start DIR PORT   set up DIR if needed, start (proxy on PORT, the
#                                     others on PORT+1..PORT+4), print
#                                     ACCOUNT_URL|TEMPURL_KEY|TOKEN
#   scripts/swift.sh stop DIR         stop everything started from DIR
set -euo pipefail
cmd="${1:?start|stop}"
dir="$(mkdir -p "${2:?directory}" && cd "$2" && pwd)"
etc="$dir/etc"

stop() {
  if [ -f "$dir/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$dir/pids"
    sleep 1
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$dir/pids"
    rm -f "$dir/pids"
  fi
}

case "$cmd" in
stop)
  stop
  exit 0
  ;;
start) ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac

port="${3:?port}"
acc=$((port + 1)) con=$((port + 2)) obj=$((port + 3)) mc=$((port + 4))
user="$(id -un)"
stop
mkdir -p "$etc" "$dir/srv/sdb1" "$dir/run" "$dir/log"

cat >"$etc/swift.conf" <<CONF
[swift-hash]
swift_hash_path_suffix = skyshard-test
swift_hash_path_prefix = skyshard-test
[storage-policy:0]
name = Policy-0
default = yes
CONF

common() {
  cat <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 1
user = $user
swift_dir = $etc
devices = $dir/srv
mount_check = false
log_facility = LOG_LOCAL0
log_level = WARNING
CONF
}

for kind in account container object; do
  case $kind in account) p=$acc ;; container) p=$con ;; object) p=$obj ;; esac
  {
    common "$p"
    printf '[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' "$kind" "$kind" "$kind"
    printf '[%s-replicator]\n[%s-updater]\n[%s-auditor]\n' "$kind" "$kind" "$kind"
  } >"$etc/$kind-server.conf"
done

{
  common "$port"
  cat <<CONF
[pipeline:main]
pipeline = catch_errors proxy-logging cache tempurl tempauth proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:tempurl]
use = egg:swift#tempurl
methods = GET HEAD PUT POST DELETE
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:proxy-logging]
use = egg:swift#proxy_logging
CONF
} >"$etc/proxy-server.conf"

# Rings: one device each, one replica (Swift's RingBuilder, faster than the CLI),
# with Debian's Python, where Swift is installed.
/usr/bin/python3 - "$etc" "$acc" "$con" "$obj" <<'PY'
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], dict(zip(("account", "container", "object"), map(int, sys.argv[2:5])))
for name, port in ports.items():
    b = RingBuilder(6, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port, "device": "sdb1", "weight": 100, "meta": ""})
    b.rebalance()
    b.get_ring().save(f"{etc}/{name}.ring.gz")
PY

start_bg() {
  "$@" >>"$dir/log/$(basename "$1").log" 2>&1 &
  echo $! >>"$dir/pids"
}
start_bg memcached -l 127.0.0.1 -p "$mc" -U 0 -u "$user"
for kind in account container object; do
  start_bg "swift-$kind-server" "$etc/$kind-server.conf"
done
start_bg swift-proxy-server "$etc/proxy-server.conf"

# Ready when tempauth hands out a token (20-30 s on these machines).
headers="$dir/run/auth-headers"
for _ in $(seq 1 120); do
  if curl -s -o /dev/null -D "$headers" -H "X-Auth-User: test:tester" -H "X-Auth-Key: testing" \
    "http://127.0.0.1:$port/auth/v1.0" && grep -qi "^x-auth-token:" "$headers"; then
    break
  fi
  sleep 0.5
done
token="$(grep -i "^x-auth-token:" "$headers" | tr -d '\r' | awk '{print $2}')"
url="$(grep -i "^x-storage-url:" "$headers" | tr -d '\r' | awk '{print $2}')"
[ -n "$token" ] && [ -n "$url" ] || { echo "swift did not start; logs in $dir/log" >&2; exit 1; }
key="tempurl-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# The account exists once the proxy has auto-created it on first use.
for _ in $(seq 1 40); do
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Auth-Token: $token" \
    -H "X-Account-Meta-Temp-URL-Key: $key" "$url")"
  [ "$code" = 204 ] && break
  sleep 0.5
done
[ "$code" = 204 ] || { echo "could not set the TempURL key (HTTP $code)" >&2; exit 1; }
echo "$url|$key|$token"
