#!/bin/sh
# Starts a throw-away S3 server (Garage, single node, replication_factor = 1) for tests.
#
#   tests/servers/s3.sh DIR
#
# DIR is a work directory (created if missing). Garage keeps its metadata and data under DIR;
# its RPC, S3 and admin APIs listen on free ports of 127.0.0.1. It runs in the background (pid in
# DIR/pid, log in DIR/log) and is stopped by `tests/servers/stop.sh DIR`. A layout, one key and
# one bucket are created; the key may read and write the bucket. Prints to stdout (also kept in
# DIR/env):
#   ENDPOINT=http://127.0.0.1:PORT   path-style S3 endpoint
#   REGION=garage
#   BUCKET=hafen-test
#   ACCESS_KEY_ID=GK...
#   SECRET_ACCESS_KEY=...
# Run again on the same DIR while the server runs, it prints the same values again; run on a DIR
# whose server is gone, it starts an empty one.
#
# Garage is not in Debian: when its binary is missing it is built from crates.io once
# (`cargo install garage --version $GARAGE_VERSION --locked …`) into $HAFEN_GARAGE_ROOT
# (default /opt/hafen-test/garage), which takes a while on a small machine.
set -eu

GARAGE_VERSION=2.5.0
GARAGE_ROOT=${HAFEN_GARAGE_ROOT:-/opt/hafen-test/garage}
GARAGE=$GARAGE_ROOT/bin/garage
BUCKET=hafen-test
REGION=garage

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR | --install" >&2
    exit 2
fi
INSTALL_ONLY=0
if [ "$1" = "--install" ]; then
    # tests/run: build garage up front, before the tests run in parallel.
    INSTALL_ONLY=1
    DIR=/nonexistent
else
    mkdir -p "$1"
    DIR=$(cd "$1" && pwd)
fi

if [ -s "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null && [ -s "$DIR/env" ]; then
    cat "$DIR/env"
    exit 0
fi

missing=""
command -v ss >/dev/null 2>&1 || missing="$missing iproute2"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v flock >/dev/null 2>&1 || missing="$missing util-linux"
[ -x "$GARAGE" ] || command -v cc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing packages ($missing) and not root, cannot install them" >&2
        exit 1
    fi
    apt-get update -qq -o DPkg::Lock::Timeout=300 >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing >&2
fi

if [ ! -x "$GARAGE" ]; then
    mkdir -p "$GARAGE_ROOT"
    # One build at a time, whoever else runs this script now.
    exec 9> "$GARAGE_ROOT/.install.lock"
    flock 9
    if [ ! -x "$GARAGE" ]; then
        if ! command -v cargo >/dev/null 2>&1; then
            echo "$0: garage is missing and cargo is not installed to build it" >&2
            exit 1
        fi
        echo "$0: building garage $GARAGE_VERSION into $GARAGE_ROOT (takes a while)..." >&2
        build=$(mktemp -d)
        # From / so that no project's cargo config or toolchain file applies.
        # Only what the tests need (S3 API, SQLite metadata; no metrics, LMDB or K2V), and a
        # debug build: it compiles in a fraction of the time and is fast enough for test data.
        if ! (cd / && CARGO_TARGET_DIR="$build" cargo install garage --version "$GARAGE_VERSION" \
                --locked --debug --no-default-features --features bundled-libs,sqlite \
                --root "$GARAGE_ROOT" >&2); then
            rm -rf "$build"
            echo "$0: cargo install garage failed" >&2
            exit 1
        fi
        rm -rf "$build"
    fi
    flock -u 9
    exec 9>&-
fi
[ "$INSTALL_ONLY" -eq 0 ] || exit 0

# A free port on 127.0.0.1, below Linux's ephemeral range (32768-60999).
free_port() {
    n=0
    while [ $n -lt 500 ]; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
        if [ -z "$(ss -Htln "sport = :$p")" ]; then
            echo "$p"
            return 0
        fi
        n=$((n + 1))
    done
    echo "$0: no free port found" >&2
    return 1
}
hex() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

rm -f "$DIR/pid" "$DIR/env"

tries=0
while :; do
    # A fresh, empty server each time.
    rm -rf "$DIR/meta" "$DIR/data"
    mkdir -p "$DIR/meta" "$DIR/data"
    RPC_PORT=$(free_port)
    S3_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    while [ "$ADMIN_PORT" = "$RPC_PORT" ] || [ "$ADMIN_PORT" = "$S3_PORT" ] || [ "$S3_PORT" = "$RPC_PORT" ]; do
        S3_PORT=$(free_port)
        ADMIN_PORT=$(free_port)
    done
    umask 077
    cat > "$DIR/garage.toml" <<EOF
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
metadata_fsync = false
data_fsync = false
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$(hex 32)"
metrics_token = "$(hex 32)"
EOF
    umask 022
    NO_COLOR=1 RUST_LOG=${RUST_LOG:-garage=info} "$GARAGE" -c "$DIR/garage.toml" server >> "$DIR/log" 2>&1 &
    pid=$!
    echo "$pid" > "$DIR/pid"
    up=""
    n=0
    while [ $n -lt 300 ]; do
        kill -0 "$pid" 2>/dev/null || break
        if "$GARAGE" -c "$DIR/garage.toml" status >/dev/null 2>&1; then
            up=1
            break
        fi
        sleep 0.1
        n=$((n + 1))
    done
    [ -n "$up" ] && break
    kill "$pid" 2>/dev/null || true
    rm -f "$DIR/pid"
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then
        echo "$0: garage did not come up; see $DIR/log:" >&2
        tail -n 20 "$DIR/log" >&2
        exit 1
    fi
done

g() {
    "$GARAGE" -c "$DIR/garage.toml" "$@" >> "$DIR/log" 2>&1 || {
        echo "$0: garage $* failed; see $DIR/log:" >&2
        tail -n 20 "$DIR/log" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    }
}

NODE=$("$GARAGE" -c "$DIR/garage.toml" node id -q 2>/dev/null | cut -d@ -f1)
g layout assign -z dc1 -c 1G "$NODE"
g layout apply --version 1
ACCESS_KEY_ID=GK$(hex 12)
SECRET_ACCESS_KEY=$(hex 32)
g key import --yes -n hafen-test "$ACCESS_KEY_ID" "$SECRET_ACCESS_KEY"
g bucket create "$BUCKET"
g bucket allow --read --write --owner "$BUCKET" --key "$ACCESS_KEY_ID"

# Ready when a signed ListObjectsV2 on the bucket answers 200.
# (Garage insists on x-amz-content-sha256, which curl does not send by itself.)
ENDPOINT=http://127.0.0.1:$S3_PORT
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
n=0
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:$REGION:s3" \
        --user "$ACCESS_KEY_ID:$SECRET_ACCESS_KEY" -H "x-amz-content-sha256: $EMPTY_SHA256" \
        "$ENDPOINT/$BUCKET?list-type=2" || true)
    [ "$code" = 200 ] && break
    n=$((n + 1))
    if [ $n -ge 100 ]; then
        echo "$0: the S3 API does not answer (last HTTP status $code); see $DIR/log" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done

cat > "$DIR/env" <<EOF
ENDPOINT=$ENDPOINT
REGION=$REGION
BUCKET=$BUCKET
ACCESS_KEY_ID=$ACCESS_KEY_ID
SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY
EOF
chmod 0600 "$DIR/env"
cat "$DIR/env"
