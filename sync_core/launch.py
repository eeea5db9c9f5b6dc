"""The ``litemaas-sync`` process: the CLI (:mod:`sync_core.cli`) run as a one-shot program.

A one-shot command (everything but ``worker``) runs without the cyclic garbage collector and
exits without tearing the interpreter down. Both only cost it time: at 10,000 models the
collector spent 0.11 s walking objects that reference counting frees anyway (0.03 s of it
while importing, the rest in passes over the synced catalogue after the sync), and the
teardown of ~600 modules took 0.08 s of a 1.6 s process; for the same reason a sync's result
(its plan: every row) is kept until the exit rather than freed object by object (0.04 s).
What a normal exit does that matters is still done: the ``atexit`` callbacks (logging's flush
among them) and flushing the output.
The long-running ``worker`` keeps the collector on and exits normally.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys

#: Commands that run until stopped: they keep the collector and the normal exit.
LONG_RUNNING = frozenset({"worker"})


def run() -> None:
    one_shot = not LONG_RUNNING.intersection(sys.argv[1:])
    gc.disable()  # (also while importing: they leave ~110,000 containers to walk)
    from . import cli

    if not one_shot:
        gc.enable()
        raise SystemExit(cli.main())
    cli.KEEP_UNTIL_EXIT = []
    code = cli.main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say there
            stream.flush()
    os._exit(code)
