#!/usr/bin/env bash
# Renders a `zeekml report` HTML file to a PNG with headless Chromium, to
# check that the page opens offline and its charts draw.
#
#   bash tests/report_render.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
#
# Installs Debian's chromium package when no chromium is on the PATH (needs
# root, as on the project's machines). Chromium runs with networking
# pointed at a closed proxy, so a page that needed anything from the network
# would render without it. Exits non-zero when Chromium writes no PNG.
set -euo pipefail

report=${1:?usage: tests/report_render.sh REPORT.html OUT.png [WIDTH] [HEIGHT]}
out=${2:?usage: tests/report_render.sh REPORT.html OUT.png [WIDTH] [HEIGHT]}
width=${3:-1360}
height=${4:-2400}

if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

report=$(realpath "$report")
rm -f "$out"
profile=$(mktemp -d /tmp/report-chromium-XXXXXX)
trap 'rm -rf "$profile"' EXIT
# --proxy-server to a closed port: no request can leave the machine.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --proxy-server=127.0.0.1:9 \
    --window-size="$width,$height" --screenshot="$out" "file://$report" \
    >/dev/null 2>&1 || true
if [[ ! -s "$out" ]]; then
    echo "chromium wrote no screenshot to $out" >&2
    exit 1
fi
echo "rendered $report -> $out (${width}x${height})"
