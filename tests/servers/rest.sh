#!/bin/sh
# Starts a throw-away restic REST server (`rclone serve restic`, Debian's rclone) for tests.
#
#   tests/servers/rest.sh DIR            append-only: objects can be added, never deleted or replaced
#   tests/servers/rest.sh DIR --normal   without --append-only
#
# DIR is a work directory (created if missing). The server listens on 127.0.0.1 on a free port,
# runs in the background (pid in DIR/pid, log in DIR/log) and is stopped by
# `tests/servers/stop.sh DIR`. It serves DIR/data, one repository at the URL's root (or several,
# one per sub-path: http://127.0.0.1:PORT/NAME/). Prints to stdout (also kept in DIR/env):
#   URL=http://127.0.0.1:PORT/
#   DIR=...    the directory served (the repository's files land there)
#   MODE=append-only | normal
# Run again on the same DIR while the server runs, it prints the same values again.
set -eu

usage() {
    echo "usage: $0 DIR [--normal]" >&2
    exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
    usage
fi
MODE=append-only
if [ $# -eq 2 ]; then
    [ "$2" = "--normal" ] || usage
    MODE=normal
fi
mkdir -p "$1"
WORK=$(cd "$1" && pwd)

if [ -s "$WORK/pid" ] && kill -0 "$(cat "$WORK/pid")" 2>/dev/null && [ -s "$WORK/env" ]; then
    if grep -qx "MODE=$MODE" "$WORK/env"; then
        cat "$WORK/env"
        exit 0
    fi
    echo "$0: a server in another mode already runs in $WORK" >&2
    exit 1
fi

missing=""
command -v rclone >/dev/null 2>&1 || missing="$missing rclone"
command -v ss >/dev/null 2>&1 || missing="$missing iproute2"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing packages ($missing) and not root, cannot install them" >&2
        exit 1
    fi
    apt-get update -qq -o DPkg::Lock::Timeout=300 >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing >&2
fi

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

rm -f "$WORK/pid" "$WORK/env"
mkdir -p "$WORK/data"
# An empty config of its own: rclone never reads or writes ~/.config/rclone.
: > "$WORK/rclone.conf"
set --
[ "$MODE" = append-only ] && set -- --append-only

tries=0
while :; do
    PORT=$(free_port)
    rclone serve restic --config "$WORK/rclone.conf" --addr "127.0.0.1:$PORT" "$@" \
        "$WORK/data" >> "$WORK/log" 2>&1 &
    pid=$!
    echo "$pid" > "$WORK/pid"
    up=""
    n=0
    while [ $n -lt 100 ]; do
        kill -0 "$pid" 2>/dev/null || break
        # Any HTTP answer will do (a missing repository's config answers 404).
        code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$PORT/config" || true)
        if [ -n "$code" ] && [ "$code" != "000" ]; then
            up=1
            break
        fi
        sleep 0.1
        n=$((n + 1))
    done
    [ -n "$up" ] && break
    kill "$pid" 2>/dev/null || true
    rm -f "$WORK/pid"
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then
        echo "$0: rclone serve restic did not come up; see $WORK/log:" >&2
        tail -n 20 "$WORK/log" >&2
        exit 1
    fi
done

cat > "$WORK/env" <<EOF
URL=http://127.0.0.1:$PORT/
DIR=$WORK/data
MODE=$MODE
EOF
cat "$WORK/env"
