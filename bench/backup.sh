#!/bin/sh
# Backup and restore, hafen against Debian's restic, side by side in one run, on the reference
# dataset (bench/gen_dataset.py, default 2048 MB) placed in the data volume of a deployed stack:
# first backup, second backup after a small change, full restore with peak RSS.
# hafen backs up through its daemon (`hafen backup run`, which includes its structural check);
# restic backs up the same volume directory. Restores: `hafen restore --repo … --identity …`
# (offline) and `restic restore`. Page cache is dropped before each step where the kernel allows.
set -eu
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-2048}
cargo build --release --locked -q
H=./target/release/hafen
# The base image is built from Debian's packages (debootstrap); restic is the peer.
[ -x /usr/sbin/debootstrap ] && command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap restic >/dev/null; }
$H image build radicale >/dev/null

W=$(mktemp -d /var/tmp/hafen-bench-backup-XXXXXX)
cleanup() {
    $H --config "$W/hafen.yaml" stack remove benchdata --purge --confirm benchdata >/dev/null 2>&1 || true
    kill "$(cat "$W/pid" 2>/dev/null)" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/stacks/benchdata"
sed 's/^id: radicale$/id: benchdata/' stacks/radicale/stack.yaml > "$W/stacks/benchdata/stack.yaml"
cat > "$W/hafen.yaml" <<CFG
state_dir: $W/state
socket: $W/hafen.sock
stacks_dir: $W/stacks
images_dir: $PWD/images
backup_targets:
  - {name: bench, path: $W/hafen-repo}
backup_schedule: "0 0 2 1 1 *"
CFG
$H --config "$W/hafen.yaml" keys init --label bench | grep '^ *AGE-SECRET-KEY-1' | tr -d ' ' > "$W/identity.txt"
$H --config "$W/hafen.yaml" serve 2>"$W/daemon.log" & echo $! > "$W/pid"
for i in $(seq 50); do $H --config "$W/hafen.yaml" healthcheck >/dev/null 2>&1 && break; sleep 0.2; done
$H --config "$W/hafen.yaml" stack deploy benchdata --set http_port=18797 --wait 120 >/dev/null
VOL=$(docker volume inspect -f '{{.Mountpoint}}' hafen-benchdata-collections)
echo "generating ${SIZE_MB} MB into $VOL …" >&2
python3 bench/gen_dataset.py "$VOL/dataset" "$SIZE_MB"
chown -R 1002:1002 "$VOL/dataset"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
m() { python3 bench/measure.py "$@" 2>&1 >/dev/null | tail -n 1; }
export RESTIC_PASSWORD=benchmark-password-benchmark-password RESTIC_CACHE_DIR="$W/restic-cache"
restic init -r "$W/restic-repo" >/dev/null

drop; h1=$(MEASURE_STDOUT="$W/h1.json" m $H --config "$W/hafen.yaml" backup run benchdata --json)
drop; r1=$(m restic -r "$W/restic-repo" backup "$VOL")
python3 bench/gen_dataset.py --mutate "$VOL/dataset"
drop; h2=$(MEASURE_STDOUT="$W/h2.json" m $H --config "$W/hafen.yaml" backup run benchdata --json)
drop; r2=$(m restic -r "$W/restic-repo" backup "$VOL")
drop; h3=$(m $H restore --repo "$W/hafen-repo" --identity "$W/identity.txt" latest --stack benchdata --path /volumes/collections --to "$W/restore-hafen")
drop; r3=$(m restic -r "$W/restic-repo" restore latest --target "$W/restore-restic")
diff -r "$VOL" "$W/restore-hafen" >/dev/null && same=identical || same=DIFFERENT
python3 - "$h1" "$r1" "$h2" "$r2" "$h3" "$r3" "$same" "$SIZE_MB" "$W/h1.json" "$W/h2.json" <<'PY'
import json, sys
h1, r1, h2, r2, h3, r3 = (tuple(map(float, a.split())) for a in sys.argv[1:7])
same, size = sys.argv[7], sys.argv[8]
print(f"backup and restore of a {size} MB dataset, hafen vs restic {''}(wall s, peak RSS MB of the command)")
print(f"  first backup   hafen {h1[0]:7.2f}s  restic {r1[0]:7.2f}s  ratio {h1[0]/r1[0]:.2f}  (target <= 0.9)")
print(f"  second backup  hafen {h2[0]:7.2f}s  restic {r2[0]:7.2f}s  ratio {h2[0]/r2[0]:.2f}  (target <= 1.0)")
print(f"  full restore   hafen {h3[0]:7.2f}s  restic {r3[0]:7.2f}s  ratio {h3[0]/r3[0]:.2f}  (target <= 0.8)")
print(f"  restore peak RSS hafen {h3[1]:.0f} MB, restic {r3[1]:.0f} MB  (target <= 512 MB); restored data {same}")
for name, f in (("first", sys.argv[9]), ("second", sys.argv[10])):
    rep = json.load(open(f))
    print(f"  hafen {name} backup, steps: " + ", ".join(f"{s['step']} {s['seconds']:.2f}s" for s in rep["steps"]))
print("  note: hafen's backup time is the CLI round trip of `hafen backup run` (daemon does the work,")
print("  including a structural check); its peak RSS is the daemon's, not shown here")
PY
