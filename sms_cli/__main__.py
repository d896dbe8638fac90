"""Entry point (`sms-cli` and `python -m sms_cli`).

The signal handling is installed by this module's first lines, before anything else is imported:
`_signal` is the interpreter's built-in module (`signal` would first import `enum`, a window of
milliseconds in which a Ctrl-C still raised KeyboardInterrupt with a traceback). From here on a
SIGINT/SIGTERM ends the run with 130/143 and one line, whenever it lands, until a command
installs its own handling (a send stops its workers and writes its summary)."""
import _signal
import os
import sys


def _early_exit(signum, frame):
    # once: a second signal while this one unwinds must not interrupt the unwinding
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    interrupted(signum)


def interrupted(signum) -> None:
    """One line on stderr (and with --json, the error object on stdout), then exit 130/143."""
    name, code = ("SIGINT", 130) if signum == _signal.SIGINT else ("SIGTERM", 143)
    message = f"interrupted by {name}"
    try:
        if "--json" in sys.argv[1:]:
            # sms_cli.output knows what stdout holds already; before it is (fully) imported, nothing
            json_error = getattr(sys.modules.get("sms_cli.cli.output"), "json_error", None)
            if json_error is not None:
                json_error(name, message, code)
            else:
                sys.stdout.write('{"schema_version": 1, "error": {"code": "%s", "message": "%s", "exit_code": %d}, '
                                 '"exit_code": %d}\n' % (name, message, code, code))
                sys.stdout.flush()
        sys.stderr.write(f"sms-cli: {message}\n")
        sys.stderr.flush()
    except Exception:  # a closed stream, say: the exit code still says it, and never a traceback
        pass
    raise SystemExit(code)


def _swallowed(unraisable, _default=sys.unraisablehook):
    """The handler's SystemExit can land in code whose exceptions Python ignores (a weakref
    callback of the import machinery, a __del__): it would print "Exception ignored" and run on.
    That SystemExit ends the process here instead, with the line already written."""
    if isinstance(unraisable.exc_value, SystemExit) and unraisable.exc_value.code in (130, 143):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed stream: exiting matters more
                pass
        os._exit(unraisable.exc_value.code)
    _default(unraisable)


sys.unraisablehook = _swallowed
_signal.signal(_signal.SIGINT, _early_exit)
_signal.signal(_signal.SIGTERM, _early_exit)


def main() -> None:
    try:
        from .cli.app import main as cli_main
    except RuntimeError as exc:
        # Python 3.11 wraps an exception raised in a class's __set_name__ in a RuntimeError: the
        # handler's SystemExit, landed there during an import, would end in a traceback
        # (seen by tests/test_run_faults.py's signals at many points)
        cause = exc.__cause__
        if isinstance(cause, SystemExit) and cause.code in (130, 143):
            raise SystemExit(cause.code) from None
        raise
    cli_main()


if __name__ == "__main__":
    main()
