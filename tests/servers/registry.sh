#!/bin/sh
# Starts a throw-away Docker registry (Debian's docker-registry, distribution 2.8) for tests.
#
#   tests/servers/registry.sh --install
#   tests/servers/registry.sh DIR PORT
#   tests/servers/registry.sh DIR PORT --token TOKENPORT USER PASSWORD
#
# --install: installs what is missing (Debian's docker-registry, openssl, curl; PyJWT and
# cryptography for python3) and exits; the package's own system-wide registry service is never
# left running.
# DIR PORT: a registry without authentication on 127.0.0.1:PORT, storing under DIR/data.
# --token: the registry wants token authentication (realm http://127.0.0.1:TOKENPORT/token,
# service hafen-test-registry, issuer hafen-test-issuer), and tests/servers/registry_token.py runs on
# 127.0.0.1:TOKENPORT: it signs tokens (with a key and self-signed certificate made here, in
# DIR/token.key and DIR/token.crt, the registry's rootcertbundle) for HTTP Basic USER:PASSWORD
# only, granting whatever repository scope is asked.
#
# DIR is a work directory (created if missing). The caller picks the ports (free ones). Both
# servers run in the background under one supervising shell: its pid is in DIR/pid, so that
# `tests/servers/stop.sh DIR` stops everything; the registry's own pid is in DIR/registry.pid,
# the token server's in DIR/token.pid. Logs: DIR/registry.log, DIR/token.log. Returns once
# GET /v2/ answers (200, or 401 with --token) and, with --token, the token server answers too.
# Prints to stdout (also kept in DIR/env):
#   REGISTRY=127.0.0.1:PORT          for image references (docker treats 127.0.0.0/8 as insecure)
#   URL=http://127.0.0.1:PORT
#   AUTH=none | token
#   REALM=http://127.0.0.1:TOKENPORT/token   (--token only; also SERVICE=, ISSUER=)
# Run again with the same arguments on a DIR whose servers run, it prints the same values again.
set -eu

SERVICE=hafen-test-registry
ISSUER=hafen-test-issuer
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
    echo "usage: $0 --install | DIR PORT [--token TOKENPORT USER PASSWORD]" >&2
    exit 2
}
is_port() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

INSTALL_ONLY=0
TOKEN=0
if [ $# -eq 1 ] && [ "$1" = "--install" ]; then
    INSTALL_ONLY=1
elif [ $# -eq 2 ] || { [ $# -eq 6 ] && [ "$3" = "--token" ]; }; then
    [ -n "$1" ] || usage
    is_port "$2" || usage
    PORT=$2
    if [ $# -eq 6 ]; then
        TOKEN=1
        is_port "$4" || usage
        TOKEN_PORT=$4
        TOKEN_USER=$5
        TOKEN_PASSWORD=$6
        [ -n "$TOKEN_USER" ] || usage
        case "$TOKEN_USER" in *:*) echo "$0: USER must not contain ':'" >&2; exit 2 ;; esac
        [ "$TOKEN_PORT" != "$PORT" ] || usage
    fi
else
    usage
fi

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing packages ($*) and not root, cannot install them" >&2
        exit 1
    fi
    # Never let the package start the system's registry service: where no policy-rc.d forbids
    # starting services, add one for the duration of the install.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    status=0
    apt-get update -qq -o DPkg::Lock::Timeout=300 >&2 || status=$?
    if [ "$status" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" >&2 \
            || status=$?
    fi
    if [ -n "$own_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [ "$status" -ne 0 ]; then
        echo "$0: apt-get install $* failed" >&2
        exit 1
    fi
}

# Should the package's service have started after all (a policy-rc.d that allows it, systemd
# starting the unit by itself), stop it: only the tests' own registries are to run.
stop_system_registry() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet docker-registry.service 2>/dev/null; then
            echo "$0: stopping the system's docker-registry service the package started" >&2
            systemctl stop docker-registry.service >&2 || true
        fi
    elif [ -x /etc/init.d/docker-registry ]; then
        if /etc/init.d/docker-registry status >/dev/null 2>&1; then
            echo "$0: stopping the system's docker-registry service the package started" >&2
            /etc/init.d/docker-registry stop >&2 || true
        fi
    fi
}

missing=""
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v ss >/dev/null 2>&1 || missing="$missing iproute2"
if [ "$INSTALL_ONLY" -eq 1 ] || [ "$TOKEN" -eq 1 ]; then
    command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
    command -v python3 >/dev/null 2>&1 || missing="$missing python3 python3-pip"
fi
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    apt_install $missing
    case "$missing" in
        *docker-registry*) stop_system_registry ;;
    esac
fi
if [ "$INSTALL_ONLY" -eq 1 ] || [ "$TOKEN" -eq 1 ]; then
    if ! python3 -c 'import jwt, cryptography' 2>/dev/null; then
        python3 -m pip install --quiet PyJWT cryptography >&2
    fi
fi
[ "$INSTALL_ONLY" -eq 0 ] || exit 0

mkdir -p "$1"
DIR=$(cd "$1" && pwd)

ENV="REGISTRY=127.0.0.1:$PORT
URL=http://127.0.0.1:$PORT
AUTH=none"
if [ "$TOKEN" -eq 1 ]; then
    ENV="REGISTRY=127.0.0.1:$PORT
URL=http://127.0.0.1:$PORT
AUTH=token
REALM=http://127.0.0.1:$TOKEN_PORT/token
SERVICE=$SERVICE
ISSUER=$ISSUER"
fi

if [ -s "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null && [ -s "$DIR/env" ]; then
    if [ "$(cat "$DIR/env")" = "$ENV" ] && { [ "$TOKEN" -eq 0 ] || [ "$(cat "$DIR/auth" 2>/dev/null)" = "$TOKEN_USER:$TOKEN_PASSWORD" ]; }; then
        cat "$DIR/env"
        exit 0
    fi
    echo "$0: a registry with other settings already runs in $DIR (tests/servers/stop.sh $DIR)" >&2
    exit 1
fi
rm -f "$DIR/pid" "$DIR/env" "$DIR/auth" "$DIR/registry.pid" "$DIR/token.pid"

for p in $PORT ${TOKEN_PORT:-}; do
    if [ -n "$(ss -Htln "sport = :$p")" ]; then
        echo "$0: port $p is already in use" >&2
        exit 1
    fi
done

mkdir -p "$DIR/data"
if [ "$TOKEN" -eq 1 ]; then
    if [ ! -s "$DIR/token.key" ] || [ ! -s "$DIR/token.crt" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
            -subj "/CN=$ISSUER" -keyout "$DIR/token.key" -out "$DIR/token.crt" 2>/dev/null
    fi
    chmod 0600 "$DIR/token.key"
    (umask 077 && printf '%s:%s' "$TOKEN_USER" "$TOKEN_PASSWORD" > "$DIR/auth")
    AUTH_CONFIG="auth:
  token:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: $SERVICE
    issuer: $ISSUER
    rootcertbundle: $DIR/token.crt"
else
    AUTH_CONFIG=""
fi

umask 077
cat > "$DIR/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: hafen-test-registry
storage:
  filesystem:
    rootdirectory: $DIR/data
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$PORT
  secret: $(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  headers:
    X-Content-Type-Options: [nosniff]
$AUTH_CONFIG
EOF
umask 022

# One supervising shell (DIR/pid) with both servers as its children: stop.sh kills the tree.
# Its own output goes to DIR/log, so that nothing holds the caller's stdout open.
(
    children=""
    trap 'kill $children 2>/dev/null || true; rm -f "$DIR/registry.pid" "$DIR/token.pid"; exit 143' TERM INT HUP
    docker-registry serve "$DIR/config.yml" >> "$DIR/registry.log" 2>&1 &
    children=$!
    echo $! > "$DIR/registry.pid"
    if [ "$TOKEN" -eq 1 ]; then
        HAFEN_TOKEN_PASSWORD=$TOKEN_PASSWORD python3 "$HERE/registry_token.py" --listen "127.0.0.1:$TOKEN_PORT" \
            --user "$TOKEN_USER" --key "$DIR/token.key" --cert "$DIR/token.crt" \
            --issuer "$ISSUER" --service "$SERVICE" >> "$DIR/token.log" 2>&1 &
        children="$children $!"
        echo $! > "$DIR/token.pid"
    fi
    # Until one of them ends (the other is then stopped too).
    while :; do
        for c in $children; do
            if ! kill -0 "$c" 2>/dev/null; then
                kill $children 2>/dev/null || true
                rm -f "$DIR/registry.pid" "$DIR/token.pid"
                exit 1
            fi
        done
        sleep 1
    done
) < /dev/null >> "$DIR/log" 2>&1 &
pid=$!
echo "$pid" > "$DIR/pid"

fail() {
    echo "$0: $1" >&2
    for f in registry.log token.log; do
        if [ -s "$DIR/$f" ]; then
            echo "--- $DIR/$f:" >&2
            tail -n 20 "$DIR/$f" >&2
        fi
    done
    "$HERE/stop.sh" "$DIR" || true
    exit 1
}

# Ready when GET /v2/ answers as it should (and, with --token, the token server answers
# a request without credentials with 401).
want=200
[ "$TOKEN" -eq 1 ] && want=401
n=0
while :; do
    kill -0 "$pid" 2>/dev/null || fail "the registry or the token server ended at once"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/" || true)
    if [ "$code" = "$want" ]; then
        if [ "$TOKEN" -eq 0 ]; then
            break
        fi
        tcode=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TOKEN_PORT/token?service=$SERVICE" || true)
        [ "$tcode" = 401 ] && break
    fi
    n=$((n + 1))
    [ $n -lt 200 ] || fail "did not come up (GET /v2/: ${code:-none}, token server: ${tcode:-none})"
    sleep 0.1
done

printf '%s\n' "$ENV" > "$DIR/env"
cat "$DIR/env"
