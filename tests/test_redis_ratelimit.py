"""rate_backend: one rate limit shared through a real redis-server by every process that sends
through an account; Redis missing at the start refuses (exit 2), lost mid-run stops the run
(exit 3) with the journal and the failures file telling the truth."""
from __future__ import annotations

import csv
import threading

import pytest

from conftest import Background, invoke, make_rows, start_cli, wait_for
from redis_server import RedisServer, free_port
from sms_cli.config.load import load_config
from sms_cli.core.errors import ConfigError
from sms_cli.providers.ratebackend import SharedRateLimiter, limiter_for
from sms_cli.providers.ratelimit import RateLimiter


@pytest.fixture
def redis():
    server = RedisServer().start()
    yield server
    server.stop()


def accepted_phones(emu) -> list[str]:
    with emu.lock:
        return [e["phone"] for e in emu.accepted]


def test_without_rate_backend_nothing_changes(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("providers:\n  t: {type: tencent, rate_limit: 10}\n", encoding="utf-8")
    settings = load_config(str(cfg), strict_env=False).provider("t")
    assert settings.rate_backend is None
    assert type(limiter_for(10, settings)) is RateLimiter


def test_a_bad_rate_backend_is_refused_without_showing_its_password(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("providers:\n  t: {type: tencent, rate_backend: 'http://:hunter2@host:1/0'}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(str(cfg), strict_env=False)
    assert "redis://HOST:PORT/DB" in str(exc.value) and "hunter2" not in str(exc.value)
    cfg.write_text("providers:\n  t: {type: tencent, rate_backend: 'redis://:hunter2@host:1/0'}\n", encoding="utf-8")
    assert "hunter2" in load_config(str(cfg), strict_env=False).secrets  # redacted from logs


def test_two_limiters_on_one_account_share_one_sequence_of_slots(redis):
    """Two processes' limiters (two instances, two connections) take the account's slots in
    turn: each slot one interval after the one before, whoever took it."""
    a, b = (SharedRateLimiter(10, redis.url, "tencent|1400000001") for _ in range(2))
    for lim in (a, b):
        lim.start()
    waits = [(a if i % 2 else b)._slot(take=True) for i in range(10)]
    assert all(later > earlier for earlier, later in zip(waits, waits[1:]))
    assert waits[-1] - waits[0] > 0.8  # ten slots 0.105 s apart (0.945 s), taken within milliseconds
    assert a._slot(take=False) > 0.9 and b._slot(take=False) > 0.9
    other = SharedRateLimiter(10, redis.url, "tencent|1400000002")
    other.start()
    assert other._slot(take=False) < 0.3  # another account has its own slots
    stop = threading.Event()
    stop.set()
    assert a.acquire(stop) is False  # a stopped run never waits for a slot


def one_per_request(tmp_path, emu, url: str, rate: float = 20):
    """uSpeedo's one-content action: rows with distinct params go one request each."""
    from conftest import write_config_file

    return write_config_file(tmp_path, emu, "uspeedo", filename="c.yaml", rate_limit=rate, rate_backend=url,
                             action="SendUSMSMessage")


def test_two_senders_share_the_account_limit_at_the_emulator(tmp_path, emulator, redis):
    emu = emulator()
    cfg = one_per_request(tmp_path, emu, redis.url, rate=30)
    phones = make_rows(tmp_path / "a.csv", 20) + make_rows(tmp_path / "b.csv", 20, start=1000)
    procs = [start_cli("send", name, "--config", cfg, "--json", cwd=tmp_path) for name in ("a.csv", "b.csv")]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    times = emu.stats()["request_times"]
    assert len(times) == 40  # one number per request (distinct params)
    # 40 slots of one shared sequence span at least 39 * 1.05 / 30 = 1.37 s; two unshared limits
    # would finish in half that. (The exact count per window depends on the machine's jitter:
    # benchmarks/bench_shards.py measures it; the slots' spacing is tested above without timing.)
    assert times[-1] - times[0] >= 1.0
    assert sorted(accepted_phones(emu)) == sorted(phones)


def test_redis_unreachable_at_the_start_refuses_exit_2(tmp_path, emulator):
    emu = emulator()
    cfg = one_per_request(tmp_path, emu, f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    make_rows(tmp_path / "in.csv", 5)
    r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 2 and "rate_backend redis://127.0.0.1:" in r.stderr and "s3cret" not in r.stderr
    assert emu.stats()["requests"] == 0 and not (tmp_path / "in.journal.sqlite").exists()
    # checks that send nothing need no Redis
    assert invoke("plan", "in.csv", "--config", cfg, cwd=tmp_path).returncode == 0


def test_redis_lost_mid_run_stops_exit_3_and_a_rerun_finishes_exactly_once(tmp_path, emulator, redis):
    emu = emulator()
    cfg = one_per_request(tmp_path, emu, redis.url, rate=200)
    phones = make_rows(tmp_path / "in.csv", 300)
    # the send runs on a thread of this process (its rate limiter talks to the real redis-server)
    run = Background(lambda: invoke("send", "in.csv", "--config", cfg, "--json", cwd=tmp_path))
    wait_for(emu, lambda: emu.stats()["requests"] >= 10 or run.poll() is not None, procs=[run],
             what="ten requests to reach the emulator")
    redis.stop()
    r = run.wait(timeout=60)
    summary = r.json()
    assert r.returncode == 3, r.stderr
    assert summary["stopped"] == "fatal" and "rate_backend" in summary["fatal"] and "lost" in summary["fatal"]
    taken = accepted_phones(emu)
    assert summary["accepted"] == len(taken) < 300 and summary["unknown"] == 0
    failed = list(csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8")))
    assert len(failed) == 300 - len(taken) and {r["retryable"] for r in failed} == {"yes"}
    # Redis back (same address): the same command sends the rest, nothing twice
    redis.start()
    r = invoke("send", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(accepted_phones(emu)) == sorted(phones)
