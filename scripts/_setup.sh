# Shared set-up for scripts/run and scripts/test: a project virtualenv with the right extras.
# Re-installs only when pyproject.toml changed (a stamp file records its hash).

PYTHON="${PYTHON:-python3}"

ensure_venv() {  # ensure_venv EXTRA  (ui | test | dev)
  local extra="$1"
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
  fi
  local stamp=".venv/.installed-$extra"
  local want
  want="$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing the project with the [$extra] extra" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extra]" >&2
    echo "$want" > "$stamp"
  fi
  # Bytecode for the project's own modules, as a non-editable install has it: with
  # PYTHONDONTWRITEBYTECODE set (as on our machines), every process would compile them again
  # (~0.04 s of each CLI run). Stale files are never used: Python compares them with the source.
  .venv/bin/python -m compileall -q sync_core benchmarks >/dev/null
}

ensure_chromium() {  # headless Chromium for the browser smoke test (Debian packages)
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "[setup] Chromium is missing and I cannot install it without root:" >&2
      echo "        run: sudo apt-get install -y chromium chromium-driver" >&2
      return 1
    fi
  fi
  echo "[setup] installing chromium and chromium-driver (Debian packages)" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
}
