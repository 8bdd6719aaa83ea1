#!/usr/bin/env python3
"""Hostile-client drills against a Skyshard S3 endpoint over TLS; prints JSON.

usage:
  hostile.py slowloris ENDPOINT CA ACCESS_KEY SECRET_KEY BUCKET KEY CONNECTIONS SECONDS
      Opens CONNECTIONS TLS connections that, after the handshake, send nothing
      (a third), half a request head (a third) or a head and then a body at one byte
      per second (a third, unsigned: the server may answer and close at once); then
      for SECONDS runs GETs of BUCKET/KEY with boto3 while watching when the
      server closes each connection. Prints the connections opened, closed, the
      latest close after opening, and the GETs' successes, failures and p99.
  slow_uploads ENDPOINT CA ACCESS_KEY SECRET_KEY BUCKET UPLOADS SECONDS
               OTHER_ACCESS_KEY OTHER_SECRET_KEY OTHER_BUCKET OTHER_KEY
      Starts UPLOADS signed PUTs (UNSIGNED-PAYLOAD, Content-Length 1 MiB) by the
      first key that send one byte per second; meanwhile the other key GETs
      OTHER_BUCKET/OTHER_KEY for SECONDS. Prints the GETs' count, failures, p50 and
      p99 latency, and how the uploads ended.
"""
import json
import resource
import selectors
import socket
import ssl
import sys
import threading
import time
import urllib.parse

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client(endpoint, ca, ak, sk):
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
                 signature_version="s3v4", connect_timeout=10, read_timeout=30)
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                        region_name="us-east-1", config=cfg, verify=ca)


def connect_tls(host, port, ctx):
    raw = socket.create_connection((host, port), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname=host)
    return s


def get_loop(s3, bucket, key, seconds, out):
    deadline = time.time() + seconds
    lat, failed = [], []
    while time.time() < deadline:
        t = time.time()
        try:
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            lat.append(time.time() - t)
        except Exception as e:  # noqa: BLE001 — every failure is a data point
            failed.append(type(e).__name__ + ": " + str(e)[-100:])
        time.sleep(0.05)
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    out.update({"gets_ok": len(lat), "gets_failed": len(failed), "failures": failed[:5],
                "get_p50": pick(0.50), "get_p99": pick(0.99), "get_max": lat[-1] if lat else None})


def slowloris(endpoint, ca, ak, sk, bucket, key, n, seconds):
    raise_nofile()
    u = urllib.parse.urlparse(endpoint)
    ctx = ssl.create_default_context(cafile=ca)
    sel = selectors.DefaultSelector()
    opened_at, kinds, errors, closed_after = {}, {}, [], []

    def poll(timeout):
        for k, _ in sel.select(timeout):
            s = k.fileobj
            try:
                data = s.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except (ConnectionError, OSError, ssl.SSLError):
                data = b""
            if not data:
                closed_after.append(time.time() - opened_at.pop(s))
                kinds.pop(s, None)
                sel.unregister(s)
                s.close()

    for i in range(n):
        try:
            s = connect_tls(u.hostname, u.port, ctx)
        except Exception as e:  # noqa: BLE001
            errors.append(type(e).__name__ + ": " + str(e)[-80:])
            continue
        kind = i % 3
        if kind == 1:
            s.sendall(b"GET /" + bucket.encode() + b" HTTP/1.1\r\nHost: " + u.hostname.encode() + b"\r\n")
        elif kind == 2:
            s.sendall(b"PUT /" + bucket.encode() + b"/x HTTP/1.1\r\nHost: " + u.hostname.encode()
                      + b"\r\nContent-Length: 1000000\r\n\r\nx")
        s.setblocking(False)
        opened_at[s] = time.time()
        kinds[s] = kind
        sel.register(s, selectors.EVENT_READ)
        if i % 25 == 0:
            poll(0)
    out = {"opened": n - len(errors), "connect_errors": len(errors), "errors": errors[:5]}
    s3 = client(endpoint, ca, ak, sk)
    gets = {}
    t = threading.Thread(target=get_loop, args=(s3, bucket, key, seconds, gets))
    t.start()
    deadline = time.time() + seconds
    trickle = time.time()
    while opened_at and time.time() < deadline:
        poll(0.2)
        if time.time() - trickle >= 1.0:
            trickle = time.time()
            for s, kind in list(kinds.items()):
                if kind == 2:
                    try:
                        s.send(b"x")
                    except (ssl.SSLWantWriteError, BlockingIOError, ConnectionError, OSError, ssl.SSLError):
                        pass
    t.join()
    out.update({"closed": len(closed_after), "still_open": len(opened_at),
                "latest_close": max(closed_after) if closed_after else None})
    out.update(gets)
    for s in list(opened_at):
        s.close()
    print(json.dumps(out))


def signed_put_head(endpoint, ak, sk, bucket, key, length):
    url = f"{endpoint}/{bucket}/{key}"
    req = AWSRequest(method="PUT", url=url, headers={"Content-Length": str(length),
                                                     "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    # botocore's S3 signer would put the hash of the empty body it was given in
    # x-amz-content-sha256; the body follows later, unsigned.
    req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(Credentials(ak, sk), "s3", "us-east-1").add_auth(req)
    u = urllib.parse.urlparse(url)
    head = f"PUT {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
    for k, v in req.headers.items():
        if k.lower() != "host":
            head += f"{k}: {v}\r\n"
    return (head + "\r\n").encode()


def slow_upload(endpoint, ca, ak, sk, bucket, key, seconds, results):
    u = urllib.parse.urlparse(endpoint)
    ctx = ssl.create_default_context(cafile=ca)
    try:
        s = connect_tls(u.hostname, u.port, ctx)
        s.sendall(signed_put_head(endpoint, ak, sk, bucket, key, 1 << 20))
        s.settimeout(1.0)
        end = time.time() + seconds
        answer = b""
        while time.time() < end:
            try:
                s.send(b"x")
            except (ConnectionError, OSError, ssl.SSLError):
                break
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
            except (socket.timeout, ssl.SSLWantReadError):
                pass
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
        code = ""
        if b"<Code>" in answer:
            code = answer.split(b"<Code>")[1].split(b"</Code>")[0].decode()
        results.append(f"{status} {code}".strip())
        s.close()
    except Exception as e:  # noqa: BLE001
        results.append(type(e).__name__)


def slow_uploads(endpoint, ca, ak, sk, bucket, uploads, seconds, oak, osk, obucket, okey):
    raise_nofile()
    results = []
    threads = [threading.Thread(target=slow_upload, args=(endpoint, ca, ak, sk, bucket, f"slow-{i}", seconds + 60, results))
               for i in range(uploads)]
    for t in threads:
        t.start()
    time.sleep(2)  # every upload has its slot
    gets = {}
    get_loop(client(endpoint, ca, oak, osk), obucket, okey, seconds, gets)
    for t in threads:
        t.join()
    ends = {}
    for r in results:
        ends[r] = ends.get(r, 0) + 1
    gets["uploads"] = ends
    print(json.dumps(gets))


def main():
    mode = sys.argv[1]
    a = sys.argv[2:]
    if mode == "slowloris":
        slowloris(a[0], a[1], a[2], a[3], a[4], a[5], int(a[6]), float(a[7]))
    elif mode == "slow_uploads":
        slow_uploads(a[0], a[1], a[2], a[3], a[4], int(a[5]), float(a[6]), a[7], a[8], a[9], a[10])
    else:
        sys.exit(f"unknown drill {mode}")


if __name__ == "__main__":
    main()
