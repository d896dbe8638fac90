"""The bare minimum a bulk sender must do, as a yardstick for sms-cli's own CPU cost.

Reads the CSV with the csv module (params as param1.. columns or as a JSON array in a `params`
column), validates each number with phonenumbers, and serialises
uSpeedo SendBatchUSMSMessage request bodies of --batch numbers each (JSON, not sent). No
journal, no failures file, no HTTP: what is left is what any implementation has to pay.

    python benchmarks/baseline.py INPUT.csv [--batch 1000]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys

import phonenumbers


def request_contents(path: str, batch_size: int, counts: list[int]):
    """Read the CSV, check each number, and yield the TaskContent of each request of
    `batch_size` numbers (template id -> its Target entries). counts gets [rows, valid]."""
    targets: dict[str, list[dict]] = {}  # template id -> Target entries of the request being filled
    pending = 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        phone_i, tpl_i = col["phone"], col["template_id"]
        json_i = col.get("params")  # params as a JSON array in one column, as most exports give
        param_i = [col[n] for n in ("param1", "param2") if n in col]
        for values in reader:
            counts[0] += 1
            try:
                num = phonenumbers.parse(values[phone_i], None)
            except phonenumbers.NumberParseException:
                continue
            if not phonenumbers.is_valid_number(num):
                continue
            counts[1] += 1
            params = json.loads(values[json_i]) if json_i is not None else [values[i] for i in param_i if values[i]]
            targets.setdefault(values[tpl_i], []).append(
                {"Phone": f"({num.country_code}){num.national_number}", "TemplateParams": params,
                 "UserId": str(counts[0])})
            pending += 1
            if pending == batch_size:
                yield [{"TemplateId": t, "Target": ts} for t, ts in targets.items()]
                targets, pending = {}, 0
        if pending:
            yield [{"TemplateId": t, "Target": ts} for t, ts in targets.items()]


def run(path: str, batch_size: int) -> tuple[int, int, int]:
    """-> (rows, valid, bytes of request bodies)."""
    counts, size = [0, 0], 0
    for content in request_contents(path, batch_size, counts):
        body = {"Action": "SendBatchUSMSMessage", "AccountId": 1, "TaskContent": content}
        size += len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return counts[0], counts[1], size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args(argv)
    rows, valid, size = run(args.input, args.batch)
    print(f"baseline: {rows} rows, {valid} valid, {size} bytes of request bodies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
