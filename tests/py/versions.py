#!/usr/bin/env python3
"""Writes many versions of a few keys, then lists every version a page at a time
with boto3's paginator; prints, as JSON, what was written and what was listed.

usage: versions.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET PREFIX KEYS PER_KEY PAGE

Writes PER_KEY versions of each of KEYS keys PREFIX0, PREFIX1, ... (a thread per
key, so that each key's versions are written one after another), then lists the
versions under PREFIX with MaxKeys PAGE. Prints {"put": {key: [version ids, oldest
first]}, "listed": [[key, version id, is latest], ...], "pages": number of pages}.
"""
import json
import sys
import threading

import boto3
from botocore.config import Config


def main():
    endpoint, ak, sk, bucket, prefix, keys, per_key, page = sys.argv[1:9]
    keys, per_key, page = int(keys), int(per_key), int(page)
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
                 max_pool_connections=keys + 2)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1", config=cfg)
    put = {}

    def write(i):
        key = "%s%d" % (prefix, i)
        put[key] = [s3.put_object(Bucket=bucket, Key=key, Body=b"%s v%d" % (key.encode(), n))["VersionId"]
                    for n in range(per_key)]

    threads = [threading.Thread(target=write, args=(i,)) for i in range(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed, pages = [], 0
    paginator = s3.get_paginator("list_object_versions")
    for p in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page}):
        pages += 1
        for v in p.get("Versions", []):
            listed.append([v["Key"], v["VersionId"], v["IsLatest"]])
    print(json.dumps({"put": put, "listed": listed, "pages": pages}))


if __name__ == "__main__":
    main()
