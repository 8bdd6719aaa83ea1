#!/usr/bin/env python3
"""Uploads files one after another, printing "ACK <key>" after each success.

usage: put_many.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET FILE...
The key of each file is its base name. Stops at the first failure.
"""
import os
import sys

import boto3
from botocore.config import Config

endpoint, access_key, secret_key, bucket = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access_key,
    aws_secret_access_key=secret_key,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
)
for path in sys.argv[5:]:
    key = os.path.basename(path)
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f)
    print("ACK " + key, flush=True)
