"""``python -m sync_core`` with a short LiteLLM timeout and no real back-off sleeps.

The product has no setting for the LiteLLM timeout (30 s, three attempts, back-off 1 s + 2 s),
so a CI run of "LiteLLM hangs" through the real entry point would take 90 s. This wrapper only
changes those two client defaults (``RELIABILITY_TIMEOUT`` seconds, sleeps skipped) and then runs
the real ``sync_core.cli.main``. Back-off sleeps requested are printed to stderr as
``reliability: slept [..]`` so tests can count retries.
"""

from __future__ import annotations

import atexit
import os
import sys

from sync_core import cli, litellm, runtime

slept: list[float] = []


def main() -> int:
    timeout = float(os.environ.get("RELIABILITY_TIMEOUT", "0.5"))
    def factory(*args, **kwargs):  # type: ignore[no-untyped-def]
        # override whatever the runtime passes (LITELLM_TIMEOUT is whole seconds)
        return litellm.LiteLLMClient(*args, **{**kwargs, "timeout": timeout,
                                               "sleep": slept.append})

    runtime.LiteLLMClient = factory  # type: ignore[misc,assignment]
    atexit.register(lambda: print(f"reliability: slept {slept}", file=sys.stderr))
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
