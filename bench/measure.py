#!/usr/bin/env python3
"""Runs a command; prints `<wall seconds> <peak RSS MB of the command>` on stderr's last line."""
import resource
import subprocess
import sys
import time

t = time.monotonic()
import os
out = open(os.environ["MEASURE_STDOUT"], "w") if os.environ.get("MEASURE_STDOUT") else subprocess.DEVNULL
r = subprocess.run(sys.argv[1:], stdout=out)
wall = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{wall:.2f} {rss:.0f}", file=sys.stderr)
sys.exit(r.returncode)
