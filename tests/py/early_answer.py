#!/usr/bin/env python3
"""POSTs a large body to a URL that answers before reading it, several times, with
Python's requests (which sends the whole body without `Expect: 100-continue`, as
many HTTP clients do); prints the status codes, or the connection errors, as JSON.

usage: early_answer.py URL CA_FILE BODY_BYTES TIMES
"""
import json
import sys

import requests


def main():
    url, ca, size, times = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    body = b'{"pad":"' + b"x" * size + b'"}'
    results = []
    for _ in range(times):
        with requests.Session() as s:
            try:
                r = s.post(url, data=body, headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"}, verify=ca)
                results.append(r.status_code)
            except requests.RequestException as e:
                results.append(type(e).__name__ + ": " + str(e)[-120:])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
