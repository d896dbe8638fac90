"""What a user's own ten-line script does: read the CSV, check each number, and send each batch of
1,000 through the official uSpeedo SDK (uspeedo-sdk-python), waiting for its answer before the
next. No journal, no failures file, no retries: the yardstick sms-cli's wall time is held to.

    python benchmarks/sequential.py INPUT.csv ENDPOINT [--batch 1000]

Without the SDK installed, the same loop posts with `requests`, signed by sms-cli's own
uSpeedo signer (the SDK's scheme).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys

import phonenumbers

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
    send, how = sender(endpoint)
    rows = accepted = 0
    targets: dict[str, list[dict]] = {}
    pending = 0

    def flush() -> int:
        body = {"AccountId": 1, "TaskContent": [{"TemplateId": t, "Target": ts} for t, ts in targets.items()]}
        targets.clear()
        answer = send(body)
        return int(answer.get("SuccessCount") or 0)

    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        col = {name: i for i, name in enumerate(next(reader))}
        phone_i, tpl_i = col["phone"], col["template_id"]
        json_i = col.get("params")
        param_i = [col[n] for n in ("param1", "param2") if n in col]
        for values in reader:
            rows += 1
            try:
                num = phonenumbers.parse(values[phone_i], None)
            except phonenumbers.NumberParseException:
                continue
            if not phonenumbers.is_valid_number(num):
                continue
            params = json.loads(values[json_i]) if json_i is not None else [values[i] for i in param_i if values[i]]
            targets.setdefault(values[tpl_i], []).append(
                {"Phone": f"({num.country_code}){num.national_number}", "TemplateParams": params})
            pending += 1
            if pending == batch_size:
                accepted += flush()
                pending = 0
        if pending:
            accepted += flush()
    return rows, accepted, how


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
