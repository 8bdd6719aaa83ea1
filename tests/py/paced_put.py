#!/usr/bin/env python3
"""A signed PUT (UNSIGNED-PAYLOAD) whose body of BYTES bytes is sent evenly over
SECONDS, so that something else can happen while it is under way; prints its answer
as JSON: {"status": "200", "code": "", "message": ""} (the S3 error, if any).

usage: paced_put.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY BYTES SECONDS
The gateway's CA is AWS_CA_BUNDLE.
"""
import json
import os
import ssl
import sys
import time
import urllib.parse

from hostile import connect_tls, signed_put_head


def main():
    endpoint, ak, sk, bucket, key, size, seconds = sys.argv[1:8]
    size, seconds = int(size), float(seconds)
    u = urllib.parse.urlparse(endpoint)
    ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    s = connect_tls(u.hostname, u.port, ctx)
    s.sendall(signed_put_head(endpoint, ak, sk, bucket, key, size))
    steps = 50
    chunk = size // steps
    for i in range(steps):
        n = chunk if i < steps - 1 else size - chunk * (steps - 1)
        s.sendall(b"p" * n)
        time.sleep(seconds / steps)
    s.settimeout(60)
    answer = b""
    while b"\r\n\r\n" not in answer or (b"<Error>" in answer and b"</Error>" not in answer):
        data = s.recv(65536)
        if not data:
            break
        answer += data
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    code = answer.split(b"<Code>")[1].split(b"</Code>")[0].decode() if b"<Code>" in answer else ""
    message = answer.split(b"<Message>")[1].split(b"</Message>")[0].decode() if b"<Message>" in answer else ""
    print(json.dumps({"status": status, "code": code, "message": message}))


if __name__ == "__main__":
    main()
