#!/bin/sh
# hafen radicale entrypoint: runs as uid 1002 without any capabilities.
# Env: RADICALE_ADMIN_USER, RADICALE_ADMIN_PASSWORD_FILE (both required).
set -eu

log() { echo "hafen-radicale: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

: "${RADICALE_ADMIN_USER:?RADICALE_ADMIN_USER must be set}"
: "${RADICALE_ADMIN_PASSWORD_FILE:?RADICALE_ADMIN_PASSWORD_FILE must be set}"
[ -r "$RADICALE_ADMIN_PASSWORD_FILE" ] || die "cannot read $RADICALE_ADMIN_PASSWORD_FILE"
case "$RADICALE_ADMIN_USER" in
    *:*|*[[:space:]]*|'') die "RADICALE_ADMIN_USER must not contain ':' or whitespace" ;;
esac
COLL=/var/lib/radicale/collections
[ -w "$COLL" ] || die "$COLL is not writable by uid $(id -u)"

# Config and htpasswd (plain text, like the secret it comes from): private dir.
umask 077
DIR=${TMPDIR:-/tmp}/hafen-radicale
mkdir -p "$DIR"
pw=$(head -n 1 "$RADICALE_ADMIN_PASSWORD_FILE" | tr -d '\r')
[ -n "$pw" ] || die "$RADICALE_ADMIN_PASSWORD_FILE is empty"
printf '%s:%s\n' "$RADICALE_ADMIN_USER" "$pw" > "$DIR/users.new"
mv -f "$DIR/users.new" "$DIR/users"
unset pw

cat > "$DIR/config" <<CONF
[server]
hosts = 0.0.0.0:5232

[auth]
type = htpasswd
htpasswd_filename = $DIR/users
htpasswd_encryption = plain
delay = 1

[rights]
type = owner_only

[storage]
filesystem_folder = $COLL

[web]
type = internal

[logging]
level = info
mask_passwords = True
CONF

log "starting radicale for user $RADICALE_ADMIN_USER"
exec python3 -m radicale --config "$DIR/config" "$@"
