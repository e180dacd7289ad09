#!/bin/sh
# Starts a throw-away SFTP server (OpenSSH's sshd, its own config, host key and port) for tests.
#
#   tests/servers/sftp.sh DIR
#
# DIR is a work directory (created if missing; made traversable by others, o+x, so that the
# server's user can reach its files). The server listens on 127.0.0.1 on a free port, runs in the
# background (pid in DIR/pid, log in DIR/log) and is stopped by `tests/servers/stop.sh DIR`.
# Prints to stdout, one per line, what a test needs (also kept in DIR/env):
#   PORT=...         the port on 127.0.0.1
#   USER=...         the login user (hafen-sftp when run as root, else the current user)
#   KEY=...          a private key file (ed25519, no passphrase, mode 0600) that may log in
#   KNOWN_HOSTS=...  a known_hosts file with the server's host key for [127.0.0.1]:PORT
#   ROOT=...         an absolute directory the user may write
# The system's sshd and /etc/ssh/sshd_config are never touched. Run again on the same DIR while
# the server runs, it prints the same values again.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
SFTP_USER=hafen-sftp

if [ -s "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null && [ -s "$DIR/env" ]; then
    cat "$DIR/env"
    exit 0
fi

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing packages ($*) and not root, cannot install them" >&2
        exit 1
    fi
    # Never let the package start the system's sshd: where no policy-rc.d forbids starting
    # services, add one for the duration of the install.
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

missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
command -v ss >/dev/null 2>&1 || missing="$missing iproute2"
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    apt_install $missing
fi

# A free port on 127.0.0.1, below Linux's ephemeral range (32768-60999) so that outgoing
# connections do not take it between the check and sshd's bind.
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

if [ "$(id -u)" -eq 0 ]; then
    if ! id "$SFTP_USER" >/dev/null 2>&1; then
        # (Another run may create it at the same moment.)
        useradd --system --create-home --home-dir "/var/lib/$SFTP_USER" --shell /bin/sh \
            "$SFTP_USER" >&2 || id "$SFTP_USER" >/dev/null
    fi
    # useradd leaves the password field "!", which sshd without PAM takes for a locked account.
    # "*" cannot log in with a password either, but does not lock key logins.
    if [ "$(getent shadow "$SFTP_USER" | cut -d: -f2)" != "*" ]; then
        usermod -p '*' "$SFTP_USER"
    fi
    # sshd (as root) insists on its privilege separation directory.
    [ -d /run/sshd ] || install -d -m 0755 /run/sshd
else
    SFTP_USER=$(id -un)
fi

# The server's user reads DIR/authorized_keys and writes DIR/root: it must be able to traverse DIR.
chmod o+x "$DIR"
rm -f "$DIR/pid" "$DIR/env"
[ -f "$DIR/ssh_host_ed25519_key" ] \
    || ssh-keygen -q -t ed25519 -N '' -C hafen-test-host -f "$DIR/ssh_host_ed25519_key"
[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hafen-test-client -f "$DIR/id_ed25519"
chmod 0600 "$DIR/ssh_host_ed25519_key" "$DIR/id_ed25519"
cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
chmod 0644 "$DIR/authorized_keys"
mkdir -p "$DIR/root"
if [ "$(id -u)" -eq 0 ]; then
    chown "$SFTP_USER" "$DIR/root"
fi
chmod 0755 "$DIR/root"
if [ "$(id -u)" -eq 0 ] && ! runuser -u "$SFTP_USER" -- test -w "$DIR/root" -a -r "$DIR/authorized_keys"; then
    echo "$0: user $SFTP_USER cannot reach $DIR (is a parent directory closed to others?)" >&2
    exit 1
fi

tries=0
while :; do
    PORT=$(free_port)
    cat > "$DIR/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile $DIR/authorized_keys
StrictModes no
PermitRootLogin no
AllowUsers $SFTP_USER
Subsystem sftp internal-sftp
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 200
MaxSessions 200
LogLevel VERBOSE
EOF
    /usr/sbin/sshd -t -f "$DIR/sshd_config" >&2
    # -D: stay in the foreground of this background job, so its pid is sshd's; -e: log to stderr.
    /usr/sbin/sshd -D -e -f "$DIR/sshd_config" >> "$DIR/log" 2>&1 &
    pid=$!
    echo "$pid" > "$DIR/pid"
    up=""
    n=0
    while [ $n -lt 100 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if ssh-keyscan -T 2 -t ed25519 -p "$PORT" 127.0.0.1 2>/dev/null | grep -q ssh-ed25519; then
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
        echo "$0: sshd did not come up; see $DIR/log:" >&2
        tail -n 20 "$DIR/log" >&2
        exit 1
    fi
done

printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" \
    > "$DIR/known_hosts"

# A real login through the sftp subsystem, as the tests will do it.
if ! echo "pwd" | sftp -q -b - -i "$DIR/id_ed25519" -P "$PORT" \
        -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null \
        "$SFTP_USER@127.0.0.1" >/dev/null 2>>"$DIR/log"; then
    echo "$0: sshd is up but an sftp login failed; see $DIR/log:" >&2
    tail -n 20 "$DIR/log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
fi

cat > "$DIR/env" <<EOF
PORT=$PORT
USER=$SFTP_USER
KEY=$DIR/id_ed25519
KNOWN_HOSTS=$DIR/known_hosts
ROOT=$DIR/root
EOF
cat "$DIR/env"
