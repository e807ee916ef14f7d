#!/usr/bin/env python3
"""Paired HTTP benchmark: the hot-path ratios, measured so that the machine's drift cancels.

`run.py` measures each app for a few seconds per round; on a shared machine the speed drifts
by more than the differences it reports (in one of its runs, bare actix-web measured 0.82x and
1.40x the same peer in its two rounds). Here both apps of a pair run side by side and are
loaded in turn, in 1-second slices in the order A B B A A B ..., and each ratio comes from two
adjacent slices: a drift slower than a second cancels. Printed: the median of the slices'
ratios and their range. Every pair has a ceiling beside it: the bare framework (no session
layer) against the same peer, measured the same way, which is what a session layer that cost
nothing would score.

    python3 benches/http/paired.py            # every pair below; writes target/bench-paired.md
    PAIRED_SLICES=12 python3 benches/http/paired.py ours-memory:tower-memory

Run through `bash benches/run` (which builds the servers), or after it.
"""
import os, shutil, statistics, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (the servers, wrk and Redis helpers of the main benchmark)

SLICES = int(os.environ.get("PAIRED_SLICES", "8"))
SLICE_SECONDS = int(os.environ.get("PAIRED_SLICE_SECONDS", "1"))
HOT = [("/count", False), ("/read", False), ("/count", True), ("/read", True)]
# (ours, peer, scenarios, target): each with its framework's ceiling measured beside it.
PAIRS = [
    ("ours-memory", "tower-memory", HOT, R.HOT_LEAD),
    ("bare", "tower-memory", HOT, None),
    ("ours-actix-cookie", "actix-cookie", HOT, R.HOT_LEAD),
    ("bare-actix", "actix-cookie", HOT, None),
    ("ours-redis", "actix-redis", [("/count", False)], R.REDIS_LEAD),
    ("ours-actix-redis", "actix-redis", [("/count", False)], R.REDIS_LEAD),
]


def label(path, new):
    if path == "/count":
        return "`/count`, new visitor" if new else "`/count` with a cookie"
    return "`/read`, no cookie" if new else "`/read` with a cookie"


def app_info(app):
    for name, binary, kind, _ in R.APPS:
        if name == app:
            return binary, kind
    raise SystemExit(f"unknown app {app}")


def measure_pair(ours, peer, scenarios, work, redis):
    """{(path, new): sorted slice ratios ours/peer}."""
    started = []
    out = {}
    try:
        for app in (ours, peer):
            binary, kind = app_info(app)
            started.append(R.start(app, binary, kind, work, redis))
        # The sessions are made once both servers are up: starting an app on Redis empties
        # Redis (`FLUSHALL`), which would delete the sessions of the app started before it,
        # and its "requests with a cookie" would all be new visitors.
        servers = []
        for i, (app, (_, base)) in enumerate(zip((ours, peer), started)):
            cookies = ["x=1"] if app.startswith("bare") else R.make_sessions(base, R.SESSIONS)
            jar = os.path.join(work, f"paired-{i}-{app}.cookies")
            with open(jar, "w") as f:
                f.write("\n".join(cookies) + "\n")
            servers.append((base, jar))
        for path, new in scenarios:
            def load(i):
                base, jar = servers[i]
                return R.wrk(base + path, None if new else jar, SLICE_SECONDS, False)["rps"]
            load(0), load(1)  # warm-up
            ratios = []
            for k in range(SLICES):
                first, second = (0, 1) if k % 2 == 0 else (1, 0)
                rps = {first: load(first), second: load(second)}
                ratios.append(rps[0] / rps[1])
            out[(path, new)] = sorted(ratios)
            r = out[(path, new)]
            print(f"  {ours:<18} / {peer:<13} {label(path, new):<24} median {statistics.median(r):.2f}  range {r[0]:.2f}-{r[-1]:.2f}", flush=True)
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait()
    return out


def layer_budget(ceiling, target):
    """The share of the peer's session-layer cost ours may spend to score `target` against it,
    when the bare framework scores `ceiling` (CPU per request: bare = peer / ceiling, and ours
    must be at most peer / target), as text; `none` when no layer can."""
    if ceiling <= target:
        return "none"
    return f"{(1 / target - 1 / ceiling) / (1 - 1 / ceiling):.2f}"


def report(results):
    lines = ["## Paired: the hot-path ratios with the drift cancelled", "",
             f"Both apps of a pair up side by side and loaded in turn (`benches/http/paired.py`): {SLICES} slices of "
             f"{SLICE_SECONDS} s each (`wrk -t{R.THREADS} -c{R.CONNECTIONS}`, {R.SESSIONS} sessions with a cookie), in the order A B B A ..., each ratio "
             "from two adjacent slices. `median` is the median of those ratios, `range` the lowest and highest. `ceiling` is the bare framework "
             "(no session layer) against the same peer, measured the same way: what a session layer that cost nothing would score. "
             "`budget` follows from it: the share of the peer's session-layer cost that ours may spend and still reach the target, "
             "(1/target − 1/ceiling) / (1 − 1/ceiling) with the machine saturated (throughput the inverse of CPU per request); "
             "`none` where the ceiling is at or below the target (no session layer reaches it). The in-process table gives what ours "
             "spends (`added`, ours over the peer's).", "",
             "| scenario | ours | peer | median | range | ceiling | budget | target | met |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for ours, peer, scenarios, target in PAIRS:
        if target is None or (ours, peer) not in results:
            continue
        bare = "bare-actix" if "actix" in ours else "bare"
        for key in scenarios:
            r = results[(ours, peer)][key]
            median = statistics.median(r)
            ceiling = results.get((bare, peer), {}).get(key)
            ceiling_text = f"{statistics.median(ceiling):.2f}" if ceiling else "–"
            budget_text = layer_budget(statistics.median(ceiling), target) if ceiling else "–"
            lines.append(f"| {label(*key)} | {ours} | {peer} | {median:.2f} | {r[0]:.2f}-{r[-1]:.2f} | {ceiling_text} | {budget_text} | "
                         f"≥ {target} | {'yes' if median >= target else '**no**'} |")
    return lines


def main():
    wanted = [tuple(a.split(":")) for a in sys.argv[1:]]
    pairs = [p for p in PAIRS if not wanted or (p[0], p[1]) in wanted]
    for ours, peer in wanted:
        if not any((p[0], p[1]) == (ours, peer) for p in PAIRS):
            raise SystemExit(f"{ours}:{peer} is not a pair of this benchmark")
    work = tempfile.mkdtemp(prefix="paired-bench-")
    redis = R.Redis(work)
    try:
        results = {}
        for ours, peer, scenarios, _ in pairs:
            results[(ours, peer)] = measure_pair(ours, peer, scenarios, work, redis)
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report(results)) + "\n"
    os.makedirs(os.path.join(R.ROOT, "target"), exist_ok=True)
    with open(os.path.join(R.ROOT, "target", "bench-paired.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
