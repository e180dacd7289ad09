#!/bin/sh
# hafen postgres entrypoint: runs as uid 999 without any capabilities.
# Env: POSTGRES_PASSWORD_FILE (required on first start), POSTGRES_USER, POSTGRES_DB.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data}
PGBIN=/usr/lib/postgresql/${PG_MAJOR}/bin
STAGE="$PGDATA/.hafen-init"      # initdb target while the cluster is being set up

log() { echo "hafen-postgres: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -d "$PGDATA" ] || die "$PGDATA does not exist"
[ -w "$PGDATA" ] || die "$PGDATA is not writable by uid $(id -u)"
chmod 0700 "$PGDATA" 2>/dev/null || true

# The cluster is first built in $STAGE, then moved into $PGDATA entry by entry,
# PG_VERSION last. So: PG_VERSION at top level <=> cluster complete.
finish_move() {
    for f in "$STAGE"/*; do
        [ -e "$f" ] || continue
        [ "$(basename "$f")" = PG_VERSION ] && continue
        mv "$f" "$PGDATA/"
    done
    mv "$STAGE/PG_VERSION" "$PGDATA/PG_VERSION"
    rm -rf "$STAGE"
}

init_cluster() {
    : "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE must be set}"
    [ -r "$POSTGRES_PASSWORD_FILE" ] || die "cannot read $POSTGRES_PASSWORD_FILE"
    POSTGRES_USER=${POSTGRES_USER:-postgres}
    POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
    pw=$(head -n 1 "$POSTGRES_PASSWORD_FILE" | tr -d '\r')
    [ -n "$pw" ] || die "$POSTGRES_PASSWORD_FILE is empty"

    rm -rf "$STAGE"
    log "initialising new cluster in $PGDATA (user=$POSTGRES_USER db=$POSTGRES_DB)"
    "$PGBIN/initdb" -D "$STAGE" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$POSTGRES_PASSWORD_FILE" >&2

    cat > "$STAGE/pg_hba.conf" <<'HBA'
# TYPE  DATABASE  USER  ADDRESS    METHOD
local   all       all              trust
host    all       all   0.0.0.0/0  scram-sha-256
host    all       all   ::/0       scram-sha-256
HBA
    cat >> "$STAGE/postgresql.conf" <<'CONF'

# --- hafen ---
listen_addresses = '*'
password_encryption = scram-sha-256
unix_socket_directories = '/var/run/postgresql'
CONF

    # Temporary server on a private socket only, to create role and database.
    sock=$(mktemp -d)
    "$PGBIN/pg_ctl" -D "$STAGE" -w -t 60 -l "$sock/init.log" \
        -o "-c listen_addresses='' -c unix_socket_directories='$sock'" start >&2 \
        || { cat "$sock/init.log" >&2; die "temporary server did not start"; }
    if [ "$POSTGRES_USER" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -h "$sock" -U postgres -d postgres -q \
             -v u="$POSTGRES_USER" -v pw="$pw" >&2 <<'SQL'
CREATE ROLE :"u" LOGIN PASSWORD :'pw';
SQL
    fi
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -h "$sock" -U postgres -d postgres -q \
             -v u="$POSTGRES_USER" -v db="$POSTGRES_DB" >&2 <<'SQL'
CREATE DATABASE :"db" OWNER :"u" ENCODING 'UTF8' TEMPLATE template0;
SQL
    fi
    "$PGBIN/pg_ctl" -D "$STAGE" -m fast -w stop >&2
    rm -rf "$sock"
    : > "$STAGE/.hafen-ready"
    unset pw
    finish_move
    log "initialisation complete"
}

if [ -s "$PGDATA/PG_VERSION" ]; then
    # Complete cluster (a leftover stage dir can only be an already-moved remnant).
    rm -rf "$STAGE"
elif [ -s "$STAGE/PG_VERSION" ] && [ -e "$STAGE/.hafen-ready" ]; then
    log "resuming interrupted move of the new cluster"
    finish_move
else
    # Nothing usable yet. Refuse to touch foreign content.
    for f in "$PGDATA"/* "$PGDATA"/.[!.]* "$PGDATA"/..?*; do
        [ -e "$f" ] || continue
        [ "$f" = "$STAGE" ] && continue
        [ "$(basename "$f")" = lost+found ] && continue
        die "$PGDATA is not empty but has no PG_VERSION ($f); refusing to initialise"
    done
    init_cluster
fi

exec "$PGBIN/postgres" -D "$PGDATA" "$@"
