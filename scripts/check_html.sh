#!/usr/bin/env bash
# Renders the `compare --html` page in headless Chromium and saves a screenshot, to look at the
# charts as a browser draws them. Needs Debian's chromium (`apt-get install -y chromium`).
#
#   scripts/check_html.sh [MODEL] [OUT_DIR]     # default: the built-in model, target/html-check
#
# Writes OUT_DIR/compare.html and OUT_DIR/compare.png and fails when Chromium cannot render the
# page or the screenshot is missing or empty.
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-}
out=${2:-target/html-check}
mkdir -p "$out"
out=$(cd "$out" && pwd)

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "chromium not found: apt-get update && apt-get install -y chromium" >&2
    exit 1
fi

cargo run --quiet -- compare ${model:+"$model"} --quiet --html "$out/compare.html" >/dev/null

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out/compare.png"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --hide-scrollbars --window-size=1100,2300 --screenshot="$out/compare.png" \
    "file://$out/compare.html" >/dev/null 2>&1 || true

if [ ! -s "$out/compare.png" ]; then
    echo "chromium did not render $out/compare.html" >&2
    exit 1
fi
echo "wrote $out/compare.html and $out/compare.png"
