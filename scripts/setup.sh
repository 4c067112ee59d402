#!/usr/bin/env bash
# Make a fresh machine ready: uv, the locked environment, and (for tests) PostgreSQL running.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv" >&2
  python3 -m pip install --quiet uv
fi
# Bytecode compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on this sandbox) Python
# would otherwise compile every module it imports at every start, and `relance --help` would take
# 0.5–1.8 s instead of 0.15–0.25 s (docs/benchmarks.md, « CLI start »).
uv sync --frozen --quiet --compile-bytecode
uv run --frozen python -m compileall -q relance_fs targeting channels campaigns flows console \
  >/dev/null

# WeasyPrint (PDF letters) needs Pango from the system.
if ! ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0; then
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing Pango for WeasyPrint" >&2
    (apt-get update -q >/dev/null 2>&1 || true)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libpango-1.0-0 libpangoft2-1.0-0 \
      libharfbuzz-subset0 fonts-dejavu-core >/dev/null 2>&1 \
      || echo "setup: could not install Pango; PDF letters will not render" >&2
  else
    echo "setup: Pango is missing; install libpango-1.0-0 libpangoft2-1.0-0 for PDF letters" >&2
  fi
fi

# The console's look (DSFR, the State's design system) and the accessibility checker (axe-core),
# locked in tools/ui/package-lock.json; the console falls back to plain pages without them.
if [[ ! -f tools/ui/node_modules/@gouvfr/dsfr/dist/dsfr.min.css || ! -f tools/ui/node_modules/axe-core/axe.min.js ]]; then
  if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing node and npm for the design system" >&2
    (apt-get update -q >/dev/null 2>&1 || true)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null 2>&1 || true
  fi
  echo "setup: installing the design system (DSFR) and axe-core" >&2
  npm ci --prefix tools/ui --no-audit --no-fund --loglevel=error >/dev/null \
    || echo "setup: could not install DSFR; the console will serve plain pages" >&2
fi

if [[ "${1:-}" == "--tests" ]]; then
  url="${RELANCE_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "setup: starting PostgreSQL" >&2
    if command -v pg_ctlcluster >/dev/null 2>&1; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  echo "setup: tests will use PostgreSQL at ${url}" >&2
  # Contract tests run the real SDKs against Prism serving the providers' OpenAPI files.
  if [[ ! -x tools/prism/node_modules/.bin/prism ]]; then
    if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
      echo "setup: installing node and npm for the contract mocks" >&2
      (apt-get update -q >/dev/null 2>&1 || true)
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null 2>&1 || true
    fi
    echo "setup: installing the contract mock server (Prism)" >&2
    npm ci --prefix tools/prism --no-audit --no-fund --loglevel=error >/dev/null \
      || echo "setup: could not install Prism; contract tests will fail in CI" >&2
  fi
  # Browser tests drive Debian's Chromium through Playwright.
  if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing chromium for the browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1) \
      || echo "setup: could not install chromium; browser tests will be skipped" >&2
  fi
fi
