#!/bin/sh
# Checks the crate boundaries that docs/ARCHITECTURE.md draws, from Cargo's own dependency graph,
# so they cannot regress: the API contract and the pure core pull in no runtime, engine, store,
# backup, crypto-at-rest, mail or HTTP crate (not even indirectly), and each dangerous crate has
# exactly one hafen crate that depends on it directly. Prints every breach; exits 1 on any.
set -eu
cd "$(dirname "$0")/.."

forbidden="tokio bollard rusqlite rustic_core rustic_backend age reqwest lettre hyper axum"
fail=0

for krate in hafen-api hafen-core; do
    tree=$(cargo tree --locked -q -p "$krate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
    for f in $forbidden; do
        if printf '%s\n' "$tree" | grep -qx "$f"; then
            echo "tests/deps.sh: $krate depends on $f (cargo tree -p $krate -e normal -i $f shows how)" >&2
            fail=1
        fi
    done
done

# hafen-api: serde, serde_json and chrono only (and what they pull in).
direct=$(cargo tree --locked -q -p hafen-api -e normal --depth 1 --prefix none --format '{p}' | awk 'NR>1 {print $1}' | sort -u | tr '\n' ' ')
if [ "$direct" != "chrono serde serde_json " ]; then
    echo "tests/deps.sh: hafen-api may depend on serde, serde_json and chrono only; it depends on: $direct" >&2
    fail=1
fi

# The one hafen crate allowed to use each dangerous crate directly (normal dependencies, read
# from `cargo metadata`; tests may use anything).
meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
cargo metadata --locked --format-version 1 --no-deps > "$meta"
python3 -c '
import json, sys
only = {"bollard": "hafen-engine", "rusqlite": "hafen-store", "rustic_core": "hafen-backup",
        "rustic_backend": "hafen-backup", "age": "hafen-backup", "lettre": "hafen-daemon",
        "axum": "hafen-daemon", "reqwest": "hafen-daemon", "clap": "hafen"}
users = {}
for p in json.load(open(sys.argv[1]))["packages"]:
    for d in p["dependencies"]:
        if d["kind"] is None and d["name"] in only:
            users.setdefault(d["name"], set()).add(p["name"])
bad = 0
for dep, owner in only.items():
    if users.get(dep, set()) != {owner}:
        print(f"tests/deps.sh: only {owner} may depend on {dep} directly; these do: {sorted(users.get(dep, []))}", file=sys.stderr)
        bad = 1
# Front ends reach the services of the daemon and the contract, never an adapter.
front = {d["name"] for p in json.load(open(sys.argv[1]))["packages"] if p["name"] == "hafen" for d in p["dependencies"] if d["kind"] is None and d["name"].startswith("hafen")}
if front != {"hafen-api", "hafen-core", "hafen-daemon"}:
    print(f"tests/deps.sh: the CLI may depend on hafen-api, hafen-core and hafen-daemon only; it depends on {sorted(front)}", file=sys.stderr)
    bad = 1
sys.exit(bad)
' "$meta" || fail=1

if [ "$fail" -ne 0 ]; then
    exit 1
fi
echo "tests/deps.sh: crate boundaries hold (hafen-api and hafen-core free of: $forbidden)"
