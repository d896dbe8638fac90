"""Entry point (`sms-cli` and `python -m sms_cli`). Signals are handled before anything else is
imported: a Ctrl-C while typer and rich load still exits 130 without a traceback."""
import signal
import sys


def _early_exit(signum, frame):
    sys.exit(130 if signum == signal.SIGINT else 143)


def main() -> None:
    signal.signal(signal.SIGINT, _early_exit)
    signal.signal(signal.SIGTERM, _early_exit)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
