#!/usr/bin/env python3
"""One boto3 S3 call for Skyshard's end-to-end tests; prints a JSON result.

usage: s3ops.py ENDPOINT ACCESS_KEY SECRET_KEY OPERATION JSON_PARAMS [FILE]

OPERATION is an S3 API operation name (PutObject, GetObject, ...), called with
JSON_PARAMS; with FILE, PutObject/UploadPart read their body from it and GetObject
writes the body to it. Special operations:
  upload_file / download_file  boto3's managed transfers (multipart above the
                               threshold in JSON_PARAMS["Threshold"], default 8 MiB)
  presign                      generate_presigned_url(Method, Params, ExpiresIn)
JSON_PARAMS["_tamper_md5"]: true sends a wrong Content-MD5 (a body changed in transit).
Prints {"ok": result} or {"error": {"code", "status", "message", "headers"}}; a connection that
fails (an untrusted certificate, say) is an error with status 0 and the exception's
name as its code.
"""
import json
import re
import sys

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def main():
    endpoint, access_key, secret_key, op, raw = sys.argv[1:6]
    path = sys.argv[6] if len(sys.argv) > 6 else None
    params = json.loads(raw)
    addressing = params.pop("_addressing", "path")
    tamper = params.pop("_tamper_md5", False)
    checksum = params.pop("_checksum", None)
    extra = {}
    if checksum == "when_required":
        extra = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
    cfg = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": addressing},
        signature_version="s3v4",
        **extra,
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=cfg,
    )
    if tamper:
        # A body digest that does not match the body, as a body changed in transit
        # would have: set after boto3 computed its own, before signing.
        def spoil(request, **_):
            request.headers["Content-MD5"] = "AAAAAAAAAAAAAAAAAAAAAA=="
        s3.meta.events.register("before-sign.s3.*", spoil)
    try:
        if op == "upload_file":
            threshold = params.get("Threshold", 8 << 20)
            tc = TransferConfig(multipart_threshold=threshold, multipart_chunksize=params.get("ChunkSize", threshold))
            s3.upload_file(path, params["Bucket"], params["Key"], ExtraArgs=params.get("ExtraArgs"), Config=tc)
            result = {}
        elif op == "download_file":
            s3.download_file(params["Bucket"], params["Key"], path)
            result = {}
        elif op == "presign":
            result = s3.generate_presigned_url(
                params["Method"], Params=params["Params"], ExpiresIn=params.get("ExpiresIn", 600)
            )
        else:
            method = getattr(s3, snake(op))
            handle = None
            if path and op in ("PutObject", "UploadPart"):
                handle = open(path, "rb")
                params["Body"] = handle
            response = method(**params)
            if handle:
                handle.close()
            body = response.pop("Body", None)
            if body is not None:
                data = body.read()
                response["BodyLength"] = len(data)
                if path:
                    with open(path, "wb") as f:
                        f.write(data)
            meta = response.pop("ResponseMetadata", {})
            response["HTTPStatusCode"] = meta.get("HTTPStatusCode")
            result = response
        print(json.dumps({"ok": result}, default=str))
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        print(
            json.dumps(
                {
                    "error": {
                        "code": err.get("Code"),
                        "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                        "message": err.get("Message"),
                        "headers": e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}),
                    }
                }
            )
        )
    except (botocore.exceptions.SSLError, botocore.exceptions.EndpointConnectionError) as e:
        # The connection itself failed (an untrusted certificate, nothing listening).
        print(json.dumps({"error": {"code": type(e).__name__, "status": 0, "message": str(e)}}))


if __name__ == "__main__":
    main()
