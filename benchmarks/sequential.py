"""What a user's own ten-line script does: read the CSV, check each number, and send each batch of
1,000 through the official uSpeedo SDK (uspeedo-sdk-python), waiting for its answer before the
next. No journal, no failures file, no retries: the yardstick sms-cli's wall time is held to.

    python benchmarks/sequential.py INPUT.csv ENDPOINT [--batch 1000]

Without the SDK installed, the same loop posts with `requests`, signed by sms-cli's own
uSpeedo signer (the SDK's scheme).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from baseline import request_contents  # the same loop as the bare minimum (benchmarks/ is on sys.path)

KEY_ID, SECRET = "emulator-key", "emulator-secret"


def sender(endpoint: str):
    """A function that sends one SendBatchUSMSMessage request body and returns the answer."""
    try:
        from uspeedo.services.asms.client import AsmsClient
    except ImportError:
        import secrets
        import time

        import requests

        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
        from sms_cli.providers.uspeedo import sign

        session = requests.Session()

        def send(body: dict) -> dict:
            body = {"Action": "SendBatchUSMSMessage", **body}
            headers = {"Content-Type": "application/json", "X-Access-Key-Id": KEY_ID,
                       "X-Signature": sign(body, SECRET), "X-Timestamp": str(int(time.time())),
                       "X-Nonce": secrets.token_hex(16)}
            return session.post(endpoint, data=json.dumps(body).encode(), headers=headers, timeout=60).json()

        return send, "requests"
    quiet = logging.getLogger("bench.uspeedo-sdk")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    client = AsmsClient({"base_url": endpoint, "public_key": KEY_ID, "private_key": SECRET}, logger=quiet)
    return client.send_batch_usms_message, "uspeedo-sdk-python"


def run(path: str, endpoint: str, batch_size: int) -> tuple[int, int, str]:
    """The same reading and checking as the bare minimum, each request sent and waited for."""
    send, how = sender(endpoint)
    counts, accepted = [0, 0], 0
    for content in request_contents(path, batch_size, counts):
        accepted += int(send({"AccountId": 1, "TaskContent": content}).get("SuccessCount") or 0)
    return counts[0], accepted, how


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("endpoint", help="the uSpeedo API URL, e.g. http://127.0.0.1:8787/api")
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args(argv)
    rows, accepted, how = run(args.input, args.endpoint, args.batch)
    print(f"sequential: {rows} rows, {accepted} accepted, via {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
