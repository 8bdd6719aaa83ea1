#!/usr/bin/env python3
"""Multipart uploads with every checksum algorithm and type, checked against
references the gateway computes for single PUTs; prints a JSON report per upload:
{"complete", "expected", "head", "head_type", "attributes", "parts", "bad_whole"}.

usage: mp_checksums.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
The reference for FULL_OBJECT is the checksum of a PutObject of the whole body; for
COMPOSITE, the checksum of a PutObject of the parts' raw checksums joined, "-2".
The gateway's CA is AWS_CA_BUNDLE.
"""
import base64
import json
import sys

import boto3
import botocore
from botocore.config import Config

CASES = [
    ("CRC32", "COMPOSITE"), ("CRC32", "FULL_OBJECT"), ("CRC32C", "COMPOSITE"), ("CRC32C", "FULL_OBJECT"),
    ("CRC64NVME", "FULL_OBJECT"), ("SHA1", "COMPOSITE"), ("SHA256", "COMPOSITE"),
]


def field(alg):
    return "Checksum" + alg


def main():
    endpoint, ak, sk, bucket = sys.argv[1:5]
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"})
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1", config=cfg)
    bodies = [bytes((i * 31 + 7) % 256 for i in range(5 << 20)), bytes((i * 17 + 3) % 256 for i in range(777_777))]
    report = {}
    for alg, kind in CASES:
        key = f"{alg}-{kind}"
        up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg, ChecksumType=kind)["UploadId"]
        parts = []
        for n, body in enumerate(bodies, 1):
            r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=body, ChecksumAlgorithm=alg)
            parts.append({"PartNumber": n, "ETag": r["ETag"], field(alg): r[field(alg)]})
        if kind == "FULL_OBJECT":
            ref = s3.put_object(Bucket=bucket, Key="ref", Body=b"".join(bodies), ChecksumAlgorithm=alg)
            expected = ref[field(alg)]
        else:
            raw = b"".join(base64.b64decode(p[field(alg)]) for p in parts)
            ref = s3.put_object(Bucket=bucket, Key="ref", Body=raw, ChecksumAlgorithm=alg)
            expected = ref[field(alg)] + "-2"
        # A wrong whole-object checksum is refused; the upload stays.
        wrong = base64.b64encode(b"\0" * len(base64.b64decode(expected.split("-")[0]))).decode()
        try:
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts},
                                         **{field(alg): wrong})
            bad = "accepted"
        except botocore.exceptions.ClientError as e:
            bad = e.response["Error"]["Code"]
        done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        attrs = s3.get_object_attributes(Bucket=bucket, Key=key,
                                         ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize"])
        report[key] = {
            "complete": done.get(field(alg)), "complete_type": done.get("ChecksumType"), "expected": expected,
            "head": head.get(field(alg)), "head_type": head.get("ChecksumType"),
            "attributes": attrs.get("Checksum", {}).get(field(alg)),
            "parts": attrs.get("ObjectParts", {}).get("TotalPartsCount"), "size": attrs.get("ObjectSize"),
            "bad_whole": bad,
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
