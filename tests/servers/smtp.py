#!/usr/bin/env python3
"""A throw-away SMTP server for tests (aiosmtpd), writing every mail it accepts to a Maildir.

  smtp.py serve --listen 127.0.0.1:PORT --maildir DIR [--starttls CERT KEY | --tls CERT KEY] [--auth USER:PASSWORD]
  smtp.py decode FILE

serve: runs in the foreground until SIGTERM/SIGINT; mails land in DIR/new. With --starttls
the server offers STARTTLS and refuses mail before it; with --tls it speaks TLS from the first
byte (implicit TLS, port 465 style); with --auth it requires AUTH (PLAIN or LOGIN, only over
TLS: after STARTTLS, or on the --tls connection) with this user and password.
decode: prints one mail as JSON: subject, body (decoded text), message_id, from, to,
content_type, charset.

Installs nothing: `python3 -m pip install aiosmtpd` (tests/run does).
"""
import argparse
import email
import email.policy
import json
import signal
import ssl
import sys
import threading


def serve(a):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
    from aiosmtpd.smtp import AuthResult, LoginPassword

    host, port = a.listen.rsplit(":", 1)
    params = {}

    def server_context(cert, key):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx

    if a.starttls:
        params.update(tls_context=server_context(*a.starttls), require_starttls=True)
    if a.tls:
        # The Controller wraps every connection in TLS from the first byte. aiosmtpd only sees
        # STARTTLS as TLS, so AUTH must not wait for it here (aio-libs/aiosmtpd#281).
        params.update(ssl_context=server_context(*a.tls), auth_require_tls=False)
    if a.auth:
        user, password = a.auth.split(":", 1)

        def check(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
            return AuthResult(success=ok, handled=False)

        params.update(authenticator=check, auth_required=True)
    controller = Controller(Mailbox(a.maildir), hostname=host, port=int(port), **params)
    controller.start()
    print(f"listening on {host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


def decode(a):
    with open(a.file, "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    body = m.get_body(preferencelist=("plain",))
    json.dump(
        {
            "subject": str(m["subject"]),
            "body": body.get_content() if body is not None else "",
            "message_id": str(m["message-id"]),
            "from": str(m["from"]),
            "to": str(m["to"]),
            "content_type": m.get_content_type(),
            "charset": m.get_content_charset(),
        },
        sys.stdout,
        ensure_ascii=False,
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--maildir", required=True)
    tls = s.add_mutually_exclusive_group()
    tls.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    tls.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    s.add_argument("--auth", metavar="USER:PASSWORD")
    d = sub.add_parser("decode")
    d.add_argument("file")
    a = p.parse_args()
    serve(a) if a.cmd == "serve" else decode(a)


if __name__ == "__main__":
    main()
