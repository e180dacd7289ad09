#!/bin/sh
# hafen tryton entrypoint: runs as uid 1001 without any capabilities.
#
# Env (required): TRYTON_DB_HOST TRYTON_DB_USER TRYTON_DB_NAME
#                 TRYTON_DB_PASSWORD_FILE TRYTON_ADMIN_PASSWORD_FILE
# Env (optional): TRYTON_DB_PORT (5432) TRYTON_ADMIN_EMAIL (admin@localhost)
#                 TRYTON_DB_WAIT_SECONDS (300)
#                 TRYTON_MODULES ("account_de_skr03 account_invoice"), only
#                 used when the database gets initialised
set -eu

log() { echo "hafen-tryton: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

: "${TRYTON_DB_HOST:?TRYTON_DB_HOST must be set}"
: "${TRYTON_DB_USER:?TRYTON_DB_USER must be set}"
: "${TRYTON_DB_NAME:?TRYTON_DB_NAME must be set}"
: "${TRYTON_DB_PASSWORD_FILE:?TRYTON_DB_PASSWORD_FILE must be set}"
: "${TRYTON_ADMIN_PASSWORD_FILE:?TRYTON_ADMIN_PASSWORD_FILE must be set}"
TRYTON_DB_PORT=${TRYTON_DB_PORT:-5432}
TRYTON_ADMIN_EMAIL=${TRYTON_ADMIN_EMAIL:-admin@localhost}
TRYTON_DB_WAIT_SECONDS=${TRYTON_DB_WAIT_SECONDS:-300}
TRYTON_MODULES=${TRYTON_MODULES:-account_de_skr03 account_invoice}
export TRYTON_DB_HOST TRYTON_DB_PORT TRYTON_DB_USER TRYTON_DB_NAME TRYTON_DB_PASSWORD_FILE

[ -r "$TRYTON_DB_PASSWORD_FILE" ] || die "cannot read $TRYTON_DB_PASSWORD_FILE"
DATA=/var/lib/trytond
[ -w "$DATA" ] || die "$DATA is not writable by uid $(id -u)"

# Config with the DB password: private directory, mode 0600.
umask 077
CONFDIR=${TMPDIR:-/tmp}/hafen-trytond
mkdir -p "$CONFDIR"
CONF="$CONFDIR/trytond.conf"
python3 - "$CONF" <<'PY'
import os, sys, urllib.parse
with open(os.environ['TRYTON_DB_PASSWORD_FILE']) as f:
    pw = f.read().splitlines()[0]
q = lambda s: urllib.parse.quote(s, safe='')
host = os.environ['TRYTON_DB_HOST']
if ':' in host:
    host = '[%s]' % host
uri = 'postgresql://%s:%s@%s:%s/' % (q(os.environ['TRYTON_DB_USER']), q(pw),
    host, os.environ['TRYTON_DB_PORT'])
with open(sys.argv[1] + '.new', 'w') as f:
    f.write('[web]\nlisten = 0.0.0.0:8000\nroot = /usr/share/tryton-sao/www\n\n'
        '[database]\nuri = %s\npath = /var/lib/trytond\n' % uri)
os.replace(sys.argv[1] + '.new', sys.argv[1])
PY

log "waiting for database $TRYTON_DB_NAME on $TRYTON_DB_HOST:$TRYTON_DB_PORT"
python3 /usr/local/lib/hafen/hafen_trytondb.py wait "$TRYTON_DB_WAIT_SECONDS" \
    || die "database not reachable"

# Maintenance modes (hafen's update migrations run them in a one-off container of the new
# image): `admin ARGS…` runs trytond-admin on the database; `console FILE` runs a Python script
# in trytond-console (the migration notes' "after" steps).
case "${1:-}" in
    admin)
        shift
        log "trytond-admin -d $TRYTON_DB_NAME $*"
        exec trytond-admin -c "$CONF" -d "$TRYTON_DB_NAME" "$@"
        ;;
    console)
        [ -r "${2:-}" ] || die "console needs a readable script file, got '${2:-}'"
        log "trytond-console -d $TRYTON_DB_NAME < $2"
        exec trytond-console -c "$CONF" -d "$TRYTON_DB_NAME" < "$2"
        ;;
esac

state=$(python3 /usr/local/lib/hafen/hafen_trytondb.py state)
log "database state: $state"
if [ "$state" != ready ]; then
    [ -r "$TRYTON_ADMIN_PASSWORD_FILE" ] || die "cannot read $TRYTON_ADMIN_PASSWORD_FILE"
    [ -n "$(head -n 1 "$TRYTON_ADMIN_PASSWORD_FILE")" ] || die "$TRYTON_ADMIN_PASSWORD_FILE is empty"
    # --all initialises an empty database and is an idempotent update on a
    # partially initialised one; -p (re)sets the admin password either way.
    start=$(date +%s)
    log "initialising database (trytond-admin --all)"
    TRYTONPASSFILE="$TRYTON_ADMIN_PASSWORD_FILE" trytond-admin -c "$CONF" \
        -d "$TRYTON_DB_NAME" --all -p --email "$TRYTON_ADMIN_EMAIL" \
        || die "trytond-admin --all failed"
    log "activating modules: $TRYTON_MODULES"
    # shellcheck disable=SC2086 # word splitting of the module list is intended
    trytond-admin -c "$CONF" -d "$TRYTON_DB_NAME" \
        -u $TRYTON_MODULES --activate-dependencies \
        || die "trytond-admin -u failed"
    python3 /usr/local/lib/hafen/hafen_trytondb.py mark
    log "initialisation complete after $(( $(date +%s) - start ))s"
fi

log "starting trytond"
exec trytond -c "$CONF" "$@"
