"""Where does a send's CPU go? cProfile over the whole process, every thread included.

    python benchmarks/profile_send.py [--rows 200000] [--json-params] [--no-text] [--top 25] [--out FILE]

Generates the benchmark's input (benchmarks/bench_send.py), starts the emulator in a process of
its own (its CPU is not profiled), and runs `sms-cli send` IN THIS PROCESS under cProfile with the
benchmark's config (templates with their `text`, unless --no-text). cProfile sees only the thread
that enables it, so each thread the send starts (the request workers) gets a profiler of its own
and the statistics of all of them are added up before they are printed. The clock is each
thread's own CPU time (time.thread_time), so a worker waiting for an answer costs nothing, as
it costs no CPU. Profiling slows the program down about twofold, unevenly: read the order and
the shares, not the seconds.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_send  # noqa: E402  (the benchmark's input, emulator and config: one definition)


def profiled_threads(profiles: list[cProfile.Profile]):
    """Make every Thread started from now on run under a profiler of its own."""
    original = threading.Thread.run

    def run(self):
        prof = cProfile.Profile(time.thread_time)
        profiles.append(prof)
        prof.enable()
        try:
            original(self)
        finally:
            prof.disable()

    threading.Thread.run = run
    return original


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--json-params", action="store_true", help="params as one JSON column")
    ap.add_argument("--no-text", action="store_true", help="templates without their text")
    ap.add_argument("--top", type=int, default=25, help="functions printed, by own time")
    ap.add_argument("--out", help="also save the merged statistics here (pstats format)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sms-cli-profile-"))
    emu = None
    try:
        data = work / "recipients.csv"
        bench_send.generate(data, args.rows, json_params=args.json_params)
        emu = bench_send.EmulatorProcess(sys.executable, work, "emulator")
        config = work / "config.yaml"
        bench_send.write_config(config, emu.url, with_text=not args.no_text)
        sys.argv = ["sms-cli", *bench_send.sms_cli("", data, config, "--journal", str(work / "j.sqlite"),
                                                   "--failures", str(work / "failed.csv"))[3:]]
        from sms_cli.cli.app import main as cli_main

        profiles: list[cProfile.Profile] = []
        original = profiled_threads(profiles)
        main_prof = cProfile.Profile(time.thread_time)
        code = 0
        main_prof.enable()
        try:
            cli_main()
        except SystemExit as exc:
            code = exc.code or 0
        finally:
            main_prof.disable()
            threading.Thread.run = original
        stats = pstats.Stats(main_prof, stream=(buf := io.StringIO()))
        for prof in profiles:
            stats.add(prof)
        if args.out:
            stats.dump_stats(args.out)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(f"profile: {args.rows:,} rows, exit {code}, {len(profiles)} threads besides the main one",
              file=sys.stderr)
        print(buf.getvalue())
        return 0
    finally:
        if emu is not None:
            emu.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
