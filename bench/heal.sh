#!/bin/sh
# Time from `kill -9` of a service's process to its restart: hafen (engine event → healer →
# start; Docker's restart policy is "no" for hafen's containers) against Docker's own restart
# policy alone (`--restart unless-stopped`, the peer), same image and command, side by side.
# The engine's own timestamps are used (State.FinishedAt → State.StartedAt), not polling.
# Rounds are 12 s apart so Docker's restart backoff starts over each time (its fairest case).
# Prints medians and the ratios hafen/Docker and hafen/target (3 s).
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
cargo build --release --locked -q
H=./target/release/hafen
$H image build radicale >/dev/null

W=$(mktemp -d /tmp/hafen-heal-XXXXXX)
PEER=hafen-bench-peer-$$
cleanup() {
    $H --config "$W/hafen.yaml" stack remove healbench >/dev/null 2>&1 || true
    docker rm -f "$PEER" >/dev/null 2>&1 || true
    kill "$(cat "$W/pid")" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/stacks"
cp -r bench/stacks/healbench "$W/stacks/"
cat > "$W/hafen.yaml" <<CFG
state_dir: $W/state
socket: $W/hafen.sock
stacks_dir: $W/stacks
images_dir: $PWD/images
metrics_listen: "off"
health:
  restart_limit: 100
CFG
$H --config "$W/hafen.yaml" serve 2>"$W/daemon.log" & echo $! > "$W/pid"
for i in $(seq 50); do $H --config "$W/hafen.yaml" healthcheck >/dev/null 2>&1 && break; sleep 0.2; done
$H --config "$W/hafen.yaml" stack deploy healbench >/dev/null
C=hafen-healbench-app
IMAGE=$(docker inspect -f '{{.Config.Image}}' $C)
docker run -d --name "$PEER" --restart unless-stopped --user 1002:1002 --memory 32m --entrypoint sleep "$IMAGE" infinity >/dev/null

# One round: kill -9 the container's process, wait for a new one, print the gap in seconds.
round() {
    pid=$(docker inspect -f '{{.State.Pid}}' "$1")
    if [ "$pid" -le 0 ]; then echo "bench/heal.sh: $1 is not running" >&2; exit 1; fi
    kill -9 "$pid"
    for i in $(seq 300); do
        new=$(docker inspect -f '{{.State.Pid}}' "$1")
        [ "$new" != "0" ] && [ "$new" != "$pid" ] && break
        sleep 0.05
    done
    docker inspect -f '{{.State.FinishedAt}} {{.State.StartedAt}}' "$1"
}
: > "$W/hafen.times"; : > "$W/docker.times"
sleep 3
for r in $(seq "$ROUNDS"); do
    round $C >> "$W/hafen.times"
    round "$PEER" >> "$W/docker.times"
    sleep 12
done
python3 - "$W/hafen.times" "$W/docker.times" <<'PY'
import sys, statistics, datetime
def gaps(path):
    out = []
    for line in open(path):
        a, b = line.split()
        p = lambda s: datetime.datetime.fromisoformat(s.rstrip("Z")[:26])
        out.append((p(b) - p(a)).total_seconds())
    return out
h, d = gaps(sys.argv[1]), gaps(sys.argv[2])
mh, md = statistics.median(h), statistics.median(d)
print(f"kill -9 → restarted, {len(h)} rounds each (engine timestamps)")
print(f"  hafen  median {mh:.3f} s  (all: {', '.join(f'{x:.2f}' for x in h)})")
print(f"  docker median {md:.3f} s  (all: {', '.join(f'{x:.2f}' for x in d)})  [peer: --restart unless-stopped]")
print(f"  ratio hafen/docker {mh/md:.2f}   ratio hafen/target 3 s {mh/3:.2f}")
PY
