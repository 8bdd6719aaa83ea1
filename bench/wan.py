#!/usr/bin/env python3
"""Skyshard over a wide-area network, beside rclone crypt over its best link.

usage: wan.py --skyshard BIN --wan-link BIN --rclone BIN --work DIR [--json FILE] [--png FILE]

Six `rclone serve s3` locations over TLS, each behind a WAN emulator link of its own
(`wan-link`: latency added each way, a rate cap each way); Skyshard (4-of-6) over
them, twice — reading the fastest fragments (the default) and reading fragments at
random (`pipeline.read_order = "random"`) —; and the baseline, rclone crypt over an
S3 remote behind a copy of the best of the six links, served as S3 by `rclone serve
s3`. The same boto3 client drives every endpoint, in the same run.

1. Varied links (5-120 ms, 25-400 Mbit/s): a large object's PUT and GET, then
   1,000 GETs of 4 KiB objects from 8 client threads (p50 and p99 latency), then
   the same GETs with the best location answering 2 s late (1 s added each way).
2. The issue's case: five links at 40 Mbit/s (15-40 ms), one at 2 Mbit/s; a 32 MiB
   PUT and GET through Skyshard and through crypt over one healthy link.

SKYSHARD_BENCH_QUICK=1 moves a 64 MiB large object and 200 small ones.
"""
import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time

from gateway import client
from small import percentile

QUICK = bool(os.environ.get("SKYSHARD_BENCH_QUICK"))
BIG = (64 if QUICK else 256) << 20
HEADLINE_SIZE = 32 << 20
SMALL = 4 << 10
COUNT = 200 if QUICK else 1000
THREADS = 8
MBIT = 125_000  # bytes per second
# (one-way latency in ms, Mbit/s) of each location's link.
VARIED = [(5, 400), (15, 300), (30, 250), (50, 200), (80, 150), (120, 25)]
HEADLINE = [(15, 40), (20, 40), (25, 40), (30, 40), (40, 40), (20, 2)]
ACCESS, SECRET = "BENCHACCESSKEY", "benchsecretkey0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


class Link:
    """One `wan-link` process in front of a location."""

    def __init__(self, binary, upstream, procs):
        self.p = subprocess.Popen([binary, str(upstream)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(self.p)
        self.port = int(self.p.stdout.readline().split()[1])

    def set(self, latency_ms, mbit, extra=""):
        rate = int(mbit * MBIT)
        self.p.stdin.write(f"latency={latency_ms}ms up={rate} down={rate} {extra}\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"wan-link: {answer}")


def start(cmd, procs, log, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
    procs.append(p)
    return p


def measure_big(s3, bucket, key, data):
    t = time.perf_counter()
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    put = time.perf_counter() - t
    t = time.perf_counter()
    back = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    get = time.perf_counter() - t
    assert back == data, f"{key} came back different"
    mib = len(data) / (1 << 20)
    return {"put_MiB_per_s": mib / put, "get_MiB_per_s": mib / get, "put_s": put, "get_s": get}


def small_gets(s3, bucket, smalls):
    lat = [0.0] * len(smalls)

    def one(i):
        t = time.perf_counter()
        assert s3.get_object(Bucket=bucket, Key=f"small/{i:04d}")["Body"].read() == smalls[i]
        lat[i] = time.perf_counter() - t

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(len(smalls))))
    return {"p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3}


def main():
    ap = argparse.ArgumentParser()
    for a in ("--skyshard", "--wan-link", "--rclone", "--work"):
        ap.add_argument(a, required=True)
    ap.add_argument("--json")
    ap.add_argument("--png")
    args = ap.parse_args()
    work = args.work
    procs = []
    try:
        return run(args, work, procs)
    finally:
        for p in procs:
            p.kill()


def run(args, work, procs):
    ca, cert, key = f"{work}/ca/ca.pem", f"{work}/server.pem", f"{work}/server.key"
    subprocess.run(
        [args.skyshard, "tls", "issue", "--ca", f"{work}/ca", "--name", "127.0.0.1", "--cert-out", cert,
         "--key-out", key],
        check=True, capture_output=True,
    )
    # Six locations and the baseline's remote, each behind a link.
    links = []
    for i in range(7):
        port = free_port()
        os.makedirs(f"{work}/loc{i}/frags", exist_ok=True)
        start([args.rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--cert", cert, "--key", key,
               "--auth-key", f"BENCHKEY{i},benchsecret{i}", f"{work}/loc{i}"], procs, f"{work}/loc{i}.log")
        wait_port(port)
        links.append(Link(args.wan_link, port, procs))
    locations, remote = links[:6], links[6]

    def set_links(profile, best):
        for link, (ms, mbit) in zip(locations, profile):
            link.set(ms, mbit)
        remote.set(*best)

    set_links(VARIED, VARIED[0])
    gateways = {}
    for name, extra in (("skyshard", ""), ("skyshard-random", 'read_order = "random"\n')):
        conf = f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n[pipeline]\n{extra}'
        for i, link in enumerate(locations):
            conf += (f'[[locations]]\nname = "wan{i}"\nkind = "s3"\nendpoint = "https://127.0.0.1:{link.port}"\n'
                     f'bucket = "frags"\nprefix = "{name}"\naccess_key_id = "BENCHKEY{i}"\n'
                     f'secret_access_key = "benchsecret{i}"\nca_file = "{ca}"\n')
        conf += "[policies.default]\nk = 4\nn = 6\n"
        with open(f"{work}/{name}.toml", "w") as f:
            f.write(conf)
        port, admin = free_port(), free_port()
        env = dict(os.environ, SKYSHARD_ACCESS_KEY_ID=ACCESS, SKYSHARD_SECRET_ACCESS_KEY=SECRET, SKYSHARD_LOG="warn")
        start([args.skyshard, "serve", "--config", f"{work}/{name}.toml", "--data", f"{work}/{name}", "--listen",
               f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}"], procs, f"{work}/{name}.log", env)
        wait_port(port)
        gateways[name] = client(f"https://127.0.0.1:{port}", ACCESS, SECRET, ca)

    os.makedirs(f"{work}/remote-dir/crypt", exist_ok=True)
    conf_path = f"{work}/rclone.conf"

    def obscure(p):
        return subprocess.run([args.rclone, "obscure", p], check=True, capture_output=True, text=True).stdout.strip()

    with open(conf_path, "w") as f:
        f.write(f"[remote]\ntype = s3\nprovider = Other\naccess_key_id = BENCHKEY6\nsecret_access_key = benchsecret6\n"
                f"endpoint = https://127.0.0.1:{remote.port}\n[secret]\ntype = crypt\nremote = remote:crypt\n"
                f"password = {obscure('bench-password-1')}\npassword2 = {obscure('bench-password-2')}\n")
    os.makedirs(f"{work}/loc6/crypt", exist_ok=True)
    crypt_port = free_port()
    start([args.rclone, "--config", conf_path, "--ca-cert", ca, "serve", "s3", "--addr", f"127.0.0.1:{crypt_port}",
           "--cert", cert, "--key", key, "--auth-key", "CRYPTKEY,cryptsecret", "secret:"], procs, f"{work}/crypt.log")
    wait_port(crypt_port)
    endpoints = dict(gateways)
    endpoints["crypt-best-link"] = client(f"https://127.0.0.1:{crypt_port}", "CRYPTKEY", "cryptsecret", ca)

    big = os.urandom(BIG)
    smalls = [os.urandom(SMALL) for _ in range(COUNT)]
    result = {"varied_links": VARIED, "headline_links": HEADLINE, "big_MiB": BIG >> 20, "small_count": COUNT}
    varied = {}
    for name, s3 in endpoints.items():
        s3.create_bucket(Bucket="wan")
        varied[name] = measure_big(s3, "wan", "big", big)
        print(f"varied links, {name}: {varied[name]}", file=sys.stderr)
    for name, s3 in endpoints.items():
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda i: s3.put_object(Bucket="wan", Key=f"small/{i:04d}", Body=smalls[i]), range(COUNT)))
        small_gets(s3, "wan", smalls[: COUNT // 10])  # warm: connections, measurements
        varied[name]["small_get"] = small_gets(s3, "wan", smalls)
    # The best location answers 2 s late (the baseline's link, a copy of the best,
    # is left alone: it has no other location to turn to).
    locations[0].set(1000, VARIED[0][1])
    for name in gateways:
        varied[name]["small_get_best_slowed"] = small_gets(endpoints[name], "wan", smalls)
    locations[0].set(*VARIED[0])
    result["varied"] = varied

    set_links(HEADLINE, HEADLINE[0])
    data = big[:HEADLINE_SIZE]
    headline = {}
    for name in ("skyshard", "crypt-best-link"):
        headline[name] = measure_big(endpoints[name], "wan", "headline", data)
        print(f"headline links, {name}: {headline[name]}", file=sys.stderr)
    result["headline"] = headline
    report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if args.png:
        chart(result, args.png)
    return result


def report(r):
    v, h = r["varied"], r["headline"]
    base = v["crypt-best-link"]
    print(f"Varied links {', '.join(f'{ms} ms/{mbit} Mbit' for ms, mbit in r['varied_links'])}; "
          f"baseline: rclone crypt behind a copy of the best link")
    print(f"{'':<18}{'PUT MiB/s':>12}{'÷ base':>8}{'GET MiB/s':>12}{'÷ base':>8}"
          f"{'small GET p50/p99 ms':>24}{'best slowed p50/p99':>24}{'p99 ÷ healthy':>15}")
    for name, x in v.items():
        slowed = x.get("small_get_best_slowed")
        cells = (f"{x['put_MiB_per_s']:12.1f}{x['put_MiB_per_s'] / base['put_MiB_per_s']:7.2f}×"
                 f"{x['get_MiB_per_s']:12.1f}{x['get_MiB_per_s'] / base['get_MiB_per_s']:7.2f}×"
                 f"{x['small_get']['p50_ms']:>14.0f} / {x['small_get']['p99_ms']:<7.0f}")
        if slowed:
            cells += (f"{slowed['p50_ms']:>14.0f} / {slowed['p99_ms']:<7.0f}"
                      f"{slowed['p99_ms'] / x['small_get']['p99_ms']:14.2f}×")
        print(f"{name:<18}{cells}")
    hb = h["crypt-best-link"]
    print(f"\nFive links at 40 Mbit/s, one at 2 Mbit/s, {HEADLINE_SIZE >> 20} MiB "
          f"(baseline: crypt over one healthy 40 Mbit/s link)")
    for name, x in h.items():
        print(f"{name:<18}PUT {x['put_MiB_per_s']:6.2f} MiB/s ({x['put_MiB_per_s'] / hb['put_MiB_per_s']:.2f}×)"
              f"   GET {x['get_MiB_per_s']:6.2f} MiB/s ({x['get_MiB_per_s'] / hb['get_MiB_per_s']:.2f}×)")


def chart(r, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    v = r["varied"]
    names = list(v)
    x = range(len(names))
    a.bar([i - 0.2 for i in x], [v[n]["put_MiB_per_s"] for n in names], 0.4, label="PUT")
    a.bar([i + 0.2 for i in x], [v[n]["get_MiB_per_s"] for n in names], 0.4, label="GET")
    a.set_xticks(list(x), names, fontsize=8)
    a.set_ylabel("MiB/s")
    a.set_title(f"{r['big_MiB']} MiB over varied links")
    a.legend()
    g = [n for n in names if "small_get_best_slowed" in v[n]]
    xs = range(len(g))
    b.bar([i - 0.2 for i in xs], [v[n]["small_get"]["p99_ms"] for n in g], 0.4, label="all healthy")
    b.bar([i + 0.2 for i in xs], [v[n]["small_get_best_slowed"]["p99_ms"] for n in g], 0.4, label="best +2 s")
    b.set_xticks(list(xs), g, fontsize=8)
    b.set_ylabel("p99 ms")
    b.set_title(f"{r['small_count']} GETs of 4 KiB, p99")
    b.legend()
    h = r["headline"]
    hn = list(h)
    hx = range(len(hn))
    c.bar([i - 0.2 for i in hx], [h[n]["put_MiB_per_s"] for n in hn], 0.4, label="PUT")
    c.bar([i + 0.2 for i in hx], [h[n]["get_MiB_per_s"] for n in hn], 0.4, label="GET")
    c.set_xticks(list(hx), hn, fontsize=8)
    c.set_ylabel("MiB/s")
    c.set_title("5 × 40 Mbit/s + 1 × 2 Mbit/s, 32 MiB")
    c.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
