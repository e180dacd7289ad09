#!/usr/bin/env python3
"""Runs every test binary that `cargo test --no-run --message-format=json` built, one after the
other, from its package's directory (as `cargo test` does), and prints how long each took, so
the cost of every binary is known. All binaries run even after a failure; the exit status is 1
when any failed. Usage: tests/timed.py BUILD.json -- [ARGS FOR EACH BINARY]"""
import json
import os
import subprocess
import sys
import time

def main():
    sep = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    listing, extra = sys.argv[1], sys.argv[sep + 1:]
    binaries = []
    with open(listing) as f:
        for line in f:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if m.get("reason") != "compiler-artifact" or not m.get("profile", {}).get("test") or not m.get("executable"):
                continue
            pkg = m["package_id"]
            kind = m["target"]["kind"][0]
            name = m["target"]["name"]
            label = f"{name} ({kind})" if kind in ("lib", "bin") else name
            binaries.append((label, m["executable"], os.path.dirname(m["manifest_path"])))
    if not binaries:
        print("tests/timed.py: no test binaries in", listing, file=sys.stderr)
        return 1
    times = []
    failed = []
    for label, exe, cwd in binaries:
        print(f"\n=== {label}", flush=True)
        t0 = time.monotonic()
        # As `cargo test` does: the package's directory as cwd and as CARGO_MANIFEST_DIR.
        rc = subprocess.call([exe] + extra, cwd=cwd, env=dict(os.environ, CARGO_MANIFEST_DIR=cwd))
        dt = time.monotonic() - t0
        times.append((label, dt, rc))
        if rc != 0:
            failed.append(label)
    print("\ntests/run: time per test binary")
    for label, dt, rc in sorted(times, key=lambda t: -t[1]):
        print(f"  {dt:8.1f} s  {'ok    ' if rc == 0 else 'FAILED'}  {label}")
    print(f"  {sum(t[1] for t in times):8.1f} s  in all, {len(times)} binaries")
    if failed:
        print("tests/run: FAILED:", ", ".join(failed), file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
