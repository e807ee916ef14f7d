#!/usr/bin/env python3
"""Instructions per request, in-process, under callgrind: the hot-path cost with little noise.

The load test and the in-process timings move by 0.2 between runs on a shared machine; an
instruction count moves by a few per cent at most (random ids and hash seeds). Each app of
the in-process table (`run.py`'s IN_PROCESS) runs one scenario at a time
(`IN_PROCESS_ONLY`) under `valgrind --tool=callgrind`, twice, with N and 2N requests per
repetition; the difference of the two totals divided by the extra requests is
what one request costs (the process's start, the sessions made before timing and the
repetitions' warm-up cancel). Printed and written to target/bench-instructions.md: each app's
instructions per request, what the session layer adds over the bare app of its framework,
and the peer's addition divided by ours (above 1: ours executes fewer).

Valgrind runs no SHA-NI instructions: SHA-256 (ours signs new ids with HMAC-SHA256 and hashes
storage keys) runs in its software fallback here, about 3,400 instructions per 64-byte block,
where CPUs with SHA-NI spend a small fraction of that. The table says how many of ours' added
instructions each scenario spends there.

    python3 benches/http/instructions.py        # after the servers are built (benches/run)
"""
import os, re, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (the apps and scenarios of the in-process table)

REQUESTS = int(os.environ.get("BENCH_INSTRUCTIONS_REQUESTS", "1000"))
# `in_process.rs` sends n / 10 warm-up requests, then times REPETITIONS runs of n.
REPETITIONS = 5
SCENARIOS = R.IN_PROCESS_SCENARIOS


def callgrind(binary, app, scenario, n, out):
    """(total instructions, instructions in SHA-256's block function) of one run."""
    env = dict(os.environ, IN_PROCESS_ONLY=scenario)
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           binary, "--in-process", app, str(n)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{app} {scenario} under callgrind failed:\n{proc.stderr[-2000:]}")
    total = int(re.search(r"Collected : (\d+)", proc.stderr).group(1))
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                               capture_output=True, text=True, check=True).stdout
    sha = 0
    for line in annotated.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*?\)\s+\S*:sha2::sha256::compress256 ", line)
        if m:
            sha = max(sha, int(m.group(1).replace(",", "")))
    return total, sha


def per_request(binary, app, scenario, work):
    """(instructions per request, of which SHA-256) from runs of N and 2N requests."""
    runs = [callgrind(binary, app, scenario, n, os.path.join(work, f"cg-{n}.out"))
            for n in (REQUESTS, 2 * REQUESTS)]
    extra = REQUESTS * REPETITIONS + (2 * REQUESTS) // 10 - REQUESTS // 10
    return ((runs[1][0] - runs[0][0]) / extra, (runs[1][1] - runs[0][1]) / extra)


def main():
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind missing: sudo apt-get install -y valgrind (bash benches/run installs it)")
    # Shaped as run.py's in-process timings ({app: {scenario: value}}), so that its
    # `added_ns` takes the bare app's count off; " sha" keys hold the SHA-256 part.
    counts = {}
    with tempfile.TemporaryDirectory() as work:
        for app, binary in R.IN_PROCESS:
            for scenario, _ in SCENARIOS:
                total, sha = per_request(binary, app, scenario, work)
                counts.setdefault(app, {}).update({scenario: total, scenario + " sha": sha})
                print(f"  {app:<18} {scenario:<11} {total:8.0f} instructions ({sha:.0f} in SHA-256)",
                      flush=True)
    lines = ["## Instructions per request (callgrind, in-process)", "",
             f"`benches/http/instructions.py`: each app of the in-process table called directly, one scenario at a time, "
             f"under `valgrind --tool=callgrind`, with {REQUESTS} and {2 * REQUESTS} requests per repetition; a request's count is the "
             "difference of the two runs over the extra requests (start-up and setup cancel). Unlike times, these do not drift with the "
             "machine's load (they move by a few per cent between runs: random ids and hash seeds). `added` is over the bare app of the same framework, `×peer` the peer's addition divided by ours (above 1: ours "
             "executes fewer). `SHA-256` is the part of ours' count spent in SHA-256's software block function (signing new ids, hashing "
             "storage keys): valgrind runs no SHA-NI, so on CPUs that have it these cost a small fraction of the count shown.", "",
             "| app | " + " | ".join(f"{label} | added | ×peer | SHA-256" for _, label in SCENARIOS) + " |",
             "|---|" + "---:|---:|---:|---:|" * len(SCENARIOS)]
    for app, _ in R.IN_PROCESS:
        cells = []
        for scenario, _ in SCENARIOS:
            total, sha = counts[app][scenario], counts[app][scenario + " sha"]
            if app.startswith("bare"):
                cells += [f"{total:.0f}", "–", "–", "–"]
                continue
            added = R.added_ns(counts, app, scenario)
            peer_added = R.added_ns(counts, R.IN_PROCESS_PEER.get(app, ""), scenario)
            ratio = f"{peer_added / added:.2f}" if peer_added is not None and added > 0 else "–"
            cells += [f"{total:.0f}", f"{added:.0f}", ratio, f"{sha:.0f}"]
        lines.append(f"| {app} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    path = os.path.join(R.ROOT, "target", "bench-instructions.md")
    with open(path, "w") as f:
        f.write(table)


if __name__ == "__main__":
    main()
