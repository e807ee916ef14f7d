#!/usr/bin/env python3
"""Side-by-side HTTP load benchmark: this project's axum integration vs tower-sessions and
actix-session vs bare axum, same machine, same run, same handlers. Writes BENCHMARKS.md.

Run through `bash benches/run` (it builds the servers and installs wrk/redis when missing).
Every server listens on a free loopback port and is stopped afterwards.
"""
import json, os, re, resource, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request, platform, datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OURS = os.path.join(HERE, "ours", "target", "release", "session-http-bench-ours")
PEERS = os.path.join(HERE, "peers", "target", "release", "session-http-bench-peers")
CONNECTIONS, THREADS = 32, 2
WARMUP, DURATION = int(os.environ.get("BENCH_WARMUP", "2")), int(os.environ.get("BENCH_SECONDS", "3"))
# Every app is measured once per round, apps in forward order then in reverse, and the rounds
# are averaged: the machine's speed drifts over a run, and this keeps the drift from favouring
# whichever app happened to run in a fast minute.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SESSIONS = 256
# The targets that the report works out in sections of their own: apps without a
# backend at this share of their bare framework's throughput, and ours on Redis this many times
# the faster peer's.
BARE_SHARE = 0.85
REDIS_LEAD = 1.2
# The hot path: the memory store against tower-sessions', cookie-only sessions on actix-web
# against actix-session's, on every kind of request, at this many times the peer's throughput.
HOT_LEAD = 1.1
# PostgreSQL and MySQL: ours at this many times tower-sessions' sqlx stores, with a lower p99.
SQL_LEAD = 1.5
# The throwaway PostgreSQL and MariaDB servers come from the tests' harness (`test-server`).
TEST_SERVER = os.path.join(ROOT, "target", "debug", "test-server")

# (app, binary, backend kind, family used for the "best peer" ratio)
APPS = [
    ("bare", OURS, None, None),
    ("ours-memory", OURS, None, "memory"),
    ("ours-cookie", OURS, None, "cookie"),
    ("ours-fs", OURS, "dir", "file"),
    ("ours-sqlite", OURS, "db", "sqlite"),
    ("ours-redis", OURS, "redis", "redis"),
    ("ours-redis-lww", OURS, "redis", "redis"),
    ("ours-postgres", OURS, "postgres", "postgres"),
    ("ours-postgres-cached", OURS, "postgres", "postgres"),
    ("ours-mysql", OURS, "mysql", "mysql"),
    # The same session code on actix-web, so the actix-session comparison is framework-matched.
    ("bare-actix", OURS, None, None),
    ("ours-actix-cookie", OURS, None, "cookie"),
    ("ours-actix-redis", OURS, "redis", "redis"),
    ("ours-actix-redis-lww", OURS, "redis", "redis"),
    ("tower-memory", PEERS, None, "memory"),
    ("tower-file", PEERS, "dir", "file"),
    ("tower-sqlite", PEERS, "db", "sqlite"),
    ("tower-redis", PEERS, "redis", "redis"),
    ("tower-postgres", PEERS, "postgres", "postgres"),
    ("tower-mysql", PEERS, "mysql", "mysql"),
    ("actix-cookie", PEERS, None, "cookie"),
    ("actix-redis", PEERS, "redis", "redis"),
]
# The order the apps are measured in within a round (the report keeps APPS' order): each app
# next to those it is compared with, so the two sides of a ratio are measured within a minute
# of each other instead of up to ten minutes apart. Rounds alternate forward and reverse, so
# neither side of a pair is always measured first. In runs before this order, a shared
# machine's drift between the two sides showed as rounds of one ratio lying 0.83 and 1.38.
RUN_ORDER = [
    "bare", "ours-memory", "tower-memory", "ours-cookie",
    "bare-actix", "ours-actix-cookie", "actix-cookie",
    "ours-fs", "tower-file", "ours-sqlite", "tower-sqlite",
    "ours-redis", "tower-redis", "actix-redis", "ours-actix-redis", "ours-redis-lww", "ours-actix-redis-lww",
    "ours-postgres", "ours-postgres-cached", "tower-postgres", "ours-mysql", "tower-mysql",
]
assert sorted(RUN_ORDER) == sorted(a for a, *_ in APPS), "RUN_ORDER must list every app once"
SCENARIOS = [
    ("/count", True, "`/count` with a session cookie (read, increment, store)"),
    ("/read", True, "`/read` with a session cookie (read only)"),
    ("/count", False, "`/count` as a new visitor each request (no cookie: a new session is written)"),
    ("/read", False, "`/read` as a new visitor each request (no cookie, nothing to store)"),
]
# Contention: `wrk -c32` with every request on ONE session (the hard case the 256-session
# scenarios spread away), for apps that keep sessions in a store. `/count` reads then writes
# (the peers' handler style); `/incr` increments with `update` (ours) or is `/count` again (the
# peers have no other way). After each run the session's count says how many increments were
# kept, against the 2xx responses wrk received.
ONE_SESSION = [
    ("/count", "`/count` on ONE session (read, then store the count plus one)"),
    ("/incr", "`/incr` on ONE session (ours: `update(|c| c.count += 1)`; the peers: `/count` again)"),
]
TICK = os.sysconf("SC_CLK_TCK")
# The apps without I/O, also called in-process (no sockets, one thread): the framework's and
# the session layer's CPU cost alone, which the load test buries under the kernel's and wrk's.
IN_PROCESS = [("bare", OURS), ("ours-memory", OURS), ("ours-cookie", OURS), ("tower-memory", PEERS),
              ("bare-actix", OURS), ("ours-actix-cookie", OURS), ("actix-cookie", PEERS)]
# The peer each in-process app of ours is compared with (an actix-web app for the cookie apps,
# so its addition is taken over bare actix-web).
IN_PROCESS_PEER = {"ours-memory": "tower-memory", "ours-cookie": "actix-cookie", "ours-actix-cookie": "actix-cookie"}
IN_PROCESS_REQUESTS = int(os.environ.get("BENCH_IN_PROCESS_REQUESTS", "100000"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def busy_seconds():
    """CPU seconds the whole machine spent busy since boot (all cores: user, nice, system, irq,
    softirq; not idle, iowait or steal)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / TICK


def children_cpu_seconds():
    """User + system CPU of the finished child processes (here: each `wrk` once it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Redis:
    def __init__(self, work):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if self.cli("PING").strip() == "PONG":
                return
            time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def commands(self):
        """Calls per command since the last reset, without our own INFO/CONFIG."""
        stats = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m and m.group(1).split("|")[0] not in ("info", "config", "ping"):
                stats[m.group(1)] = int(m.group(2))
        return stats

    def sent_per_request(self, run):
        """Commands sent by clients per request during `run()` (which returns the request
        count), counted with MONITOR: commands run inside scripts show as `[db lua]` there and
        are not counted. A separate short phase, as MONITOR slows Redis down."""
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(b"MONITOR\r\n")
        counts = {"sent": 0}
        stop = threading.Event()

        def read():
            buf = b""
            sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    chunk = sock.recv(1 << 16)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\r\n")
                for line in lines:
                    m = re.match(rb'\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"', line)
                    if m and m.group(1) != b"lua" and m.group(2).lower() not in (b"info", b"config", b"ping", b"monitor"):
                        counts["sent"] += 1

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.1)
        try:
            requests = run()
            time.sleep(0.2)
        finally:
            stop.set()
            reader.join()
            sock.close()
        return counts["sent"] / requests if requests else 0.0

    def cpu(self):
        info = self.cli("INFO", "cpu")
        user = float(re.search(r"used_cpu_user:([\d.]+)", info).group(1))
        sys_ = float(re.search(r"used_cpu_sys:([\d.]+)", info).group(1))
        return user + sys_

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class SqlServers:
    """PostgreSQL and MariaDB servers from the tests' harness (`test-server`: throwaway, on free
    loopback ports), started on first use; every app run gets a fresh table."""

    def __init__(self):
        self.procs, self.urls, self.tables = {}, {}, 0

    def backend(self, kind):
        if kind not in self.urls:
            name = {"postgres": "postgres", "mysql": "mariadb"}[kind]
            if not os.path.exists(TEST_SERVER):
                raise SystemExit(f"{TEST_SERVER} missing: cargo build -p session-test-support --bin test-server (bash benches/run does)")
            proc = subprocess.Popen([TEST_SERVER, name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            url = proc.stdout.readline().strip()
            if not url:
                raise SystemExit(f"test-server {name} did not start")
            self.procs[kind], self.urls[kind] = proc, url
        self.tables += 1
        return f"{self.urls[kind]}#bench_{self.tables}"

    def stop(self):
        for proc in self.procs.values():
            proc.terminate()
            proc.wait()


SQL = SqlServers()


def start(app, binary, backend_kind, work, redis):
    port = free_port()
    backend = ""
    if backend_kind == "dir":
        backend = tempfile.mkdtemp(dir=work)
    elif backend_kind == "db":
        backend = os.path.join(tempfile.mkdtemp(dir=work), "sessions.db")
    elif backend_kind == "redis":
        redis.cli("FLUSHALL")
        backend = redis.url()
    elif backend_kind in ("postgres", "mysql"):
        backend = SQL.backend(backend_kind)
    proc = subprocess.Popen([binary, app, f"127.0.0.1:{port}", backend], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise SystemExit(f"{app} did not start")
    return proc, f"http://127.0.0.1:{port}"


def make_sessions(base, n):
    cookies = []
    for _ in range(n):
        with urllib.request.urlopen(base + "/count") as r:
            cookie = r.headers.get("Set-Cookie")
        if cookie:
            cookies.append(cookie.split(";")[0])
    return cookies


def wrk(url, cookie_file, seconds, latency):
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    if latency:
        cmd.append("--latency")
    env = dict(os.environ)
    if cookie_file:
        cmd += ["-s", os.path.join(HERE, "cookies.lua")]
        env["COOKIES"] = cookie_file
        env["WRK_THREADS"] = str(THREADS)
    wrk0, busy0, t0 = children_cpu_seconds(), busy_seconds(), time.monotonic()
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=env).stdout
    wrk_cpu, busy, elapsed = children_cpu_seconds() - wrk0, busy_seconds() - busy0, time.monotonic() - t0
    result = {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    if result["requests"] == 0:
        # A server that stops answering (a hang, as write combining once had) is a finding,
        # not a division by zero further down.
        raise SystemExit(f"{url}: no request answered in {seconds} s: the server hung or refused every request")
    # wrk's own CPU per request, and how many cores the whole machine kept busy meanwhile.
    result["wrk_cpu_us"] = wrk_cpu / result["requests"] * 1e6 if result["requests"] else None
    result["machine_cores"] = busy / elapsed if elapsed > 0 else None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(non2xx.group(1)) if non2xx else 0
    for pct in ("50", "99") if latency else ():
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        result[f"p{pct}"] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return result


def one_session_apps():
    """Apps that keep sessions in a store (a cookie-only app keeps the count in the cookie,
    which wrk sends unchanged)."""
    return [a for a, _, backend, family in APPS if backend is not None or family == "memory"]


def read_count(base, cookie):
    with urllib.request.urlopen(urllib.request.Request(base + "/read", headers={"Cookie": cookie})) as r:
        return int(r.read())


def measure_one_session(app, base, proc, backend_kind, work, redis, rows):
    """The ONE_SESSION scenarios: every request of the run on one session."""
    cookie = make_sessions(base, 1)[0]
    jar = os.path.join(work, f"{app}.one")
    # cookies.lua gives each wrk thread its own share of the lines: one line per thread.
    open(jar, "w").write((cookie + "\n") * THREADS)
    for path, _ in ONE_SESSION:
        wrk(base + path, jar, WARMUP, False)
        before = read_count(base, cookie)
        redis.cli("CONFIG", "RESETSTAT")
        cpu0 = cpu_seconds(proc.pid)
        r = wrk(base + path, jar, DURATION, True)
        r["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / r["requests"] * 1e6
        # Requests still in flight when wrk stopped may land after it counted: wait for them.
        time.sleep(0.3)
        kept = read_count(base, cookie) - before
        ok = r["requests"] - r["errors"]
        # Increments answered with a 2xx but not in the session (in-flight ones may add a few
        # more to `kept` than wrk counted: never below zero).
        r["lost"] = max(0, ok - kept)
        r["lost_share"] = r["lost"] / ok if ok else 0.0
        commands = redis.commands() if backend_kind == "redis" else {}
        r["redis_cmds"] = sum(commands.values()) / r["requests"] if backend_kind == "redis" else None
        r["redis_per_command"] = {k: v / r["requests"] for k, v in commands.items()}
        r["redis_cpu_us"] = None
        r["rss_mb"] = rss_mb(proc.pid)
        if backend_kind == "redis":
            r["redis_sent"] = redis.sent_per_request(lambda: wrk(base + path, jar, 1, False)["requests"])
        rows[(path, "one")] = r
        print(f"  {app:<13} {path:<6} one    {r['rps']:>9.0f} req/s  p99 {r['p99']:7.2f} ms  lost {r['lost']} of {ok} ({r['lost_share']:.0%})"
              + (f"  redis {r['redis_cmds']:.2f} cmd/req ({r['redis_sent']:.2f} sent)" if r["redis_cmds"] is not None else "")
              + (f"  non-2xx {r['errors']}" if r["errors"] else ""), flush=True)


def measure(app, binary, backend_kind, work, redis):
    rows = {}
    proc, base = start(app, binary, backend_kind, work, redis)
    try:
        bare = app.startswith("bare")
        cookies = make_sessions(base, SESSIONS) if not bare else ["x=1"]
        if not bare and len(cookies) < SESSIONS:
            raise SystemExit(f"{app}: /count set {len(cookies)} cookies for {SESSIONS} requests")
        cookie_file = os.path.join(work, f"{app}.cookies")
        open(cookie_file, "w").write("\n".join(cookies) + "\n")
        for path, with_cookie, _ in SCENARIOS:
            jar = cookie_file if with_cookie else None
            wrk(base + path, jar, WARMUP, False)
            redis.cli("CONFIG", "RESETSTAT")
            cpu0, rcpu0 = cpu_seconds(proc.pid), redis.cpu()
            r = wrk(base + path, jar, DURATION, True)
            r["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / r["requests"] * 1e6
            commands = redis.commands() if backend_kind == "redis" else {}
            r["redis_cmds"] = sum(commands.values()) / r["requests"] if backend_kind == "redis" else None
            r["redis_per_command"] = {k: v / r["requests"] for k, v in commands.items()}
            r["redis_cpu_us"] = (redis.cpu() - rcpu0) / r["requests"] * 1e6 if backend_kind == "redis" else None
            r["rss_mb"] = rss_mb(proc.pid)
            if backend_kind == "redis":
                r["redis_sent"] = redis.sent_per_request(lambda: wrk(base + path, jar, 1, False)["requests"])
            rows[(path, with_cookie)] = r
            print(f"  {app:<13} {path:<6} {'cookie' if with_cookie else 'new   '} {r['rps']:>9.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:7.2f} ms  "
                  f"cpu {r['cpu_us']:6.1f} us/req (wrk {r['wrk_cpu_us'] or 0:5.1f}, machine {r['machine_cores'] or 0:.2f} cores)  rss {r['rss_mb']:6.1f} MB" + (f"  redis {r['redis_cmds']:.2f} cmd/req ({r['redis_sent']:.2f} sent)" if r["redis_cmds"] is not None else "")
                  + (f"  non-2xx {r['errors']}" if r["errors"] else ""), flush=True)
        if app in one_session_apps():
            measure_one_session(app, base, proc, backend_kind, work, redis, rows)
    finally:
        proc.terminate()
        proc.wait()
    return rows


IN_PROCESS_SCENARIOS = [("/count", "`/count` with a cookie"), ("/read", "`/read` with a cookie"),
                        ("/count new", "`/count`, new visitor"), ("/read new", "`/read`, no cookie"),
                        ("/count latest", "`/count`, latest cookie"), ("/static", "untouched route, with a cookie")]


def in_process(apps):
    """ns and heap allocations per request of each app called in-process, per scenario:
    {app: {"/count": ns, "/count allocs": n, "/read": ..., "/count new": ..., "/read new": ...}}."""
    out = {}
    for app, binary in IN_PROCESS:
        if app not in apps:
            continue
        line = subprocess.run([binary, "--in-process", app, str(IN_PROCESS_REQUESTS)], capture_output=True, text=True, check=True).stdout
        out[app] = json.loads(line)
        shown = "  ".join(f"{name} {out[app][name]:6.0f} ns {out[app][name + ' allocs']:5.1f} allocs"
                          for name, _ in IN_PROCESS_SCENARIOS if name in out[app])
        print(f"  in-process {app:<18} {shown}", flush=True)
    return out


def added_ns(timings, app, path, field=""):
    """What the session layer adds to a request in-process: the app's ns (or, with field
    " allocs", its allocations) over the bare app of its framework (None when either was not
    measured)."""
    bare = bare_for(app, timings)
    key = path + field
    if app not in timings or bare not in timings or key not in timings[app] or key not in timings[bare]:
        return None
    return timings[app][key] - timings[bare][key]


def in_process_section(timings):
    """The in-process table: each app's ns and allocations per request, per scenario, and what
    the session layer adds to the bare app of its framework, against the peer's addition."""
    if not timings:
        return []
    # How it was measured, from the results (`--report-only` may run with other settings).
    first = next(iter(timings.values()))
    lines = ["## In-process: the session layer's CPU cost (no sockets)", "",
             f"Each app's service called directly on one thread (`--in-process`, `benches/http/in_process.rs`): {first['requests']} requests per scenario "
             f"(with a cookie: cycling through {SESSIONS} sessions), the fastest of {first['repetitions']} repetitions; heap allocations counted by the "
             "binaries' global allocator (the fewest of the repetitions). `/count` with a cookie keeps sending each session's first cookie, as `wrk` does; "
             "`latest cookie` sends the one the session's last response set, as a browser does (cookie-only sessions get a new cookie on every change, "
             "so a memo of opened cookies cannot help there; its allocations include the harness's copy of the cookie); `untouched route` requests, with a cookie, "
             "a route under the layer whose handler never touches the session (the layer's fixed cost). No kernel, no `wrk`: what the framework and the session layer cost "
             "in CPU. `added` is the time (and allocations) over the bare app of the same framework (the session layer's cost); `×peer` is the peer's added time "
             "divided by ours (above 1: ours costs less), the peer being tower-sessions' memory store for the memory app and actix-session's "
             "cookie store for the cookie apps (an actix-web app, so its added time is taken over bare actix-web).", "",
             "| app | " + " | ".join(f"{label} ns | added | ×peer | allocs added" for _, label in IN_PROCESS_SCENARIOS) + " |",
             "|---|" + "---:|---:|---:|---:|" * len(IN_PROCESS_SCENARIOS)]
    for app, _ in IN_PROCESS:
        if app not in timings:
            continue
        cells = []
        for path, _ in IN_PROCESS_SCENARIOS:
            if path not in timings[app]:
                cells += ["–"] * 4
                continue
            mine, peer = added_ns(timings, app, path), IN_PROCESS_PEER.get(app)
            peer_added = added_ns(timings, peer, path) if peer in timings else None
            ratio = peer_added / mine if peer_added is not None and mine and not app.startswith("bare") else None
            allocs = added_ns(timings, app, path, " allocs")
            cells += [f"{timings[app][path]:.0f}", "–" if app.startswith("bare") or mine is None else f"{mine:.0f}", fmt(ratio),
                      "–" if app.startswith("bare") or allocs is None else f"{allocs:.1f}"]
        lines.append(f"| {app} | " + " | ".join(cells) + " |")
    return lines + [""]


def combine(rounds):
    """One app's rounds as one result per scenario: means (per Redis command too), the highest
    RSS, summed request and error counts."""
    out = {}
    for key in rounds[0]:
        rows = [r[key] for r in rounds]
        merged = dict(rows[0])
        for field, value in rows[0].items():
            if field in ("requests", "errors", "lost"):
                merged[field] = sum(r[field] for r in rows)
            elif field == "rss_mb":
                merged[field] = max(r[field] for r in rows)
            elif field == "redis_per_command":
                names = sorted({name for r in rows for name in r[field]})
                merged[field] = {n: sum(r[field].get(n, 0) for r in rows) / len(rows) for n in names}
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[field] = sum(r[field] for r in rows) / len(rows)
            elif value is None:
                merged[field] = None
        merged["rounds_rps"] = [r["rps"] for r in rows]
        out[key] = merged
    return out


def versions():
    lock = open(os.path.join(HERE, "peers", "Cargo.lock")).read()
    wanted = ["tower-sessions", "tower-sessions-redis-store", "tower-sessions-sqlx-store", "tower-sessions-file-store", "actix-session", "actix-web", "axum", "fred", "sqlx"]
    found = {}
    for name, version in re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"', lock):
        if name in wanted:
            found.setdefault(name, []).append(version)
    out = [f"{n} {', '.join(found[n])}" for n in wanted if n in found]
    out.append(subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split(" sha=")[0].strip())
    import glob
    for binary in sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1:] + ["/usr/sbin/mariadbd"]:
        if os.path.exists(binary):
            text = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
            out.append(re.sub(r"\s+", " ", text.replace("/usr/sbin/", "")) + " (throwaway server from test-server: fsync off)")
    out.append(subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0].split(" [")[0])
    return out


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    return f"{os.cpu_count()} cores ({model}), {int(mem) // 1024 // 1024} GiB, Linux {platform.release()}"


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def bare_for(app, results):
    """The ceiling of the app's framework: bare actix-web for actix apps (when measured)."""
    return "bare-actix" if "actix" in app and "bare-actix" in results else "bare"


def ratio_text(ratio, limit):
    """A ratio with two decimals, or three where two would round it onto the limit it misses
    or meets (1.197 would read as 1.20 beside a 1.2 target)."""
    return f"{ratio:.3f}×" if abs(ratio - limit) < 0.005 else f"{ratio:.2f}×"


def targets(results):
    """The issue's targets, checked against this run. A throughput ratio is also worked out
    round by round (each round measures every app once), so the table shows whether a verdict
    held in every round or only on average."""
    def rps(app, path, cookie=True):
        return results[app][(path, cookie)]["rps"]

    def r(app, path, field, cookie=True):
        return results[app][(path, cookie)][field]

    def cpu_with_redis(app, path):
        return r(app, path, "cpu_us") + (r(app, path, "redis_cpu_us") or 0)

    def per_round(app, others, path, cookie=True):
        """`app`'s req/s over the best of `others`, in each round."""
        mine = results[app][(path, cookie)].get("rounds_rps", [])
        theirs = [results[o][(path, cookie)].get("rounds_rps", []) for o in others]
        return [m / max(t[i] for t in theirs) for i, m in enumerate(mine) if all(i < len(t) for t in theirs)]

    rows = []

    def throughput(target, app, others, path, limit, text=None, cookie=True, note=""):
        """A row for `app`'s req/s over the best of `others` against `limit`."""
        ratio = rps(app, path, cookie) / max(rps(o, path, cookie) for o in others)
        rounds = per_round(app, others, path, cookie)
        measured = text(ratio) if text else ratio_text(ratio, limit)
        if len(rounds) > 1:
            digits = 1 if limit >= 10 else 2
            measured += f" (rounds {min(rounds):.{digits}f}-{max(rounds):.{digits}f})"
        measured += note
        verdict = "yes" if ratio >= limit else "**no**"
        if len(rounds) > 1 and ratio >= limit and min(rounds) < limit:
            verdict += " (not in every round)"
        elif len(rounds) > 1 and ratio < limit and max(rounds) >= limit:
            verdict += " (met in some rounds)"
        rows.append((target, measured, verdict))

    def check(target, measured, ok):
        rows.append((target, measured, "yes" if ok else "**no**"))

    # The peers overwrite concurrent commits; ours merges them by default (a compare-and-swap
    # script, costlier for Redis than a SET). The -lww apps give the peers' guarantee, for
    # `/count` (a `/read` writes nothing, so it is the same app there).
    redis_apps = [("ours-redis", "", ("/count", "/read")),
                  ("ours-redis-lww", " with last-write-wins commits (the peers' guarantee)", ("/count",))]
    for app, how, paths in redis_apps:
        if app not in results:
            continue
        for path in paths:
            throughput(f"Redis `{path}`{how} ≥ {REDIS_LEAD}× the faster peer", app, ("tower-redis", "actix-redis"), path, REDIS_LEAD)
            peer_sent = min(r("tower-redis", path, "redis_sent"), r("actix-redis", path, "redis_sent"))
            peer_cmds = min(r("tower-redis", path, "redis_cmds"), r("actix-redis", path, "redis_cmds"))
            ours_sent, ours_cmds = r(app, path, "redis_sent"), r(app, path, "redis_cmds")
            check(f"Redis `{path}`{how}: no more commands sent than the peers",
                  f"{ours_sent:.2f} vs {peer_sent:.2f} sent ({ours_cmds:.2f} vs {peer_cmds:.2f} executed, script-inner commands included)",
                  ours_sent <= peer_sent + 0.01)
            peer_cpu = min(r("tower-redis", path, "cpu_us"), r("actix-redis", path, "cpu_us"))
            check(f"Redis `{path}`{how}: less server CPU per request", f"{r(app, path, 'cpu_us'):.1f} vs {peer_cpu:.1f} µs", r(app, path, "cpu_us") < peer_cpu)
            # The server, Redis and wrk keep the machine's cores busy: throughput follows the
            # CPU they spend per request, Redis's included.
            ours_total, peer_total = cpu_with_redis(app, path), min(cpu_with_redis(p, path) for p in ("tower-redis", "actix-redis"))
            check(f"Redis `{path}`{how}: less server + Redis CPU per request (the machine is saturated: throughput follows the sum)",
                  f"{ours_total:.1f} vs {peer_total:.1f} µs", ours_total < peer_total)
    for app, how, paths in [("ours-actix-redis", "", ("/count", "/read")),
                            ("ours-actix-redis-lww", " with last-write-wins commits", ("/count",))]:
        for path in paths if app in results else ():
            throughput(f"Redis `{path}` on actix-web{how} ≥ {REDIS_LEAD}× actix-session (same framework)", app, ("actix-redis",), path, REDIS_LEAD)
    throughput("SQLite `/count` ≥ 20× tower-sessions' sqlx store", "ours-sqlite", ("tower-sqlite",), "/count", 20, lambda x: f"{x:.1f}×")
    p99 = r("ours-sqlite", "/count", "p99")
    check("SQLite `/count` p99 < 10 ms", f"{p99:.2f} ms", p99 < 10)
    for app, peer, name in (("ours-postgres", "tower-postgres", "PostgreSQL"),
                            ("ours-postgres-cached", "tower-postgres", "PostgreSQL with `local_cache`"),
                            ("ours-mysql", "tower-mysql", "MySQL (MariaDB)")):
        if app not in results or peer not in results:
            continue
        for path in ("/count", "/read"):
            throughput(f"{name} `{path}` ≥ {SQL_LEAD}× tower-sessions' sqlx store", app, (peer,), path, SQL_LEAD)
            ours_p99, peer_p99 = r(app, path, "p99"), r(peer, path, "p99")
            check(f"{name} `{path}`: lower p99 than tower-sessions' sqlx store", f"{ours_p99:.2f} vs {peer_p99:.2f} ms", ours_p99 < peer_p99)
    throughput("fs `/count` ≥ 3× tower-sessions' file store", "ours-fs", ("tower-file",), "/count", 3)
    for app in ("ours-memory", "ours-cookie", "ours-actix-cookie"):
        if app not in results:
            continue
        bare = bare_for(app, results)
        name = "bare actix-web" if bare == "bare-actix" else "bare axum"
        for path in ("/count", "/read"):
            throughput(f"{app} `{path}` ≥ {BARE_SHARE}× {name}", app, (bare,), path, BARE_SHARE)
    # Each with the bare app's ratio to the same peer: what a session layer that cost nothing
    # would reach in this run. A target above it cannot be met on this machine.
    hot = (("/count", True, "`/count`"), ("/read", True, "`/read`"),
           ("/count", False, "new visitor"), ("/read", False, "no cookie"))
    for app, peer, name in (("ours-memory", "tower-memory", "memory vs tower-sessions' memory store"),
                            ("ours-actix-cookie", "actix-cookie", "cookie-only on actix-web vs actix-session's cookie store")):
        if app not in results or peer not in results:
            continue
        bare = bare_for(app, results)
        for path, cookie, what in hot:
            ceiling = rps(bare, path, cookie) / rps(peer, path, cookie)
            rounds = per_round(bare, (peer,), path, cookie)
            spread = f", rounds {min(rounds):.2f}-{max(rounds):.2f}" if len(rounds) > 1 else ""
            # The machine is saturated: throughput follows the server's and wrk's CPU per
            # request together (wrk's grows with the response, a longer Set-Cookie included).
            cpu = "; CPU µs per request, server + wrk: ours {:.1f} + {:.1f}, peer {:.1f} + {:.1f}".format(
                *(r(a, path, f, cookie) or 0 for a in (app, peer) for f in ("cpu_us", "wrk_cpu_us")))
            throughput(f"{name}, {what} ≥ {HOT_LEAD}×", app, (peer,), path, HOT_LEAD, cookie=cookie,
                       note=f"; bare {'actix-web' if bare == 'bare-actix' else 'axum'} {ceiling:.2f}×{spread}{cpu}")
    one_session_targets(results, rows)
    ours, tower = r("ours-memory", "/count", "rss_mb", False), r("tower-memory", "/count", "rss_mb", False)
    check("memory bounded under a flood of new visitors (RSS after the run)", f"{ours:.0f} MB vs tower-sessions {tower:.0f} MB", ours < tower)
    lines = ["## Targets (from this run)", "",
             "A throughput ratio is the ratio of the rounds' means; `rounds` gives its lowest and highest value within one round "
             "(every round measures every app once), and the verdict says when it did not hold in every round. "
             f"The next section works out what the {BARE_SHARE}×-of-bare targets leave for the session layer. "
             f"The memory and cookie-only rows against the peers (≥ {HOT_LEAD}×) also give the bare app's ratio to the same peer "
             "(same framework, same scenario): what a session layer costing nothing would reach in this run, and the CPU the "
             "server and `wrk` spent per request (the machine is saturated, so throughput follows their sum).", "",
             "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in rows]
    return lines + [""]


def one_session_targets(results, rows):
    """The contention targets: no errors on one session for any of ours; `/incr` loses no
    increment; on Redis, `/incr` at REDIS_LEAD× the faster peer's req/s while they lose most."""
    ours = [a for a in one_session_apps() if a.startswith("ours") and a in results]
    for app in ours:
        for path, _ in ONE_SESSION:
            r = results[app].get((path, "one"))
            if r is None:
                continue
            rows.append((f"{app} `{path}` on one session: no errors", f"{r['errors']} non-2xx of {r['requests']}", "yes" if r["errors"] == 0 else "**no**"))
        r = results[app].get(("/incr", "one"))
        if r is not None and not app.endswith("-lww"):
            rows.append((f"{app} `/incr` on one session: no increment lost", f"{r['lost']} lost", "yes" if r["lost"] == 0 else "**no**"))
    for app, peers in (("ours-redis", ("tower-redis", "actix-redis")), ("ours-actix-redis", ("actix-redis",))):
        if app not in results or not all(p in results for p in peers):
            continue
        mine = results[app][("/incr", "one")]
        best = max(peers, key=lambda p: results[p][("/incr", "one")]["rps"])
        theirs = results[best][("/incr", "one")]
        ratio = mine["rps"] / theirs["rps"]
        rounds = [m / t for m, t in zip(mine.get("rounds_rps", []), theirs.get("rounds_rps", []))]
        measured = ratio_text(ratio, REDIS_LEAD) + (f" (rounds {min(rounds):.2f}-{max(rounds):.2f})" if len(rounds) > 1 else "")
        measured += f"; ours lost {mine['lost_share']:.0%}, {best} {theirs['lost_share']:.0%} of its increments"
        rows.append((f"Redis `/incr` on one session ({app}) ≥ {REDIS_LEAD}× the faster peer, losing no update", measured,
                     "yes" if ratio >= REDIS_LEAD and mine["lost"] == 0 else "**no**"))


def one_session_section(results):
    """The table of the ONE_SESSION scenarios."""
    apps = [a for a in one_session_apps() if a in results and (ONE_SESSION[0][0], "one") in results[a]]
    if not apps:
        return []
    lines = ["## One session under contention", "",
             f"`wrk -t{THREADS} -c{CONNECTIONS}` with every request carrying the same session cookie: {CONNECTIONS} requests of one session "
             "in flight at all times (a single-page app, several tabs). After each run the session's count is read back: `lost` is the "
             "2xx responses whose increment is not in the session (summed over the rounds), `lost %` its share. `/count` reads then "
             "writes (per-key last writer wins: a lost increment is expected, an error is not); ours' `/incr` is an `update` operation, "
             "re-applied to whatever a concurrent request committed; the peers' `/incr` is their `/count`. Ours combines the commits of "
             "one session in one process into one store write. Redis commands per request: sent by the app and executed, as above.", ""]
    for path, title in ONE_SESSION:
        lines += [f"### {title}", "",
                  "| app | req/s | rounds differ | ×peer | p50 ms | p99 ms | non-2xx | lost | lost % | CPU µs/req | Redis cmds/req |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for app in apps:
            r = results[app][(path, "one")]
            family = next(f for a, _, _, f in APPS if a == app)
            same = [results[p][(path, "one")]["rps"] for p, _, _, f in APPS
                    if f == family and not p.startswith(("ours", "bare")) and p in results and (path, "one") in results[p]]
            vs_peer = r["rps"] / max(same) if same and app.startswith("ours") else None
            spread = r.get("rounds_rps", [r["rps"]])
            differ = f"{(max(spread) - min(spread)) / r['rps'] * 100:.0f}%" if len(spread) > 1 else "–"
            cmds = f"{fmt(r.get('redis_sent'))} sent, {fmt(r['redis_cmds'])} executed" if r["redis_cmds"] is not None else "–"
            lines.append(f"| {app} | {r['rps']:.0f} | {differ} | {fmt(vs_peer)} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | {r['lost']} | "
                         f"{r['lost_share']:.0%} | {r['cpu_us']:.1f} | {cmds} |")
        lines.append("")
    return lines


def budget_section(results, timings):
    """What the BARE_SHARE-of-bare targets leave for the session layer: apps without a backend keep
    one server process busy, so their ×bare is bare's CPU per request over theirs."""
    apps = [a for a, _, backend, _ in APPS if backend is None and a in results]
    def cores(r):
        """Cores the server process kept busy: req/s × CPU seconds per request."""
        return r["rps"] * r["cpu_us"] / 1e6

    many = [(path, cookie) for path, cookie, _ in SCENARIOS]
    used = [cores(results[a][k]) for a in apps for k in many]
    if not used or "bare" not in results:
        return []
    limit = BARE_SHARE
    machine = [results[a][k]["machine_cores"] for a in apps for k in many if results[a][k].get("machine_cores")]
    wrk_had = (f"`wrk` had the other core: the machine was busy on {min(machine):.2f}-{max(machine):.2f} cores" if machine
               else "`wrk` had the other core")
    lines = [f"## What {limit}× of bare leaves for the session layer", "",
             f"Every app without a backend kept its server process busy on about one core (`cores` = req/s × CPU per request: "
             f"{min(used):.2f}-{max(used):.2f} across these apps and all four scenarios; {wrk_had}), so its throughput is close to one core "
             f"divided by its CPU per request, and its ×bare close to the bare app's CPU per request divided by its own. {limit}× of bare thus "
             f"allows {1 / limit - 1:.1%} more server CPU per request than the bare app (`budget`). `over bare` is the app's CPU per request "
             "over the bare app's under load (kernel and I/O included); `in-process` is the session layer's own added time (µs) from the "
             "in-process table below (no sockets).", "",
             "| app | `/count` CPU µs/req | over bare | cores | in-process | `/read` CPU µs/req | over bare | cores | in-process |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for bare in ("bare", "bare-actix"):
        if bare not in results:
            continue
        family = [bare] + [a for a in apps if a != bare and bare_for(a, results) == bare]
        base = {path: results[bare][(path, True)]["cpu_us"] for path in ("/count", "/read")}
        budget = []
        for path in ("/count", "/read"):
            budget += [f"≤ {base[path] / limit:.2f}", f"≤ {base[path] * (1 / limit - 1):.2f}", "", ""]
        for app in family:
            cells = []
            for path in ("/count", "/read"):
                r = results[app][(path, True)]
                added = added_ns(timings, app, path)
                cells += [f"{r['cpu_us']:.2f}", "–" if app == bare else f"{r['cpu_us'] - base[path]:.2f}", f"{cores(r):.2f}",
                          "–" if app == bare or added is None else f"{added / 1000:.2f}"]
            lines.append(f"| {app} | " + " | ".join(cells) + " |")
            if app == bare:
                lines.append(f"| budget at {limit}× {bare} | " + " | ".join(budget) + " |")
    return lines + [""]


def redis_cpu_section(results):
    """Where a Redis `/count` request's CPU goes, across server, Redis and wrk: with the
    machine about as busy for every app, a throughput ratio is the inverse ratio of the machine
    time a request costs."""
    key = ("/count", True)
    apps = [a for a, _, backend, _ in APPS if backend == "redis" and a in results and results[a][key].get("machine_cores")]
    if not apps:
        return []
    busy = [results[a][key]["machine_cores"] for a in apps]
    peers = [a for a in apps if not a.startswith("ours")]
    faster = max(peers, key=lambda a: results[a][key]["rps"]) if peers else None
    limit = REDIS_LEAD

    def machine_us(app):
        r = results[app][key]
        return r["machine_cores"] / r["rps"] * 1e6

    def parts(app):
        """The server's, Redis's and wrk's CPU per request."""
        r = results[app][key]
        return [r["cpu_us"], r["redis_cpu_us"] or 0.0, r["wrk_cpu_us"] or 0.0]

    gaps = {app: machine_us(app) - sum(parts(app)) for app in apps}
    widest = max(gaps, key=lambda a: abs(gaps[a]))

    lines = ["## Redis `/count`: where a request's CPU goes", "",
             f"While these apps ran, the machine was busy on {min(busy):.2f}-{max(busy):.2f} of its {os.cpu_count()} cores (`/proc/stat`: user, system "
             "and interrupt time of all processes; the rest was idle while requests waited on one another), and a request cost it `machine` = "
             "busy cores / req/s of CPU time: the server's, Redis's and `wrk`'s, each measured per process, and whatever else ran on the "
             f"machine meanwhile (`machine` − `sum`: at most {abs(gaps[widest]):.1f} µs per request, for {widest}). "
             + (f"At equal busy cores, {limit}× the faster peer's throughput ({faster}) needs a request to cost at most 1/{limit} of its machine time (`budget`)." if faster else ""), "",
             "| app | req/s | server µs/req | Redis µs/req | wrk µs/req | sum | machine µs/req | busy cores |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    if faster:
        lines.append(f"| budget at {limit}× {faster} | ≥ {results[faster][key]['rps'] * limit:.0f} |  |  |  |  | ≤ {machine_us(faster) / limit:.1f} |  |")
    for app in apps:
        r = results[app][key]
        lines.append(f"| {app} | {r['rps']:.0f} | " + " | ".join(f"{p:.1f}" for p in parts(app))
                     + f" | {sum(parts(app)):.1f} | {machine_us(app):.1f} | {r['machine_cores']:.2f} |")
    return lines + [""]


def report(results, measured, timings):
    peers = [a for a, *_ in APPS if a.startswith(("tower", "actix"))]
    # From the results, not the environment: `--report-only` may run with another BENCH_ROUNDS.
    rounds = max(len(row.get("rounds_rps", [None])) for rows in results.values() for row in rows.values())
    lines = ["# Benchmarks", "",
             f"Measured {measured} UTC on {machine()}, "
             f"server, backend and `wrk` sharing the cores. Rewritten by `bash benches/run`.", "",
             "Versions: " + "; ".join(versions()) + ".", "",
             f"Every app serves the same handlers (`/count` reads an integer from the session, then stores it plus one; "
             f"`/read` only reads it; `/incr`, in the one-session section, increments with ours' `update` operation and is `/count` again for the peers), "
             f"written the way each crate's documentation shows (`benches/http/`). Load: `wrk -t{THREADS} -c{CONNECTIONS}`, "
             f"{WARMUP} s warm-up then {DURATION} s measured, per scenario, in {rounds} rounds (every app once per round, in forward then reverse order, so that the machine's drift during the run does not favour any app, and each app next to the apps it is compared with, so that both sides of a ratio are measured within a minute; figures are the means of the rounds, RSS the highest); with a cookie, requests cycle through {SESSIONS} real sessions (each wrk thread through its own share, so no two threads hit one session in step). "
             "Apps ending in `-lww` are ours with `ConcurrentWrites::LastWriteWins`: plain writes, the guarantee the peers give (a commit overwrites "
             "what a concurrent request to the same session committed); ours without it merges concurrent commits by compare-and-swap, on Redis a Lua script. "
             "`×bare` is the ratio to the bare app of the same framework (axum, or actix-web for the `actix` rows; no sessions) and `×peer` to the best peer on the same kind of backend, both from the same run: "
             "machines here are shared and noisy, so read the ratios, not the absolute numbers. CPU is the server process's user+system time per request; "
             "Redis commands per request: sent by the app (counted with `MONITOR` in a separate 1 s phase, as it slows Redis down) and executed "
             "(`INFO commandstats` of the measured phase, commands run inside scripts included). "
             "`rounds differ`: how far apart the rounds' req/s were, as a share of the mean (the noise of this run).", ""]
    lines += targets(results)
    lines += budget_section(results, timings)
    lines += redis_cpu_section(results)
    lines += one_session_section(results)
    for path, with_cookie, title in SCENARIOS:
        key = (path, with_cookie)
        lines += [f"## {title}", "", "| app | req/s | rounds differ | ×bare | ×peer | p50 ms | p99 ms | CPU µs/req | Redis cmds/req | Redis CPU µs/req | RSS MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for app, _, _, family in APPS:
            if app not in results:
                continue
            r = results[app][key]
            same = [results[p][key]["rps"] for p, _, _, f in APPS if p in peers and f == family and p in results]
            vs_peer = r["rps"] / max(same) if same and app.startswith("ours") else None
            detail = ", ".join(f"{name} {n:.2f}" for name, n in sorted(r.get("redis_per_command", {}).items()))
            cmds = (f"{fmt(r.get('redis_sent'))} sent, {fmt(r['redis_cmds'])} executed" + (f" ({detail})" if detail else "")
                    if r["redis_cmds"] is not None else "–")
            bare = results[bare_for(app, results)][key]["rps"]
            spread = r.get("rounds_rps", [r["rps"]])
            differ = f"{(max(spread) - min(spread)) / r['rps'] * 100:.0f}%" if len(spread) > 1 else "–"
            lines.append(f"| {app} | {r['rps']:.0f} | {differ} | {r['rps'] / bare:.2f} | {fmt(vs_peer)} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_us']:.1f} | {cmds} | {fmt(r['redis_cpu_us'], 1)} | {r['rss_mb']:.0f} |")
        lines.append("")
    lines += in_process_section(timings)
    lines += extra_sections()
    return "\n".join(lines)


def extra_sections():
    """The paired hot-path ratios, instruction counts, load test, scale and criterion tables written by the earlier
    steps of benches/run."""
    out = []
    paired = os.path.join(ROOT, "target", "bench-paired.md")
    if os.path.exists(paired):
        out += [open(paired).read().strip(), ""]
    instructions = os.path.join(ROOT, "target", "bench-instructions.md")
    if os.path.exists(instructions):
        out += [open(instructions).read().strip(), ""]
    concurrent = os.path.join(ROOT, "target", "bench-concurrent-writes.md")
    if os.path.exists(concurrent):
        out += ["## 32 concurrent writers per driver", "",
                "`cargo bench -p session-benches --bench concurrent_writes`: 32 tasks, each committing a change to its own 1 KiB "
                "session (load + compare-and-swap commit) for 4 s after a warm-up, through the session layer, no HTTP.", "",
                open(concurrent).read().strip(), ""]
    scale = os.path.join(ROOT, "target", "bench-scale.md")
    if os.path.exists(scale):
        out += ["## Scale: stored sessions and memory per session", "",
                "`cargo bench -p session-benches --bench scale`: N sessions of ~100 bytes of data, then 2,000 read+update requests on "
                "random sessions (single task). Bytes per session: process RSS growth (memory), disk blocks (fs, SQLite file and WAL), "
                "Redis `used_memory` growth.", "",
                open(scale).read().strip(), ""]
    table = subprocess.run([sys.executable, os.path.join(HERE, "..", "criterion_table.py")], capture_output=True, text=True).stdout.strip()
    if "|" in table:
        out += ["## Micro benchmarks (criterion medians)", "",
                "`cargo bench -p session-benches --bench load_commit`: one request's session work without HTTP, single task: `read` "
                "loads from the cookie and commits nothing, `update` changes a key (get + compare-and-swap put), `new` is a new "
                "visitor's first write (the sessions it creates are deleted between samples, untimed, so that the store "
                "does not grow by hundreds of thousands of them; except on fs, where creating files right after deleting thousands is "
                "10-30× slower for a few seconds on this machine's disk: see `benches/benches/load_commit.rs`).", "", table, ""]
    return out


def load_saved():
    saved = json.load(open(os.path.join(ROOT, "target", "http-bench.json")))
    measured = saved.pop("_measured", "an earlier run")
    timings = saved.pop("_in_process", {})
    kinds = {"cookie": True, "new": False, "one": "one"}
    return {app: {(k.split()[0], kinds[k.split()[1]]): v for k, v in rows.items()} for app, rows in saved.items()}, measured, timings


def main():
    if sys.argv[1:] == ["--report-only"]:
        open(os.path.join(ROOT, "BENCHMARKS.md"), "w").write(report(*load_saved()) + "\n")
        print("BENCHMARKS.md rewritten from target/http-bench.json")
        return
    for tool in ("wrk", "redis-server", "redis-cli"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: sudo apt-get install -y wrk redis-server (or run bash benches/run)")
    only = sys.argv[1:]
    work = tempfile.mkdtemp(prefix="session-bench-")
    redis = Redis(work)
    by_name = {a[0]: a for a in APPS}
    chosen = [by_name[name] for name in RUN_ORDER if not only or name in only or name.startswith("bare")]
    rounds = {a[0]: [] for a in chosen}
    try:
        for n in range(ROUNDS):
            for app, binary, backend, _ in chosen if n % 2 == 0 else reversed(chosen):
                print(f"{app} (round {n + 1} of {ROUNDS}):", flush=True)
                rounds[app].append(measure(app, binary, backend, work, redis))
        results = {app: combine(rows) for app, rows in rounds.items()}
        print("in-process:", flush=True)
        timings = in_process([a[0] for a in chosen])
    finally:
        redis.stop()
        SQL.stop()
        shutil.rmtree(work, ignore_errors=True)
    measured = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
    label = {True: "cookie", False: "new", "one": "one"}
    saved = {a: {f"{p} {label[c]}": r for (p, c), r in rows.items()} for a, rows in results.items()}
    saved["_measured"] = measured
    saved["_in_process"] = timings
    if only:
        # A partial run (named apps only) is for a quick look: it leaves the saved full run alone.
        json.dump(saved, open(os.path.join(ROOT, "target", "http-bench-partial.json"), "w"), indent=1)
        return
    json.dump(saved, open(os.path.join(ROOT, "target", "http-bench.json"), "w"), indent=1)
    open(os.path.join(ROOT, "BENCHMARKS.md"), "w").write(report(results, measured, timings) + "\n")
    print("BENCHMARKS.md rewritten")


if __name__ == "__main__":
    main()
