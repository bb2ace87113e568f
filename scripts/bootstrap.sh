#!/usr/bin/env bash
# Installs what Ferry's tests, demo and benchmarks need on a fresh Debian machine, and only what
# is missing: Debian's docker-registry, skopeo and apache2-utils (htpasswd), a virtualenv with the
# pinned Python packages, and the pinned npm packages (Azurite; semver for a test). With --test
# (make test) also what only tests need: checkov (291 MB, the infra checks), Debian's chromium (the
# status page's browser tests) and Renovate's npm packages; make up and make demo do without them.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# The status page's browser tests (--test only, i.e. make test): Debian's chromium, driven by Playwright.
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  # policy-rc.d keeps the package from starting a system-wide registry on :5000.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  $sudo rm -f /usr/sbin/policy-rc.d
fi

python=${PYTHON:-python3}
stamp=.venv/.installed

# Ferry's own modules compiled ahead, as pip compiles every package it installs and as a
# deployment package should be (a read-only package cannot cache them): with
# PYTHONDONTWRITEBYTECODE set, each run would otherwise compile all of shared/ again (~45 ms).
compile_ferry() {
  "$1" -m compileall -q -j 0 shared functions function_app.py >/dev/null
}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages" >&2
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi
# The `ferry` command (pyproject's [project.scripts]), editable: it runs this checkout's code.
if [ ! -x .venv/bin/ferry ] || [ pyproject.toml -nt .venv/bin/ferry ]; then
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  touch .venv/bin/ferry
fi

if [ "${1:-}" = "--runtime" ]; then
  # A virtualenv with the runtime requirements only, as the function app has: the benchmark
  # times Ferry's CLI from it.
  if [ ! -f .venv-runtime/.installed ] || [ requirements.txt -nt .venv-runtime/.installed ]; then
    "$python" -m venv .venv-runtime
    .venv-runtime/bin/pip install -q --disable-pip-version-check -r requirements.txt
    touch .venv-runtime/.installed
  fi
  compile_ferry .venv-runtime/bin/python
  exit 0
fi

# checkov scans infra/ in make test only. It pins many packages of its own, so it lives apart.
if [ "${1:-}" = "--test" ] && { [ ! -f .venv-checkov/.installed ] || [ requirements-checkov.txt -nt .venv-checkov/.installed ]; }; then
  echo "bootstrap: installing checkov" >&2
  "$python" -m venv .venv-checkov
  .venv-checkov/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
  touch .venv-checkov/.installed
fi

if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
  echo "bootstrap: installing npm packages (azurite)" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules/.installed
fi

# Renovate, whose docker versioning tests/test_tags_renovate.py compares Ferry's tag model with:
# ~250 MB without its optional packages, one to three minutes from scratch, so `make test` alone
# asks for it (--test); `make up` and `make demo` never install it. --ignore-scripts: none of its
# install scripts is needed for the one module the test loads.
if [ "${1:-}" = "--test" ]; then
  if [ ! -f tests/renovate/node_modules/.installed ] || [ tests/renovate/package-lock.json -nt tests/renovate/node_modules/.installed ]; then
    echo "bootstrap: installing npm packages for the tests (renovate)" >&2
    (cd tests/renovate && npm ci --ignore-scripts --omit=optional --no-audit --no-fund --loglevel=error >/dev/null)
    touch tests/renovate/node_modules/.installed
  fi
fi

compile_ferry .venv/bin/python
