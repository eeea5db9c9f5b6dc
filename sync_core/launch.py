"""The ``litemaas-sync`` process: the CLI (:mod:`sync_core.cli`) run as a one-shot program.

Three things only cost a one-shot command (everything but ``worker``) time, measured at
10,000 models: the cyclic collector walking what the imports built (0.03 s, then again on
every full pass), the teardown of ~600 modules at exit (0.08 s of a 1.6 s process), and
freeing the sync's result, every row of it, object by object just before exiting (0.04 s).
So the imports run with the collector paused and what they built is frozen out of its reach
(``gc.freeze``), as is what each bulk phase builds while the collector is paused
(``bulk.FREEZE_ON_RESUME``, after collecting what garbage there is); the collector then runs
with a larger young generation, so cyclic garbage made outside those phases (a failed fetch's
traceback holding its body, say) is still collected; the result is kept until the exit; and the
exit skips the teardown but not what matters in it: it waits like a normal exit for any
non-daemon thread still running, runs the ``atexit`` callbacks (logging's flush among them) and
flushes the output, exiting 120 as Python does when the output cannot be written (a full disk
must not pass for a complete ``diff --json``). The long-running ``worker`` exits normally.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading

#: Commands that run until stopped: they exit normally.
LONG_RUNNING = frozenset({"worker"})
#: The young generation's size for one-shot commands (Python's default: 700 containers).
ONE_SHOT_GEN0 = 20_000
#: Python's exit code when it cannot flush standard output at exit.
EXIT_UNWRITABLE = 120


def run() -> None:
    gc.disable()  # ~110,000 containers built while importing, none of them garbage
    from . import bulk, cli

    gc.freeze()
    gc.enable()
    if LONG_RUNNING.intersection(sys.argv[1:]):
        raise SystemExit(cli.main())
    gc.set_threshold(ONE_SHOT_GEN0, *gc.get_threshold()[1:])
    bulk.FREEZE_ON_RESUME = True
    cli.KEEP_UNTIL_EXIT = []
    code = cli.main()
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread()
           for t in threading.enumerate()):
        raise SystemExit(code)  # the normal exit waits for it
    atexit._run_exitfuncs()
    os._exit(flushed(code))


def flushed(code: int) -> int:
    """Flush standard output and error; the exit code, or 120 when the output could not be
    written (as Python's own exit reports it)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"litemaas-sync: could not write the output: {exc}\n")
        code = EXIT_UNWRITABLE
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    return code
