#!/usr/bin/env python3
"""Generates the reference dataset for bench/backup.sh: about SIZE_MB (default 2048) of text
files, random binary files and many small files, deterministic for a given seed.
Usage: gen_dataset.py DIR [SIZE_MB]        mutate: gen_dataset.py --mutate DIR"""
import os
import random
import sys

WORDS = ("Jugendhilfe Hilfeplan Eingliederungshilfe Träger Fachleistungsstunde Bescheid Kostenzusage "
         "Wohngruppe Betreuung Entwicklungsbericht Elterngespräch Tagesstruktur Abrechnung Leistung").split()


def text_block(rnd, size):
    out, n = [], 0
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(12)) + f" {rnd.randint(0, 10**9)}\n"
        out.append(line)
        n += len(line)
    return "".join(out)[:size]


def generate(root, size_mb):
    rnd = random.Random(42)
    total = size_mb * 1024 * 1024
    text_part, bin_part = total * 45 // 100, total * 45 // 100
    small_part = total - text_part - bin_part
    os.makedirs(os.path.join(root, "text"), exist_ok=True)
    os.makedirs(os.path.join(root, "binary"), exist_ok=True)
    i = 0
    while text_part > 0:
        n = min(10 * 1024 * 1024, text_part)
        with open(os.path.join(root, "text", f"akte-{i:04d}.txt"), "w") as f:
            f.write(text_block(rnd, n))
        text_part -= n
        i += 1
    i = 0
    while bin_part > 0:
        n = min(64 * 1024 * 1024, bin_part)
        with open(os.path.join(root, "binary", f"scan-{i:04d}.bin"), "wb") as f:
            f.write(rnd.randbytes(n))
        bin_part -= n
        i += 1
    i = 0
    while small_part > 0:
        d = os.path.join(root, "small", f"{i // 1000:03d}")
        os.makedirs(d, exist_ok=True)
        n = min(rnd.randint(200, 20000), small_part)
        with open(os.path.join(d, f"notiz-{i:06d}.txt"), "w") as f:
            f.write(text_block(rnd, n))
        small_part -= n
        i += 1


def mutate(root):
    rnd = random.Random(7)
    with open(os.path.join(root, "text", "akte-0000.txt"), "a") as f:
        f.write(text_block(rnd, 1024 * 1024))
    with open(os.path.join(root, "small", "000", "notiz-neu.txt"), "w") as f:
        f.write(text_block(rnd, 50000))
    os.remove(os.path.join(root, "small", "000", "notiz-000001.txt"))


if __name__ == "__main__":
    if sys.argv[1] == "--mutate":
        mutate(sys.argv[2])
    else:
        generate(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2048)
