#!/usr/bin/env python3
"""Skyshard gateway benchmark: the same boto3 client against two S3 endpoints.

usage: gateway.py NAME=ENDPOINT,ACCESS_KEY,SECRET_KEY,PID[,CA_FILE] [...] [--json FILE]

CA_FILE is the certificate authority an https endpoint's certificate chains to.

For each endpoint, in this order: PUT of one 256 MiB object (single request), GET of
it twice, PUT of 1,000 objects of 4 KiB (8 client threads), GET of them. Reports wall-clock
throughput, the server process's CPU seconds per GiB moved (from /proc/PID/stat),
and its peak resident memory after the 256 MiB PUT (VmHWM).
"""
import concurrent.futures
import json
import os
import sys
import time

import boto3
from botocore.config import Config

BIG = 256 << 20
SMALL = 4 << 10
COUNT = 1000
THREADS = 8
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def client(endpoint, ak, sk, ca):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=ca if ca else None,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        # Checksums only when required: otherwise boto3 sends aws-chunked bodies
        # without Content-Length over HTTPS, which rclone serve s3 refuses
        # (MissingContentLength). The same setting for every endpoint.
        config=Config(
            retries={"max_attempts": 1},
            max_pool_connections=THREADS * 2,
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def measure(pid, nbytes, fn):
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - c0
    return {"seconds": wall, "MiB_per_s": nbytes / wall / (1 << 20), "cpu_s_per_GiB": cpu / (nbytes / (1 << 30))}


def run(name, endpoint, ak, sk, pid, ca, big, smalls):
    s3 = client(endpoint, ak, sk, ca)
    bucket = "bench-" + name
    s3.create_bucket(Bucket=bucket)
    out = {"name": name}
    out["put_256MiB"] = measure(pid, BIG, lambda: s3.put_object(Bucket=bucket, Key="big", Body=big))
    out["peak_rss_after_put_MiB"] = peak_rss(pid) / (1 << 20)

    def get_big():
        data = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
        assert data == big, "the 256 MiB object came back different"

    out["get_256MiB"] = measure(pid, BIG, get_big)
    # Again: a location served by `rclone serve s3` hashes a file in full (MD5, for
    # its ETag) the first time it is read, unless it learnt the hash when the file
    # was written; the second GET shows the endpoint without that cost.
    out["get_256MiB_again"] = measure(pid, BIG, get_big)
    pool = concurrent.futures.ThreadPoolExecutor(THREADS)

    def put_small():
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"small/{i:04d}", Body=smalls[i]), range(COUNT)))

    def get_small():
        def one(i):
            assert s3.get_object(Bucket=bucket, Key=f"small/{i:04d}")["Body"].read() == smalls[i]

        list(pool.map(one, range(COUNT)))

    out["put_1000x4KiB"] = measure(pid, COUNT * SMALL, put_small)
    out["put_1000x4KiB"]["objects_per_s"] = COUNT / out["put_1000x4KiB"]["seconds"]
    out["get_1000x4KiB"] = measure(pid, COUNT * SMALL, get_small)
    out["get_1000x4KiB"]["objects_per_s"] = COUNT / out["get_1000x4KiB"]["seconds"]
    return out


def main():
    targets = [a for a in sys.argv[1:] if "=" in a]
    json_out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    big = os.urandom(BIG)
    smalls = [os.urandom(SMALL) for _ in range(COUNT)]
    results = []
    for t in targets:
        name, rest = t.split("=", 1)
        endpoint, ak, sk, pid, *ca = rest.split(",")
        results.append(run(name, endpoint, ak, sk, int(pid), ca[0] if ca else None, big, smalls))
    big_cells = ("put_256MiB", "get_256MiB", "get_256MiB_again")
    print(
        f"{'':<14}{'PUT 256 MiB':>22}{'GET 256 MiB':>22}{'GET it again':>22}{'PUT 1000x4KiB':>24}{'GET 1000x4KiB':>24}"
        f"{'peak RSS':>12}"
    )
    for r in results:
        cells = []
        for k in big_cells:
            cells.append(f"{r[k]['MiB_per_s']:7.1f} MiB/s {r[k]['cpu_s_per_GiB']:5.2f} cs/G")
        for k in ("put_1000x4KiB", "get_1000x4KiB"):
            cells.append(f"{r[k]['objects_per_s']:7.0f} obj/s {r[k]['cpu_s_per_GiB']:6.1f} cs/G")
        widths = [22] * len(big_cells) + [24, 24]
        row = "".join(f"{c:>{w}}" for c, w in zip(cells, widths))
        print(f"{r['name']:<14}{row}{r['peak_rss_after_put_MiB']:>9.0f} MiB")
    print("(cs/G: the server's CPU seconds per GiB moved; peak RSS: after the 256 MiB PUT;")
    print(" GET it again: the same object once more, after each location has read it once)")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
