#!/usr/bin/env python3
"""One writer overwrites a key in a loop (two bodies, A and B, in turn) while
READERS readers GET it for SECONDS through presigned URLs with `requests` (no
retries, each reader on one kept-alive connection); prints, as JSON, the GETs that returned A
or B whole, those with another status (by status), those that returned other bytes,
and those whose connection failed (by exception), and the overwrites made.

usage: overwrite_race.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY BYTES SECONDS READERS
The gateway's CA is AWS_CA_BUNDLE.
"""
import collections
import json
import os
import sys
import threading
import time

import boto3
import requests
from botocore.config import Config


def main():
    endpoint, ak, sk, bucket, key, size, seconds, readers = sys.argv[1:9]
    size, seconds, readers = int(size), float(seconds), int(readers)
    ca = os.environ["AWS_CA_BUNDLE"]
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1", config=cfg)
    bodies = [bytes([65 + (i % 26) for i in range(size)]), bytes([97 + (i % 26) for i in range(size)])]
    s3.put_object(Bucket=bucket, Key=key, Body=bodies[0])
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)
    end = time.time() + seconds
    counts = collections.Counter()
    lock = threading.Lock()
    writes = [0]

    def write():
        i = 1
        while time.time() < end:
            s3.put_object(Bucket=bucket, Key=key, Body=bodies[i % 2])
            i += 1
            writes[0] += 1

    def read():
        session = requests.Session()
        while time.time() < end:
            try:
                r = session.get(url, verify=ca, timeout=30)
                if r.status_code == 200:
                    what = "whole" if r.content in bodies else "other bytes"
                else:
                    what = f"status {r.status_code}"
            except requests.RequestException as e:
                what = type(e).__name__
            with lock:
                counts[what] += 1

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"gets": dict(counts), "overwrites": writes[0]}))


if __name__ == "__main__":
    main()
