#!/usr/bin/env python3
"""A throw-away Docker registry token server (token authentication) for tests.

  token.py --listen 127.0.0.1:PORT --user USER --key KEY.pem --cert CERT.pem \
           [--issuer ISSUER] [--service SERVICE]

The password comes from the environment, HAFEN_TOKEN_PASSWORD (kept out of `ps`), or
--password. Runs in the foreground until SIGTERM/SIGINT. tests/servers/registry.sh starts it.

  GET /token?service=SERVICE&scope=repository:NAME:pull,push[&scope=...]
      with HTTP Basic USER:PASSWORD
  -> 200 {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": RFC 3339}
  POST /token (OAuth2 form: grant_type=password, username, password, service, scope)
  -> 200 {"access_token": JWT, "token": JWT, ...}

Anything else than USER:PASSWORD answers 401 (no credentials at all too: a token server that
hands out anonymous tokens is not what the tests want). A service other than SERVICE answers
400. Every requested scope is granted as asked (any repository, any action), so the token lets
the registry decide nothing beyond "this user logged in".

The JWT is what docker/distribution's token auth (Debian's docker-registry 2.8) verifies: claims
iss, sub, aud (the service), exp, nbf, iat, jti, access; header alg (ES256 for an EC key, RS256
for RSA) and x5c, the certificate (base64 DER) that must be the registry's rootcertbundle (or
chain up to it).

Needs PyJWT and cryptography (`python3 -m pip install PyJWT cryptography`; registry.sh
--install does it).
"""
import os
import sys


def _main():
    import argparse
    import base64
    import binascii
    import datetime
    import hmac
    import json
    import secrets
    import signal
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    EXPIRES_IN = 300

    def parse_scope(scope):
        """'repository:NAME:pull,push' -> {type, name, actions}; NAME may itself hold ':'
        (a registry host with a port), so the type ends at the first colon, the actions start after
        the last one."""
        typ, sep, rest = scope.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not typ or not name:
            return None
        return {"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]}

    class Issuer:
        def __init__(self, a):
            with open(a.key, "rb") as f:
                self.key = serialization.load_pem_private_key(f.read(), password=None)
            with open(a.cert, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            if isinstance(self.key, ec.EllipticCurvePrivateKey):
                self.alg = "ES256"
            elif isinstance(self.key, rsa.RSAPrivateKey):
                self.alg = "RS256"
            else:
                sys.exit("token.py: the key must be an EC P-256 or an RSA key")
            der = cert.public_bytes(serialization.Encoding.DER)
            self.x5c = [base64.b64encode(der).decode("ascii")]
            self.issuer = a.issuer
            self.service = a.service
            self.user = a.user
            self.password = a.password

        def check(self, user, password):
            return (
                user is not None
                and hmac.compare_digest(user.encode(), self.user.encode())
                and hmac.compare_digest(password.encode(), self.password.encode())
            )

        def token(self, user, scopes):
            now = int(time.time())
            access = []
            for s in scopes:
                # One request may carry several scope parameters, each one or more space-separated.
                for part in s.split():
                    r = parse_scope(part)
                    if r is not None:
                        access.append(r)
            claims = {
                "iss": self.issuer,
                "sub": user,
                "aud": self.service,
                "exp": now + EXPIRES_IN,
                "nbf": now - 10,
                "iat": now,
                "jti": secrets.token_hex(16),
                "access": access,
            }
            tok = jwt.encode(claims, self.key, algorithm=self.alg, headers={"typ": "JWT", "x5c": self.x5c})
            if isinstance(tok, bytes):  # PyJWT < 2
                tok = tok.decode("ascii")
            issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
            return {
                "token": tok,
                "access_token": tok,
                "expires_in": EXPIRES_IN,
                "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }

    class Handler(BaseHTTPRequestHandler):
        server_version = "hafen-test-token/1"
        protocol_version = "HTTP/1.1"

        def reply(self, code, body, extra=()):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def unauthorized(self):
            self.reply(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                [("WWW-Authenticate", 'Basic realm="hafen-test-token"')],
            )

        def basic(self):
            h = self.headers.get("Authorization", "")
            if not h.lower().startswith("basic "):
                return None, None
            try:
                user, sep, password = base64.b64decode(h[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            return (user, password) if sep else (None, None)

        def issue(self, user, password, q):
            iss = self.server.issuer
            if urlsplit(self.path).path.rstrip("/") != "/token":
                self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
                return
            if not iss.check(user, password):
                self.unauthorized()
                return
            service = q.get("service", [iss.service])[0]
            if service != iss.service:
                self.reply(400, {"errors": [{"code": "DENIED", "message": "unknown service %r" % service}]})
                return
            self.reply(200, iss.token(user, q.get("scope", [])))

        def do_GET(self):
            q = parse_qs(urlsplit(self.path).query)
            user, password = self.basic()
            self.issue(user, password, q)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            q = parse_qs(self.rfile.read(n).decode("utf-8", "replace")) if n else {}
            q.update({k: v for k, v in parse_qs(urlsplit(self.path).query).items() if k not in q})
            user, password = self.basic()
            if user is None and q.get("grant_type", [""])[0] == "password":
                user, password = q.get("username", [None])[0], q.get("password", [""])[0]
            self.issue(user, password, q)

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
            sys.stderr.flush()

    def main():
        p = argparse.ArgumentParser(description="Docker registry token server for tests")
        p.add_argument("--listen", required=True, help="HOST:PORT")
        p.add_argument("--user", required=True)
        p.add_argument("--password", default=os.environ.get("HAFEN_TOKEN_PASSWORD"))
        p.add_argument("--key", required=True, help="PEM private key (EC P-256 or RSA)")
        p.add_argument("--cert", required=True, help="PEM certificate of that key (the registry's rootcertbundle)")
        p.add_argument("--issuer", default="hafen-test-issuer")
        p.add_argument("--service", default="hafen-test-registry")
        a = p.parse_args()
        if a.password is None:
            p.error("no password: set HAFEN_TOKEN_PASSWORD or pass --password")
        host, _, port = a.listen.rpartition(":")
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer((host, int(port)), Handler)
        server.daemon_threads = True
        server.issuer = Issuer(a)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        sys.stderr.write("registry_token.py: listening on %s\n" % a.listen)
        sys.stderr.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass

    main()


if __name__ == "__main__":
    _main()
