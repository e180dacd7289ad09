#!/bin/sh
# Resident memory and CPU of the idle daemon with both stacks (tryton, radicale) deployed and
# healthy, probes on their 30 s interval, sampled from /proc over a window (default 120 s).
# Peer for scale: dockerd's own CPU over the same window. Prints the ratios to the targets
# (RSS ≤ 30 MB, CPU ≤ 0.5 % of one core).
set -eu
cd "$(dirname "$0")/.."
WINDOW=${WINDOW:-120}
cargo build --release --locked -q
H=./target/release/hafen
$H image build postgres15 tryton60 radicale >/dev/null

W=$(mktemp -d /tmp/hafen-idle-XXXXXX)
cleanup() {
    $H --config "$W/hafen.yaml" stack remove idletryton --purge --confirm idletryton >/dev/null 2>&1 || true
    $H --config "$W/hafen.yaml" stack remove idleradicale --purge --confirm idleradicale >/dev/null 2>&1 || true
    kill "$(cat "$W/pid")" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/stacks/idletryton" "$W/stacks/idleradicale"
sed 's/^id: tryton$/id: idletryton/' stacks/tryton/stack.yaml > "$W/stacks/idletryton/stack.yaml"
sed 's/^id: radicale$/id: idleradicale/' stacks/radicale/stack.yaml > "$W/stacks/idleradicale/stack.yaml"
cat > "$W/hafen.yaml" <<CFG
state_dir: $W/state
socket: $W/hafen.sock
stacks_dir: $W/stacks
images_dir: $PWD/images
CFG
$H --config "$W/hafen.yaml" serve 2>"$W/daemon.log" & echo $! > "$W/pid"
PID=$(cat "$W/pid")
for i in $(seq 50); do $H --config "$W/hafen.yaml" healthcheck >/dev/null 2>&1 && break; sleep 0.2; done
$H --config "$W/hafen.yaml" stack deploy idletryton --set http_port=18795 --wait 900 >/dev/null
$H --config "$W/hafen.yaml" stack deploy idleradicale --set http_port=18796 --wait 300 >/dev/null
sleep 10
DPID=$(pidof dockerd | cut -d' ' -f1)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
h0=$(ticks "$PID"); d0=$(ticks "$DPID"); t0=$(date +%s.%N)
sleep "$WINDOW"
h1=$(ticks "$PID"); d1=$(ticks "$DPID"); t1=$(date +%s.%N)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
python3 - "$h0" "$h1" "$d0" "$d1" "$t0" "$t1" "$HZ" "$rss_kb" <<'PY'
import sys
h0, h1, d0, d1, t0, t1, hz, rss = map(float, sys.argv[1:])
wall = t1 - t0
cpu = (h1 - h0) / hz / wall * 100
dcpu = (d1 - d0) / hz / wall * 100
print(f"idle daemon, both stacks deployed and healthy, {wall:.0f} s window")
print(f"  hafen RSS {rss/1024:.1f} MB   ratio to target 30 MB: {rss/1024/30:.2f}")
print(f"  hafen CPU {cpu:.3f} % of one core   ratio to target 0.5 %: {cpu/0.5:.2f}")
print(f"  peer: dockerd CPU over the same window {dcpu:.3f} % (hafen/dockerd {cpu/dcpu if dcpu else float('nan'):.2f})")
PY
