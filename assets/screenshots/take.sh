#!/usr/bin/env bash
# Takes the README screenshots: runs `ferry --demo` in a private Xvfb display, clicks through
# the main views with xdotool and captures the window with ImageMagick's `import`.
#
# Needs: Xvfb, xdotool, imagemagick (apt-get install xvfb xdotool imagemagick).
# Usage: assets/screenshots/take.sh            (builds target/debug/ferry if needed)
#        FERRY_BIN=target/release/ferry assets/screenshots/take.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${FERRY_BIN:-$root/target/debug/ferry}"
display=":${FERRY_SHOT_DISPLAY:-97}"

for tool in Xvfb xdotool import convert; do
    command -v "$tool" >/dev/null || { echo "take.sh: $tool is missing (apt-get install xvfb xdotool imagemagick)" >&2; exit 1; }
done
[ -x "$bin" ] || (cd "$root" && cargo build -p ferry)

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

Xvfb "$display" -screen 0 1400x900x24 >/dev/null 2>&1 &
pids+=($!)
export DISPLAY="$display"
sleep 1

# A window, its id, and a helper to capture it into a small PNG.
start_ferry() {
    # Fresh config and window state (eframe keeps its own under XDG_DATA_HOME).
    FERRY_CONFIG_DIR="$work/config" XDG_DATA_HOME="$work/data" "$bin" "$@" >"$work/ferry.log" 2>&1 &
    pids+=($!)
    window="$(timeout 20 xdotool search --sync --name '^Ferry' | head -1)"
    sleep 3
}
shot() {
    import -window "$window" "$work/raw.png"
    convert "$work/raw.png" -strip -define png:compression-level=9 "$here/$1"
    echo "wrote $here/$1"
}
# Hover first: egui needs to see the pointer over a widget before the press.
click() {
    xdotool mousemove --window "$window" "$1" "$2"
    sleep 0.3
    xdotool click 1
    sleep "${3:-1.5}"
}

# 1. The welcome screen (no kubeconfig).
KUBECONFIG="$work/none" start_ferry
shot welcome.png
kill "${pids[-1]}"; sleep 0.5

# 2. The demo: pods, the kubia service, the forward dialog, the running tunnel.
start_ferry --demo
shot pods.png
click 110 19            # Services tab
click 240 195           # service kubia (4th row, sorted by name)
shot service-details.png
click 940 105           # Forward… (details panel at its default width)
shot forward-dialog.png
click 803 524 2         # Start forwarding
for _ in 1 2 3; do curl -s http://127.0.0.1:8080/ >/dev/null || true; done  # some traffic
sleep 1.5
shot tunnels.png

# 3. A shell in a kubia pod: Pods tab, the first kubia pod, Open shell, a few colours.
click 30 19             # Pods tab
click 290 195           # kubia-… (4th row, sorted by name)
click 858 417 2         # >_ Open shell (the terminal dock opens with the keyboard)
xdotool mousemove --window "$window" 640 650   # off the buttons: no tooltip in the shot
xdotool windowfocus "$window"
sleep 0.3
xdotool type --delay 20 'printf "\033[1;32mgreen\033[0m \033[1mbold\033[0m \033[7minverse\033[0m \033[38;5;208m256 colours\033[0m \033[38;2;120;160;255mtrue colour\033[0m\n"; ls -la / | head -6'
xdotool key Return
sleep 1.5
shot terminal.png
