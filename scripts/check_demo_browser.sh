#!/usr/bin/env bash
# Headless-browser check of `reflow serve`: Debian's chromium loads the demo page, which submits
# a prompt from its URL (generate=1), and the generated image must be in the page's DOM.
# With --screenshot FILE it also saves a picture of the page after one request per model
# (SHOT_MODELS, default teacher,2-rf,student; README: docs/serve_demo.png).
#
#   bash scripts/check_demo_browser.sh [--screenshot docs/serve_demo.png] [CHECKPOINT_OR_RUN ...]
#
# Needs `apt-get install chromium` (about 300 MB, so CI does not install it) and a release
# build (swift build -c release). Checkpoints default to runs/quickstart (reflow --config
# experiments/quickstart.yaml). Exits 0 when the image was found.
set -euo pipefail
cd "$(dirname "$0")/.."
shot=""
if [ "${1:-}" = "--screenshot" ]; then shot="$2"; shift 2; fi
[ $# -gt 0 ] || set -- runs/quickstart
command -v chromium >/dev/null || { echo "check_demo_browser: chromium is not installed (apt-get install chromium)" >&2; exit 2; }
[ -x .build/release/reflow ] || { echo "check_demo_browser: build first: swift build -c release" >&2; exit 2; }

tmp=$(mktemp -d)
.build/release/reflow serve "$@" --port 0 >"$tmp/out" 2>"$tmp/err" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
url=""
for _ in $(seq 1 200); do
    url=$(grep -o 'http://[^ ]*' "$tmp/out" | head -1 || true)
    [ -n "$url" ] && break
    kill -0 $server 2>/dev/null || { cat "$tmp/err" >&2; echo "check_demo_browser: the server did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "check_demo_browser: no URL from reflow serve within 20 s" >&2; exit 1; }

browse() {  # chromium flags... URL; headless, no GPU, a fresh profile, a fixed virtual-time budget
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$tmp/profile" \
        --virtual-time-budget=20000 "$@" 2>>"$tmp/chromium.log"
}

page="${url}?prompt=the+number+7&count=8&generate=1"
browse --dump-dom "$page" >"$tmp/dom.html"
if ! grep -q '<img id="result-1" class="result" src="data:image/png;base64,' "$tmp/dom.html"; then
    echo "check_demo_browser: FAIL: no generated image in the page's DOM ($page)" >&2
    grep -o '<div id="error">[^<]*' "$tmp/dom.html" >&2 || true
    exit 1
fi
timing=$(grep -o '[0-9.]* ms to generate ([0-9.]* ms in the server)' "$tmp/dom.html" | head -1)
echo "check_demo_browser: OK: chromium found the generated image in the DOM ($timing) at $page"
if [ -n "$shot" ]; then
    # One request per model, newest first on the page (SHOT_MODELS: ids from /api/models).
    shotpage="${url}?prompt=the+number+7&count=4&models=${SHOT_MODELS:-teacher,2-rf,student}"
    browse --dump-dom "$shotpage" | grep -q '<img id="result-1" class="result"' || { echo "check_demo_browser: FAIL: no image at $shotpage" >&2; exit 1; }
    browse --screenshot="$tmp/shot.png" --window-size=1150,520 "$shotpage" >/dev/null
    mkdir -p "$(dirname "$shot")" && mv "$tmp/shot.png" "$shot"
    echo "check_demo_browser: wrote $shot"
fi
