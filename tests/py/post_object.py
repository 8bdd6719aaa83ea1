#!/usr/bin/env python3
"""Browser form uploads (POST object) through presigned POST policies from boto3,
sent with `requests`; prints, as JSON, each upload's status and S3 error code.

usage: post_object.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
Cases: "big" (3 MiB under a policy allowing it), "outside" (a key the policy's
starts-with condition does not allow), "too_large" (a file over the policy's
content-length-range), "named" (a key of "uploads/${filename}": the file is named
photo.bin), "bad_expiration" (a policy expiring "2030-01-01 00:00:00", not ISO 8601
UTC) and "resigned" (the same policy with a good expiration, signed the same way).
The gateway's CA is AWS_CA_BUNDLE.
"""
import base64
import hashlib
import hmac
import json
import os
import sys

import boto3
import requests
from botocore.config import Config


def send(post, key, size):
    fields = dict(post["fields"], key=key)
    r = requests.post(post["url"], data=fields, files={"file": ("photo.bin", b"x" * size)},
                      verify=os.environ["AWS_CA_BUNDLE"], timeout=60)
    code = r.text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in r.text else ""
    return {"status": r.status_code, "code": code}


def with_expiration(post, sk, expiration):
    """The post's policy with another expiration, signed again (SigV4)."""
    fields = dict(post["fields"])
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["expiration"] = expiration
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    key = ("AWS4" + sk).encode()
    for part in (fields["x-amz-date"][:8], "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    fields["x-amz-signature"] = hmac.new(key, fields["policy"].encode(), hashlib.sha256).hexdigest()
    return {"url": post["url"], "fields": fields}


def main():
    endpoint, ak, sk, bucket = sys.argv[1:5]
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
    conditions = [["starts-with", "$key", "uploads/"], ["content-length-range", 1, 4 << 20]]
    post = s3.generate_presigned_post(bucket, "uploads/${filename}", Conditions=conditions, ExpiresIn=600)
    report = {
        "big": send(post, "uploads/big.bin", 3 << 20),
        "outside": send(post, "elsewhere/x.bin", 10),
        "too_large": send(post, "uploads/huge.bin", 5 << 20),
        "named": send(post, "uploads/${filename}", 1000),
        "bad_expiration": send(with_expiration(post, sk, "2030-01-01 00:00:00"), "uploads/late.bin", 10),
        "resigned": send(with_expiration(post, sk, "2030-01-01T00:00:00.000Z"), "uploads/ok.bin", 10),
    }
    report["named_size"] = s3.head_object(Bucket=bucket, Key="uploads/photo.bin")["ContentLength"]
    head = s3.head_object(Bucket=bucket, Key="uploads/big.bin")
    report["big_size"] = head["ContentLength"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
