#!/usr/bin/env python3
"""N boto3 writers race for one key with a conditional write; prints, as JSON, each
writer's outcome: {"etag": ...} or {"error": code}.

usage: conditional_race.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY MODE N

MODE: "absent"      PutObject with If-None-Match: *
      "match:ETAG"  PutObject with If-Match: ETAG
      "complete"    N multipart uploads of the key, each completed with If-None-Match: *
All writers start together (a barrier); each writes a body of its own, unlike any body
of an earlier race (a writer rewriting the ETag a condition names would rightly let a
second If-Match writer win too).
"""
import json
import os
import sys
import threading

import boto3
import botocore
from botocore.config import Config


def main():
    endpoint, ak, sk, bucket, key, mode, n = sys.argv[1:8]
    n = int(n)
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})
    clients = [
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                     region_name="us-east-1", config=cfg)
        for _ in range(n)
    ]
    run = os.urandom(8).hex().encode()
    uploads = []
    if mode == "complete":
        for i, s3 in enumerate(clients):
            up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            part = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=b"%s writer %d " % (run, i) * 1000)
            uploads.append((up, part["ETag"]))
    barrier = threading.Barrier(n)
    results = [None] * n

    def write(i):
        s3 = clients[i]
        body = b"%s writer %d " % (run, i) * 100
        barrier.wait()
        try:
            if mode == "absent":
                r = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            elif mode.startswith("match:"):
                r = s3.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=mode[len("match:"):])
            else:
                up, etag = uploads[i]
                r = s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=up,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}, IfNoneMatch="*")
            results[i] = {"etag": r["ETag"]}
        except botocore.exceptions.ClientError as e:
            results[i] = {"error": e.response.get("Error", {}).get("Code")}

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
