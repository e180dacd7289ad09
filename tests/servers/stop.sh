#!/bin/sh
# Stops a test server started by tests/servers/{sftp,s3,rest}.sh DIR:
#
#   tests/servers/stop.sh DIR
#
# Kills the process in DIR/pid and its descendants (sshd's per-connection children), waits
# up to 5 s for it to go, then SIGKILLs what is left. No pid file, or a dead pid: nothing to do.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
[ -s "$DIR/pid" ] || exit 0
pid=$(cat "$DIR/pid")
case "$pid" in
    '' | *[!0-9]*)
        echo "$0: $DIR/pid holds no pid" >&2
        exit 1
        ;;
esac

# The pid and every descendant, parents first.
tree() {
    echo "$1"
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        tree "$child"
    done
}

if kill -0 "$pid" 2>/dev/null; then
    pids=$(tree "$pid")
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    for p in $pids; do
        kill -9 "$p" 2>/dev/null || true
    done
fi
rm -f "$DIR/pid" "$DIR/env"
