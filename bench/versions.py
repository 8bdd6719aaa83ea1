#!/usr/bin/env python3
"""Skyshard versioning benchmark: what keeping versions costs a writer, and how
fast ListObjectVersions pages through many versions.

usage: versions.py ENDPOINT ACCESS_KEY SECRET_KEY PID [CA_FILE] [--versions N] [--json FILE]

Against one gateway (PID: its process, for CPU seconds from /proc/PID/stat):
1. PUT of 4 KiB objects with 8 client threads into an unversioned bucket, a
   versioned one and one with object lock (a default COMPLIANCE retention: each
   version's fragments are locked at the locations that enforce retention), in
   alternating rounds (so that a noisy machine hurts all alike): objects per second
   and gateway CPU per object, and the ratios.
2. N versions (default 20,000) of 20 keys written into the versioned bucket, then
   listed whole with ListObjectVersions (1,000 per page), and one page read at the
   end of the listing (by key and version-id marker): versions listed per second
   and the last page's time against the first page's.
"""
import concurrent.futures
import json
import os
import sys
import time

import boto3
from botocore.config import Config

from gateway import cpu_seconds  # bench/gateway.py, next to this script

SMALL = 4 << 10
THREADS = 8
ROUNDS = 4
PER_ROUND = 250


def main():
    args = sys.argv[1:]
    out_json = None
    versions = 20_000
    if "--json" in args:
        i = args.index("--json")
        out_json = args[i + 1]
        del args[i : i + 2]
    if "--versions" in args:
        i = args.index("--versions")
        versions = int(args[i + 1])
        del args[i : i + 2]
    endpoint, ak, sk, pid = args[:4]
    ca = args[4] if len(args) > 4 else None
    pid = int(pid)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=ca if ca else None,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=THREADS * 2, signature_version="s3v4"),
    )
    for b in ("bench-plain", "bench-versioned"):
        s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket="bench-versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="bench-locked", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="bench-locked",
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                 "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}},
    )
    buckets = ("bench-plain", "bench-versioned", "bench-locked")
    body = os.urandom(SMALL)

    def put_many(bucket, prefix, count, keys=None):
        def one(i):
            key = f"{prefix}/{i % keys}" if keys else f"{prefix}/{i}"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
            list(ex.map(one, range(count)))

    totals = {b: [0.0, 0.0, 0] for b in buckets}
    for r in range(ROUNDS):
        for b in buckets:
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            put_many(b, f"r{r}", PER_ROUND)
            totals[b][0] += time.perf_counter() - t0
            totals[b][1] += cpu_seconds(pid) - c0
            totals[b][2] += PER_ROUND
    report = {}
    for b, (wall, cpu, n) in totals.items():
        report[b] = {"objects": n, "objects_per_s": n / wall, "cpu_ms_per_object": 1000 * cpu / n}
    report["versioned_vs_plain_rate"] = report["bench-versioned"]["objects_per_s"] / report["bench-plain"]["objects_per_s"]
    report["versioned_vs_plain_cpu"] = (
        report["bench-versioned"]["cpu_ms_per_object"] / report["bench-plain"]["cpu_ms_per_object"]
    )
    report["locked_vs_versioned_rate"] = report["bench-locked"]["objects_per_s"] / report["bench-versioned"]["objects_per_s"]
    report["locked_vs_versioned_cpu"] = (
        report["bench-locked"]["cpu_ms_per_object"] / report["bench-versioned"]["cpu_ms_per_object"]
    )

    t0 = time.perf_counter()
    put_many("bench-versioned", "many", versions, keys=20)
    written = time.perf_counter() - t0
    pages, listed, first_page, last = 0, 0, None, None
    t0 = time.perf_counter()
    kwargs = {"Bucket": "bench-versioned", "Prefix": "many/", "MaxKeys": 1000}
    while True:
        p0 = time.perf_counter()
        page = s3.list_object_versions(**kwargs)
        if first_page is None:
            first_page = time.perf_counter() - p0
        pages += 1
        listed += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        if not page.get("IsTruncated"):
            break
        last = (page["NextKeyMarker"], page["NextVersionIdMarker"])
        kwargs.update(KeyMarker=last[0], VersionIdMarker=last[1])
    listing = time.perf_counter() - t0
    p0 = time.perf_counter()
    if last:
        s3.list_object_versions(Bucket="bench-versioned", Prefix="many/", MaxKeys=1000, KeyMarker=last[0],
                                VersionIdMarker=last[1])
    last_page = time.perf_counter() - p0
    report["listing"] = {
        "versions_written": versions,
        "write_s": written,
        "listed": listed,
        "pages": pages,
        "versions_per_s": listed / listing,
        "first_page_ms": 1000 * first_page,
        "last_page_ms": 1000 * last_page,
        "last_vs_first_page": last_page / first_page,
    }
    print(json.dumps(report, indent=2))
    if out_json:
        with open(out_json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
