#!/usr/bin/env bash
# Measures `ferry --demo` as a person runs it: time to the first frame, resident memory and CPU
# while idle (nothing changing), under a private Xvfb display.
# Usage: app/ferry/benches/startup_and_idle.sh [path/to/ferry]   (default target/debug/ferry)
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
bin="${1:-$root/target/debug/ferry}"
display=":${FERRY_BENCH_DISPLAY:-96}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

Xvfb "$display" -screen 0 1400x900x24 >/dev/null 2>&1 &
pids+=($!)
sleep 1
DISPLAY="$display" FERRY_CONFIG_DIR="$work/config" RUST_LOG="warn,ferry::startup=info" \
    "$bin" --demo >"$work/log" 2>&1 &
ferry=$!
pids+=($ferry)

deadline=$((SECONDS + 20))
until grep -q "first frame after" "$work/log"; do
    [ $SECONDS -lt $deadline ] || { echo "no first frame within 20 s"; cat "$work/log"; exit 1; }
    sleep 0.1
done
grep -o "first frame after [0-9]* ms" "$work/log"

sleep 8 # the demo cluster starts, lists arrive, then nothing changes
ticks() { awk '{print $14 + $15}' "/proc/$ferry/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks); sleep 10; after=$(ticks)
awk -v d=$((after - before)) -v hz="$hz" 'BEGIN { printf "idle CPU over 10 s: %.1f%% of one core\n", 100 * d / hz / 10 }'
# RssFile is mostly shared libraries (under Xvfb: Mesa's software GL with LLVM) and the
# binary's own pages; RssAnon is Ferry's private memory (heap, stacks, the demo cluster).
awk '/^(VmRSS|RssAnon|RssFile)/ { printf "idle %s %.0f MB\n", $1, $2 / 1024 }' "/proc/$ferry/status"
awk '/libLLVM|swrast|llvmpipe|dri/ { sum += $2 } END { printf "  of which Mesa/LLVM mappings (Rss): %.0f MB\n", sum / 1024 }' \
    <(awk '/^[0-9a-f]+-/ { lib = $6 } /^Rss:/ { print lib, $2 }' "/proc/$ferry/smaps")
