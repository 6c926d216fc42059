#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Regenerates the README's screenshots: the desktop app (offscreen) serving real traffic from
# the fake OpenAI provider for a few minutes (priced models, so the dashboard shows what the
# batches saved), then `--screenshot` of three pages: dashboard.png, first-run.png (the Connect
# a client panel, as Help → Connect a client shows it) and settings.png, in this folder.
#
#   resources/screenshots/capture.sh BUILD_DIR [SECONDS]
#
# Needs curl. Uses its own config, runtime and data folders (nothing of yours is touched).
set -euo pipefail

build="$(cd "${1:?usage: capture.sh BUILD_DIR [SECONDS]}" && pwd)"
seconds="${2:-240}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d -t llm-proxy-screenshots.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/config" "$work/run" "$work/data" "$work/state"
chmod 700 "$work/run"

# Batches that take about a minute: validating 5 s, in progress 40 s, finalizing 2 s.
"$build/tests/support/fake-openai" --port 0 --validation-delay-ms 5000 \
    --processing-delay-ms 40000 >"$work/fake.out" 2>&1 &
until grep -q 'listening on' "$work/fake.out"; do sleep 0.1; done
upstream="$(sed -n 's/^listening on //p' "$work/fake.out")"
curl -s -X POST "${upstream%/v1}/_fake/config" -d '{"finalizing_delay_ms":2000}' >/dev/null

env -u DISPLAY -u WAYLAND_DISPLAY -u OPENAI_API_KEY QT_QPA_PLATFORM=offscreen \
    XDG_CONFIG_HOME="$work/config" XDG_RUNTIME_DIR="$work/run" XDG_DATA_HOME="$work/data" \
    DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent \
    "$build/app/llm-proxy" --listen 127.0.0.1:0 --upstream "$upstream" --batch-window 10s \
    --poll-interval 1s --data-dir "$work/state" --screenshot "$here" \
    --screenshot-page dashboard --screenshot-page first-run --screenshot-page settings \
    --screenshot-delay "${seconds}s" >"$work/proxy.out" 2>&1 &
proxy=$!
until grep -q 'llm-proxy listening on' "$work/proxy.out"; do sleep 0.1; done
base="$(sed -n 's/^llm-proxy listening on //p' "$work/proxy.out" | head -1)"

send() { # endpoint body key
    curl -s -o /dev/null --max-time 600 "$base/$1" -H "Authorization: Bearer $3" \
        -H 'Content-Type: application/json' -d "$2" || true
}
# Documents of 2,000 words (the fake counts a token a word and echoes the text), so that the
# money panel has cents to show: gpt-4o-mini mostly, gpt-4o every fourth request.
document="$(printf 'the quarterly report lists revenue costs and margins by region %.0s' \
    $(seq 200))"
end=$((SECONDS + seconds - 5))
i=0
while [ $SECONDS -lt $end ]; do
    i=$((i + 1))
    model=gpt-4o-mini
    if [ $((i % 4)) -eq 0 ]; then model=gpt-4o; fi
    send chat/completions "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"question $i: summarise $document\"}]}" sk-screenshot-key-aaaa-0123 &
    if [ $((i % 3)) -eq 0 ]; then
        send embeddings "{\"model\":\"text-embedding-3-small\",\"input\":\"text $i\"}" sk-screenshot-key-bbbb-4567 &
    fi
    if [ $((i % 25)) -eq 0 ]; then
        curl -s -o /dev/null "$base/models" -H 'Authorization: Bearer sk-screenshot-key-aaaa-0123' &
    fi
    sleep 0.3
done
wait "$proxy"
echo "wrote $here/dashboard.png, $here/first-run.png and $here/settings.png"
