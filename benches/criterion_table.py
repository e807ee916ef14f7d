#!/usr/bin/env python3
"""Prints the criterion results under target/criterion as Markdown tables (medians)."""
import glob, json, os, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def human(ns):
    return f"{ns / 1000:.1f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def main():
    results = {}
    for path in glob.glob(os.path.join(ROOT, "target", "criterion", "**", "new", "benchmark.json"), recursive=True):
        bench = json.load(open(path))
        estimates = json.load(open(os.path.join(os.path.dirname(path), "estimates.json")))
        results[(bench["group_id"], bench.get("function_id") or "", bench.get("value_str") or "")] = estimates["median"]["point_estimate"]
    drivers = sorted({g.split("/", 1)[1] for g, _, _ in results if g.startswith("load_commit/")},
                     key=lambda d: ["memory", "fs", "fs-durable", "sqlite", "redis"].index(d) if d in ["memory", "fs", "fs-durable", "sqlite", "redis"] else 99)
    sizes = ["100B", "1KiB", "16KiB"]
    print("| driver | " + " | ".join(f"{op} {s}" for op in ("read", "update", "new") for s in sizes) + " |")
    print("|---|" + "---:|" * 9)
    for d in drivers:
        cells = [human(results[(f"load_commit/{d}", op, s)]) if (f"load_commit/{d}", op, s) in results else "–" for op in ("read", "update", "new") for s in sizes]
        print(f"| {d} | " + " | ".join(cells) + " |")
    print()
    print("| cookie work | 100 B | 1 KiB | 16 KiB |")
    print("|---|---:|---:|---:|")
    if ("cookie", "verify_signed", "") in results:
        v = human(results[("cookie", "verify_signed", "")])
        print(f"| verify a signed cookie (size-independent) | {v} | {v} | {v} |")
    for op, label in (("seal", "seal a cookie-only session (commit)"), ("open", "open a cookie-only session (load)")):
        cells = [human(results[("cookie", op, s)]) if ("cookie", op, s) in results else "over the 4096-byte limit" for s in sizes]
        if op == "seal":
            cells[2] += " (refused: too large)"
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
