#!/usr/bin/env python3
"""Posts a comment through app process A, then reads the thread back through app process B,
once with A's token in the X-Replikit-Token header and once without it. With the token B's
read sees the comment (a replica that has it, or the primary); without, B may read a replica
that has not replayed it yet. Prints one JSON line per step."""

import argparse
import json
import sys
import urllib.request
import uuid

HEADER = "X-Replikit-Token"


def call(url: str, body: object = None, token: str = "") -> tuple:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header(HEADER, token)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()), response.headers.get(HEADER, "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app_a", help="base URL of app process A, e.g. http://127.0.0.1:8001")
    parser.add_argument("app_b", help="base URL of app process B")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    seen_with = seen_without = 0
    for k in range(args.rounds):
        thread = f"t-{uuid.uuid4().hex[:8]}"
        posted, token = call(f"{args.app_a}/comments", {"thread": thread, "author": "alice", "text": f"hello {k}"})
        with_token, _ = call(f"{args.app_b}/comments?thread={thread}", token=token)
        without, _ = call(f"{args.app_b}/comments?thread={thread}")
        ok_with = any(c["id"] == posted["id"] for c in with_token["comments"])
        ok_without = any(c["id"] == posted["id"] for c in without["comments"])
        seen_with += ok_with
        seen_without += ok_without
        print(json.dumps({"round": k, "id": posted["id"], "token": token,
                          "with_token": {"seen": ok_with, "node": with_token["node"]},
                          "without_token": {"seen": ok_without, "node": without["node"]}}), flush=True)
    print(json.dumps({"rounds": args.rounds, "seen_with_token": seen_with, "seen_without_token": seen_without}))
    return 0 if seen_with == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
