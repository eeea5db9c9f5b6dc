"""A real LiteLLM proxy for tests, in a virtual environment of its own.

The proxy (``litellm[proxy]``, ~760 MB) is installed once per machine under
``$LITEMAAS_TEST_CACHE/litellm-venv`` (default ``~/.cache/litemaas-sync/litellm-venv``),
never into the project's environment. It runs on 127.0.0.1 without a database and without
reaching the internet (see ``PROXY_ENV``). Start one proxy per test session, not per test:
start-up takes several seconds.

    from tests.litellm_proxy import LiteLLMProxy, model

    with LiteLLMProxy() as proxy:
        proxy.start([model("gpt-4o", "openai/gpt-4o")], master_key="sk-test")
        requests.get(f"{proxy.base_url}/model/info", headers=proxy.auth_headers)

Command line (installs, or serves a config until interrupted, or prints ``/model/info``)::

    python -m tests.litellm_proxy install
    python -m tests.litellm_proxy serve CONFIG.json [--port N]
    python -m tests.litellm_proxy model-info CONFIG.json

Never call the proxy's plain ``/health``: it sends real requests to every configured provider.
Use ``/health/readiness`` or ``/health/liveliness``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

LITELLM_VERSION = "1.108.7"
PRISMA_VERSION = "0.15.0"
# prisma is needed even without a database: without it a request with no key answers 500, not 401.
REQUIREMENTS: tuple[str, ...] = (f"litellm[proxy]=={LITELLM_VERSION}", f"prisma=={PRISMA_VERSION}")

DEAD_API_BASE = "http://127.0.0.1:9/v1"
"""An ``api_base`` nobody listens on: the proxy probes ``api_base`` at start-up."""

PROXY_ENV: dict[str, str] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
}
"""Environment that keeps the proxy off the internet (``DATABASE_URL`` is removed as well)."""

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
_MARKER_NAME = ".litemaas-requirements.json"

# Keys of a config entry's ``litellm_params`` (besides ``model``) that ``model()`` routes there.
# Everything else given to ``model()`` goes to ``model_info``.
LITELLM_PARAM_KEYS = frozenset(
    {
        "api_base",
        "api_version",
        "api_key",
        "aws_region_name",
        "custom_llm_provider",
        "rpm",
        "tpm",
        "timeout",
        "input_cost_per_token",
        "output_cost_per_token",
        "input_cost_per_second",
        "output_cost_per_second",
        "organization",
        "vertex_project",
        "vertex_location",
    }
)


class LiteLLMHarnessError(RuntimeError):
    """The test LiteLLM proxy could not be installed, started or stopped."""


def _log(message: str) -> None:
    print(f"[litellm-proxy] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- install


def cache_dir() -> Path:
    """``$LITEMAAS_TEST_CACHE``, else ``~/.cache/litemaas-sync``."""
    configured = os.environ.get("LITEMAAS_TEST_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "litemaas-sync"


def venv_dir() -> Path:
    """Where the proxy's virtual environment lives."""
    return cache_dir() / "litellm-venv"


def litellm_executable() -> Path:
    """The ``litellm`` command inside the proxy's virtual environment."""
    return venv_dir() / "bin" / "litellm"


def _wanted_marker() -> dict[str, Any]:
    return {
        "requirements": list(REQUIREMENTS),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def _installed_marker(venv: Path) -> dict[str, Any] | None:
    try:
        return json.loads((venv / _MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_installed() -> bool:
    """True when the venv exists with exactly the pinned requirements."""
    venv = venv_dir()
    return _installed_marker(venv) == _wanted_marker() and (venv / "bin" / "litellm").exists()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another process installing into {path.parent} ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: Sequence[str | os.PathLike[str]], what: str) -> None:
    _log(f"{what}: {' '.join(map(str, cmd))}")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    # pip's own output goes to stderr so that it shows as progress and never pollutes stdout.
    result = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, env=env, check=False)
    if result.returncode != 0:
        raise LiteLLMHarnessError(
            f"{what} failed (exit {result.returncode}): {' '.join(map(str, cmd))}. "
            f"Install by hand with `python -m tests.litellm_proxy install` to see why; "
            f"the environment is {venv_dir()}."
        )


def ensure_installed() -> Path:
    """Create the proxy's venv with the pinned packages if it is missing or stale.

    Idempotent and safe to call from several processes at once (a file lock serialises the
    install). Returns the path of the ``litellm`` executable. Raises ``LiteLLMHarnessError``
    when the install fails: tests that need the proxy must fail, never skip.
    """
    if is_installed():
        return litellm_executable()
    venv = venv_dir()
    with _file_lock(cache_dir() / "litellm-venv.lock"):
        if is_installed():  # another process finished while we waited
            return litellm_executable()
        started = time.monotonic()
        if venv.exists():
            _log(f"{venv} holds other versions than {', '.join(REQUIREMENTS)}: recreating it")
            shutil.rmtree(venv)
        _log(f"installing {', '.join(REQUIREMENTS)} into {venv} (about a minute, ~760 MB)")
        _run([sys.executable, "-m", "venv", str(venv)], "creating the virtual environment")
        python = venv / "bin" / "python"
        _run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                *REQUIREMENTS,
            ],
            "installing LiteLLM",
        )
        if not (venv / "bin" / "litellm").exists():
            raise LiteLLMHarnessError(f"installed {REQUIREMENTS} but {venv}/bin/litellm is missing")
        (venv / _MARKER_NAME).write_text(json.dumps(_wanted_marker(), indent=2) + "\n")
        _log(f"installed in {time.monotonic() - started:.0f} s")
    return litellm_executable()


# ---------------------------------------------------------------------------------------- config


def model(name: str, litellm_model: str, **extra: Any) -> dict[str, Any]:
    """One ``model_list`` entry: ``model(name, "provider/model", **params_and_info)``.

    Keyword arguments named in ``LITELLM_PARAM_KEYS`` (``api_base``, ``api_version``,
    ``aws_region_name``, ``input_cost_per_token``, ``output_cost_per_token``, ``rpm``, ...) go to
    ``litellm_params``; every other keyword (``description``, ``id``, ``team``, ``mode``,
    ``max_input_tokens``, ``supports_vision``, ...) goes to ``model_info``. ``litellm_params=`` and
    ``model_info=`` dicts are merged in as given, for keys this split gets wrong.

    OpenAI-compatible providers (``openai/``, ``hosted_vllm/``, ``text-completion-openai/``) get
    ``api_base=DEAD_API_BASE`` unless one is given, so the proxy never reaches a real provider.
    """
    params: dict[str, Any] = {"model": litellm_model}
    info: dict[str, Any] = {}
    params.update(extra.pop("litellm_params", {}) or {})
    info.update(extra.pop("model_info", {}) or {})
    for key, value in extra.items():
        (params if key in LITELLM_PARAM_KEYS else info)[key] = value
    provider = litellm_model.split("/", 1)[0]
    if provider in ("openai", "hosted_vllm", "text-completion-openai") and "api_base" not in params:
        params["api_base"] = DEAD_API_BASE
    entry: dict[str, Any] = {"model_name": name, "litellm_params": params}
    if info:
        entry["model_info"] = info
    return entry


def proxy_config(models: Sequence[dict[str, Any]], master_key: str) -> dict[str, Any]:
    """The whole proxy config: ``model_list`` plus ``general_settings.master_key``."""
    return {"model_list": list(models), "general_settings": {"master_key": master_key}}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------------------- proxy


class LiteLLMProxy:
    """A LiteLLM proxy process on 127.0.0.1, configured from a list of model entries.

    Use as a context manager (``stop()`` on exit). ``start()`` installs LiteLLM when needed,
    writes the config as JSON, starts the proxy and waits until ``/health/readiness`` answers 200.
    """

    def __init__(self, *, ready_timeout: float = READY_TIMEOUT_S, port: int | None = None) -> None:
        self.ready_timeout = ready_timeout
        self._fixed_port = port
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._starts = 0
        self.port: int | None = None
        self.master_key: str | None = None
        self.models: list[dict[str, Any]] = []
        self.config_path: Path | None = None
        self.log_path: Path | None = None
        self.last_start_seconds: float | None = None

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> LiteLLMProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # properties ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running proxy."""
        if self.port is None or not self.running:
            raise LiteLLMHarnessError("the proxy is not running: call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer <master key>``."""
        return {"Authorization": f"Bearer {self.master_key}"}

    # lifecycle -------------------------------------------------------------------------------
    def start(self, models: Sequence[dict[str, Any]], master_key: str) -> LiteLLMProxy:
        """Start the proxy serving ``models`` (see ``model()``) behind ``master_key``."""
        if self.running:
            raise LiteLLMHarnessError("the proxy is already running: use restart()")
        executable = ensure_installed()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="litellm-proxy-"))
        self._starts += 1
        self.master_key = master_key
        self.models = [dict(entry) for entry in models]
        self.config_path = self._workdir / f"config-{self._starts}.json"
        self.config_path.write_text(json.dumps(proxy_config(self.models, master_key), indent=2))
        self.log_path = self._workdir / f"litellm-{self._starts}.log"

        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV")
        }
        env.update(PROXY_ENV)
        env["PYTHONUNBUFFERED"] = "1"
        env["PATH"] = f"{executable.parent}{os.pathsep}{env.get('PATH', '')}"

        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            self.port = self._fixed_port or free_port()
            started = time.monotonic()
            # Kept open while the process runs; closed by _terminate().
            self._log_handle = open(self.log_path, "ab")  # noqa: SIM115
            self._process = subprocess.Popen(
                [
                    str(executable),
                    "--config",
                    str(self.config_path),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log_handle,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._workdir,
                start_new_session=True,  # its own process group, so stop() reaches its children
            )
            try:
                self._wait_ready()
            except LiteLLMHarnessError:
                port_taken = "address already in use" in self.log_tail(40).lower()
                self._terminate()
                if port_taken and attempt < attempts:
                    _log(f"port {self.port} was taken meanwhile; retrying on another port")
                    continue
                raise
            self.last_start_seconds = time.monotonic() - started
            _log(
                f"ready at {self.base_url} with {len(self.models)} deployments "
                f"in {self.last_start_seconds:.1f} s (log: {self.log_path})"
            )
            return self
        raise AssertionError("unreachable")

    def restart(
        self, models: Sequence[dict[str, Any]], master_key: str | None = None
    ) -> LiteLLMProxy:
        """Stop and start again with a new model list (the same master key unless given)."""
        key = master_key if master_key is not None else self.master_key
        if key is None:
            raise LiteLLMHarnessError("restart() before start(): no master key known")
        self._terminate()
        return self.start(models, key)

    def stop(self) -> None:
        """Terminate the proxy (SIGTERM, then SIGKILL) and remove its config and logs."""
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # helpers ---------------------------------------------------------------------------------
    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the proxy's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def get(
        self, path: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0
    ) -> tuple[int, Any]:
        """``GET base_url + path`` with the stdlib; returns ``(status, parsed JSON or text)``.

        Sends no key unless ``headers`` holds one (pass ``proxy.auth_headers``).
        """
        request = urllib.request.Request(self.base_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def model_info(self) -> list[dict[str, Any]]:
        """``/model/info``'s ``data`` list, asked with the master key."""
        status, body = self.get("/model/info", headers=self.auth_headers)
        if status != 200:
            raise LiteLLMHarnessError(f"/model/info answered {status}: {body!r}")
        return list(body["data"])

    def _wait_ready(self) -> None:
        assert self._process is not None and self.port is not None
        url = f"http://127.0.0.1:{self.port}/health/readiness"
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise LiteLLMHarnessError(
                    f"litellm exited with code {code} before it was ready; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LiteLLMHarnessError(
                    f"litellm was not ready after {self.ready_timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_S)
        if process is not None:
            # Children left in its process group (it was started as a session leader).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)


# ------------------------------------------------------------------------------------------- CLI


def _load_models(path: str) -> tuple[list[dict[str, Any]], str]:
    config = json.loads(Path(path).read_text())
    if isinstance(config, list):  # a bare model_list
        return config, "sk-litemaas-test"
    key = (config.get("general_settings") or {}).get("master_key")
    return config["model_list"], key or "sk-litemaas-test"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.litellm_proxy", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create the proxy's virtual environment if missing or stale")
    serve = sub.add_parser("serve", help="run a proxy for a JSON config (model_list) until Ctrl-C")
    serve.add_argument("config")
    serve.add_argument("--port", type=int)
    info = sub.add_parser(
        "model-info", help="start a proxy for a JSON config and print /model/info"
    )
    info.add_argument("config")
    args = parser.parse_args(argv)

    if args.command == "install":
        print(ensure_installed())
        return 0
    models, key = _load_models(args.config)
    with LiteLLMProxy(port=getattr(args, "port", None)) as proxy:
        proxy.start(models, key)
        if args.command == "model-info":
            json.dump({"data": proxy.model_info()}, sys.stdout, indent=2)
            print()
            return 0
        print(f"{proxy.base_url}  master key: {key}  (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while proxy.running:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
