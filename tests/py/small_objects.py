#!/usr/bin/env python3
"""Many small objects from many clients at once (what packs are for), and their check.

usage: small_objects.py ENDPOINT ACCESS_KEY SECRET_KEY MODE BUCKET PREFIX COUNT THREADS [FIRST [EVERY]]

MODE is put, check or delete; objects FIRST (default 0) to COUNT - 1, every EVERY-th
(default each).

Object i is `PREFIX<i>`, 1 + (i * 997) % 9000 bytes of content derived from its key.
`put` prints {"acked": N, "acked_keys": [...], "errors": [...]}; a PUT counts as
acknowledged only if its ETag is the MD5 of the body. `check` GETs every object and prints {"ok": N, "missing": [...],
"wrong": [...]}: an object is whole or absent, never anything else.
"""
import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, access_key, secret_key, mode, bucket, prefix, count, threads = sys.argv[1:9]
count, threads = int(count), int(threads)
first = int(sys.argv[9]) if len(sys.argv) > 9 else 0
every = int(sys.argv[10]) if len(sys.argv) > 10 else 1
which = range(first, count, every)


def client():
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=threads),
    )


s3 = client()


def body(i):
    key = f"{prefix}{i}"
    seed = hashlib.sha256(key.encode()).digest()
    n = 1 + (i * 997) % 9000
    out = bytearray()
    block = seed
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return key, bytes(out[:n])


def put(i):
    key, data = body(i)
    try:
        r = s3.put_object(Bucket=bucket, Key=key, Body=data)
        if r["ETag"].strip('"') != hashlib.md5(data).hexdigest():
            return (None, f"{key}: ETag {r['ETag']}")
        return (key, None)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        return (None, f"{key}: {e}")


def check(i):
    key, data = body(i)
    try:
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return ("missing", key)
    except Exception as e:  # noqa: BLE001
        return ("wrong", f"{key}: {e}")
    return ("ok", key) if got == data else ("wrong", f"{key}: {len(got)} bytes, not its {len(data)}")


def delete(i):
    key = f"{prefix}{i}"
    try:
        s3.delete_object(Bucket=bucket, Key=key)
        return None
    except Exception as e:  # noqa: BLE001
        return f"{key}: {e}"


with ThreadPoolExecutor(threads) as pool:
    if mode == "delete":
        errors = [e for e in pool.map(delete, which) if e]
        print(json.dumps({"deleted": len(which) - len(errors), "errors": errors[:20]}))
    elif mode == "put":
        results = list(pool.map(put, which))
        acked = [k for k, _ in results if k]
        errors = [e for _, e in results if e]
        print(json.dumps({"acked": len(acked), "acked_keys": acked, "errors": errors[:20]}))
    else:
        out = {"ok": 0, "missing": [], "wrong": []}
        for kind, what in pool.map(check, which):
            if kind == "ok":
                out["ok"] += 1
            else:
                out[kind].append(what)
        print(json.dumps(out))
