#!/usr/bin/env bash
# One command from a fresh clone to a rendered demo map: system packages, a virtualenv with
# servicemap and its test tools, then the demo traces rendered to demo-map.{json,svg,html}.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

missing=()
command -v dot >/dev/null || missing+=(graphviz)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get" >&2
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "setup: could not install ${missing[*]}; install them by hand (apt-get install ${missing[*]})" >&2
fi
# Chromium, for the test that opens the HTML map in a real headless browser (~30 s with
# apt-get). Optional: without it that one test is skipped and says why.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "setup: installing chromium with apt-get (for the HTML page's browser test)" >&2
  { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "setup: could not install chromium; the browser test will be skipped (apt-get install chromium)" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

demo=fixtures/demo/traces.otlp.json
.venv/bin/servicemap render "$demo" --format json -o demo-map.json
.venv/bin/servicemap render "$demo" --format html -o demo-map.html
if command -v dot >/dev/null; then
  .venv/bin/servicemap render "$demo" --format svg -o demo-map.svg
  echo "setup: done — the demo map is in demo-map.svg, demo-map.html and demo-map.json"
else
  echo "setup: done — the demo map is in demo-map.html (tables only: graphviz is missing) and demo-map.json"
fi
