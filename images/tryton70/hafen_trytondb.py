#!/usr/bin/python3
"""Database helper for the hafen tryton entrypoint (stdlib + psycopg2 only).

  hafen_trytondb.py wait SECONDS   wait until TRYTON_DB_NAME accepts a login
  hafen_trytondb.py state          print: empty | partial | ready
  hafen_trytondb.py mark           record that initialisation completed

Connection data: TRYTON_DB_HOST, TRYTON_DB_PORT (5432), TRYTON_DB_USER,
TRYTON_DB_NAME, password = first line of the file TRYTON_DB_PASSWORD_FILE.
"""
import os
import sys
import time

import psycopg2

MARKER_TABLE = 'hafen_init'


def password():
    with open(os.environ['TRYTON_DB_PASSWORD_FILE']) as f:
        return f.read().splitlines()[0]


def connect():
    return psycopg2.connect(
        host=os.environ['TRYTON_DB_HOST'],
        port=int(os.environ.get('TRYTON_DB_PORT', '5432')),
        user=os.environ['TRYTON_DB_USER'],
        password=password(),
        dbname=os.environ['TRYTON_DB_NAME'],
        connect_timeout=5)


def table_exists(cur, name):
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return cur.fetchone()[0]


def wait(seconds):
    deadline = time.monotonic() + seconds
    last = None
    while True:
        try:
            connect().close()
            return 0
        except psycopg2.OperationalError as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            if msg != last:
                print('hafen-tryton: database not ready: %s' % msg,
                    file=sys.stderr, flush=True)
                last = msg
        if time.monotonic() >= deadline:
            print('hafen-tryton: gave up waiting for the database after %ss'
                % seconds, file=sys.stderr)
            return 1
        time.sleep(2)


def state():
    conn = connect()
    try:
        with conn.cursor() as cur:
            if not table_exists(cur, 'ir_module'):
                print('empty')
            elif table_exists(cur, MARKER_TABLE):
                print('ready')
            else:
                print('partial')
    finally:
        conn.close()
    return 0


def mark():
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute('CREATE TABLE IF NOT EXISTS %s ('
                'id integer PRIMARY KEY, '
                'initialised_at timestamptz NOT NULL DEFAULT now())'
                % MARKER_TABLE)
            cur.execute('INSERT INTO %s (id) VALUES (1) '
                'ON CONFLICT (id) DO NOTHING' % MARKER_TABLE)
    finally:
        conn.close()
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == 'wait':
        return wait(int(argv[2]) if len(argv) > 2 else 300)
    if len(argv) == 2 and argv[1] == 'state':
        return state()
    if len(argv) == 2 and argv[1] == 'mark':
        return mark()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
