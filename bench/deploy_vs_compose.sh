#!/bin/sh
# Wall time of `hafen stack deploy tryton` (first deploy: network, volumes, secrets, two
# services) against `docker-compose up -d` of the equivalent Compose file (bench/compose/
# tryton.yml), images already built, side by side in one run, N rounds each, alternating.
# Prints the medians and the ratio hafen/compose (target ≤ 1.2).
set -eu
cd "$(dirname "$0")/.."
N=${N:-5}
cargo build --release --locked -q
H=./target/release/hafen
$H image build postgres15 tryton60 >/dev/null

W=$(mktemp -d /tmp/hafen-bench-XXXXXX)
trap 'kill $(cat "$W/pid" 2>/dev/null) 2>/dev/null || true; docker-compose -p hafenbench -f bench/compose/tryton.yml down -v >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
mkdir -p "$W/stacks/benchtryton"
sed 's/^id: tryton$/id: benchtryton/' stacks/tryton/stack.yaml > "$W/stacks/benchtryton/stack.yaml"
cat > "$W/hafen.yaml" <<CFG
state_dir: $W/state
socket: $W/hafen.sock
stacks_dir: $W/stacks
images_dir: $PWD/images
reconcile_interval: 5s
CFG
$H --config "$W/hafen.yaml" serve 2>"$W/daemon.log" & echo $! > "$W/pid"
for i in $(seq 50); do $H --config "$W/hafen.yaml" healthcheck >/dev/null 2>&1 && break; sleep 0.2; done

specs=$($H --config "$W/hafen.yaml" stack render benchtryton)
export PG_IMAGE=$(echo "$specs" | python3 -c 'import json,sys; print([s["image"] for s in json.load(sys.stdin) if s["service"]=="db"][0])')
export TRYTON_IMAGE=$(echo "$specs" | python3 -c 'import json,sys; print([s["image"] for s in json.load(sys.stdin) if s["service"]=="server"][0])')
export SECRETS="$W/compose-secrets" HTTP_PORT=18791
mkdir -p "$SECRETS/db" "$SECRETS/server"
for f in db/db_password server/db_password server/admin_password; do head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 > "$SECRETS/$f"; done
chown 999:999 "$SECRETS/db/db_password"; chown 1001:1001 "$SECRETS"/server/*; chmod 0400 "$SECRETS"/*/*

now() { date +%s.%N; }
hafen_times=""; compose_times=""
for i in $(seq "$N"); do
    t0=$(now); $H --config "$W/hafen.yaml" stack deploy benchtryton --set http_port=18790 --wait 0 >/dev/null; t1=$(now)
    hafen_times="$hafen_times $(python3 -c "print($t1 - $t0)")"
    $H --config "$W/hafen.yaml" stack remove benchtryton --purge --confirm benchtryton >/dev/null
    t0=$(now); docker-compose -p hafenbench -f bench/compose/tryton.yml up -d >/dev/null 2>&1; t1=$(now)
    compose_times="$compose_times $(python3 -c "print($t1 - $t0)")"
    docker-compose -p hafenbench -f bench/compose/tryton.yml down -v >/dev/null 2>&1
done
python3 - "$hafen_times" "$compose_times" <<'PY'
import statistics, sys
h = [float(x) for x in sys.argv[1].split()]
c = [float(x) for x in sys.argv[2].split()]
mh, mc = statistics.median(h), statistics.median(c)
print(f"deploy tryton (first deploy, images built), {len(h)} rounds each")
print(f"  hafen stack deploy   median {mh:.2f}s  runs {' '.join(f'{x:.2f}' for x in h)}")
print(f"  docker-compose up -d median {mc:.2f}s  runs {' '.join(f'{x:.2f}' for x in c)}")
print(f"  ratio hafen/compose  {mh/mc:.2f}  (target <= 1.2)")
PY
