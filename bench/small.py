#!/usr/bin/env python3
"""Small objects through S3 endpoints: what each object costs.

usage: small.py NAME=ENDPOINT,ACCESS_KEY,SECRET_KEY,PID,CA_FILE[,METRICS_URL] [...] [--json FILE]

For each endpoint, in the same run and with the same boto3 client: PUT then GET of
1,000 objects of 4 KiB and of 10,000 objects of 1 KiB, once from one client
(sequential) and once from 16 client threads. Reports objects per second, the
server process's CPU per object (/proc/PID/stat), the p50 and p99 latency of a
request, and, where METRICS_URL gives the gateway's `/metrics`, the location
requests per object (the sum of `skyshard_location_requests_total` over the run,
by operation). SKYSHARD_BENCH_QUICK=1 moves a tenth of the objects.
"""
import concurrent.futures
import json
import os
import re
import ssl
import sys
import time
import urllib.request

from gateway import client, cpu_seconds

QUICK = bool(os.environ.get("SKYSHARD_BENCH_QUICK"))
SETS = [(4 << 10, 1000), (1 << 10, 10000)]
CLIENTS = [1, 16]


def location_requests(url, ca):
    """Location requests so far, by operation (put, get, delete, ...)."""
    if not url:
        return None
    ctx = ssl.create_default_context(cafile=ca)
    text = urllib.request.urlopen(url, context=ctx, timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'^skyshard_location_requests_total\{([^}]*)\} (\d+)', text, re.M):
        op = re.search(r'operation="([^"]*)"', m.group(1)).group(1)
        out[op] = out.get(op, 0) + int(m.group(2))
    # Packs written and the objects in them (not location requests: kept apart below).
    for name in ("packs_written", "packed_objects"):
        m = re.search(r"^skyshard_%s_total (\d+)" % name, text, re.M)
        if m:
            out["_" + name] = int(m.group(1))
    return out


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def phase(pid, metrics, ca, count, threads, fn):
    """Runs fn(i) for every object from `threads` threads; the figures of the run."""
    before = location_requests(metrics, ca)
    lat = [0.0] * count

    def one(i):
        t = time.perf_counter()
        fn(i)
        lat[i] = time.perf_counter() - t

    c0, t0 = cpu_seconds(pid), time.perf_counter()
    if threads == 1:
        for i in range(count):
            one(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(count)))
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - c0
    out = {
        "objects_per_s": count / wall,
        "cpu_ms_per_object": cpu * 1000 / count,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
    }
    if before is not None:
        after = location_requests(metrics, ca)
        delta = {op: after.get(op, 0) - before.get(op, 0) for op in after}
        packs, packed = delta.pop("_packs_written", 0), delta.pop("_packed_objects", 0)
        out["location_requests_per_object"] = {op: d / count for op, d in delta.items() if d != 0}
        if packs:
            out["objects_per_pack"] = packed / packs
    return out


def run(name, endpoint, ak, sk, pid, ca, metrics, bodies):
    s3 = client(endpoint, ak, sk, ca)
    bucket = "small-" + name
    s3.create_bucket(Bucket=bucket)
    out = {"name": name}
    for (size, count), data in zip(SETS, bodies):
        for threads in CLIENTS:
            label = f"{count}x{size >> 10}KiB_{threads}c"
            prefix = f"{size}/{threads}/"

            def put(i):
                s3.put_object(Bucket=bucket, Key=f"{prefix}{i:05d}", Body=data[i])

            def get(i):
                got = s3.get_object(Bucket=bucket, Key=f"{prefix}{i:05d}")["Body"].read()
                assert got == data[i], f"{prefix}{i:05d} came back different"

            out["put_" + label] = phase(pid, metrics, ca, count, threads, put)
            out["get_" + label] = phase(pid, metrics, ca, count, threads, get)
    return out


def cell(r):
    reqs = r.get("location_requests_per_object")
    req = f" {sum(reqs.values()):5.2f} req" if reqs is not None else ""
    packed = f" {r['objects_per_pack']:5.1f} obj/pack" if "objects_per_pack" in r else ""
    return (
        f"{r['objects_per_s']:6.0f}/s {r['cpu_ms_per_object']:5.2f} ms p50 {r['p50_ms']:5.1f} "
        f"p99 {r['p99_ms']:6.1f}{req}{packed}"
    )


def main():
    targets = [a for a in sys.argv[1:] if "=" in a]
    json_out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    if QUICK:
        SETS[:] = [(size, count // 10) for size, count in SETS]
    bodies = [[os.urandom(size) for _ in range(count)] for size, count in SETS]
    results = []
    for t in targets:
        name, rest = t.split("=", 1)
        endpoint, ak, sk, pid, ca, *metrics = rest.split(",")
        results.append(run(name, endpoint, ak, sk, int(pid), ca, metrics[0] if metrics else None, bodies))
    print("objects/s, server CPU per object, request latency (ms), location requests per object")
    for key in [k for k in results[0] if k != "name"]:
        print(key)
        for r in results:
            print(f"  {r['name']:<18}{cell(r[key])}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
