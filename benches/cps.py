#!/usr/bin/env python3
"""Calls-per-second load benchmark: SIPp -> (nothing | Kamailio | trunkgate | the Kamailio
front with 1 or 2 trunkgate instances behind it) -> SIPp.

For each target, SIPp's built-in UAC places 100 ms calls at stepped rates (each step bounded
to STEP_S seconds and RATE*STEP_S calls) against SIPp's built-in UAS. A step passes when
fewer than 0.1 % of its calls fail; the result for a target is its highest passing rate.
The middle process's CPU (user+system, all its processes) and peak RSS are read from /proc.
All traffic stays on 127.0.0.0/8. Everything is killed at the end of each target.

Usage: benches/cps.py [--targets direct,kamailio,trunkgate,trunkgate-base,front-1,front-2] [--rates 500,1000,...] [--step 10]
Setup latency (INVITE -> 200) is timed by a probe beside the load: one call at a time every
40 ms from the UAC's address (another port), p50/p99 per step.
(front-N: contrib/kamailio/trunkgate-front.cfg on 127.0.0.1:5074 with N instances behind it;
the CPU and PSS reported are the front's and the instances' together.)
(trunkgate-base runs the binary named by TRUNKGATE_BASE_BIN: an earlier build, for before/after;
with TRUNKGATE_BASE_CONFIG, on that configuration instead of benches/trunkgate/gateway.toml.)
Needs: sipp (sip-tester), kamailio (for that target), a release build of trunkgate.
"""
import argparse, csv, glob, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UAS = ("127.0.0.3", 5090)
UAC = ("127.0.0.2", 5091)
from gateway_stats import TICK, cpu_ticks as process_ticks  # noqa: E402  (beside this script)


def cpu_ticks(pids):
    """CPU of every process of the middle (Kamailio forks workers); one that ended counts 0."""
    total = 0
    for pid in pids:
        try:
            total += process_ticks(pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def mem_kib(pids):
    """Proportional set size summed over the processes: shared memory (Kamailio's shm pool)
    is counted once, not once per process."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def children_of(pid):
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for k in kids:
            out += children_of(int(k))
    except Exception:
        pass
    return out


def start_uas(work):
    return subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", UAS[0], "-p", str(UAS[1]), "-nostdin"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_middle(target, work):
    if target == "direct":
        return None, UAS
    if target == "kamailio":
        p = subprocess.Popen(["kamailio", "-DD", "-E", "-m", "512", "-M", "32", "-f", os.path.join(ROOT, "benches/kamailio.cfg")],
                             cwd=work, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "kamailio.log"), "w"))
        time.sleep(1.5)
        return p, ("127.0.0.1", 5070)
    if target in ("trunkgate", "trunkgate-base"):
        os.makedirs("/tmp/trunkgate-bench", exist_ok=True)
        # trunkgate-base: an earlier build (TRUNKGATE_BASE_BIN) measured in the same run, for
        # before/after figures.
        if target == "trunkgate-base":
            binary = os.environ["TRUNKGATE_BASE_BIN"]
        else:
            binary = os.environ.get("TRUNKGATE_BIN", os.path.join(ROOT, "target/release/trunkgate"))
        env = dict(os.environ, RUST_LOG="warn")
        log = os.path.join(work, "trunkgate.log")
        # TRUNKGATE_BASE_CONFIG: the base target on another configuration (the same binary
        # on a wildcard listener, say).
        config = os.path.join(ROOT, "benches/trunkgate/gateway.toml")
        if target == "trunkgate-base":
            config = os.environ.get("TRUNKGATE_BASE_CONFIG", config)
        p = subprocess.Popen([binary, "run", "--config", config],
                             cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        time.sleep(1.0)
        if p.poll() is not None:
            raise SystemExit(f"{target} did not start:\n" + open(log).read())
        return p, ("127.0.0.1", 5072)
    if target.startswith("front-"):
        return start_front(int(target.split("-")[1]), work)
    raise SystemExit(f"unknown target {target}")


FRONT = ("127.0.0.1", 5074)


def start_front(n, work):
    """The Kamailio front and `n` trunkgate instances, all children of one shell (so their
    CPU is summed and one process group stops them)."""
    binary = os.environ.get("TRUNKGATE_BIN", os.path.join(ROOT, "target/release/trunkgate"))
    base = open(os.path.join(ROOT, "benches/trunkgate/gateway.toml")).read()
    cmds, instances = [], []
    for i in range(1, n + 1):
        port = 5080 + i
        d = os.path.join(work, f"instance-{i}")
        os.makedirs(d)
        cfg = (base.replace('profiles = "profiles"', f'profiles = "{ROOT}/benches/trunkgate/profiles"')
                   .replace('listen    = ["udp:127.0.0.1:5072"]',
                            f'listen    = ["udp:127.0.0.1:{port}"]\nfront     = "udp:{FRONT[0]}:{FRONT[1]}"')
                   .replace('/tmp/trunkgate-bench/cdr.jsonl', os.path.join(d, "cdr.jsonl"))
                   .replace('127.0.0.1:9465', f'127.0.0.1:{9480 + i}'))
        with open(os.path.join(d, "gateway.toml"), "w") as f:
            f.write(cfg + '\n[callback]\nport = 0\n')
        cmds.append(f"RUST_LOG=warn {binary} run --config {d}/gateway.toml 2>{d}/gateway.log &")
        instances.append(f"1 sip:127.0.0.1:{port}")
    with open(os.path.join(work, "dispatcher.list"), "w") as f:
        f.write("\n".join(instances) + "\n")
    cfg = (open(os.path.join(ROOT, "contrib/kamailio/trunkgate-front.cfg")).read()
           .replace("@LISTEN@", f"udp:{FRONT[0]}:{FRONT[1]}")
           .replace("@DISPATCHER_LIST@", os.path.join(work, "dispatcher.list"))
           .replace("debug=2", "debug=1")
           # One worker, as benches/kamailio.cfg: two can reorder a call's 180 and 200,
           # which SIPp's built-in UAC counts as a failed call.
           .replace("children=2", "children=1"))
    with open(os.path.join(work, "front.cfg"), "w") as f:
        f.write(cfg)
    cmds.append(f"kamailio -DD -E -m 512 -M 32 -f {work}/front.cfg 2>{work}/kamailio.log &")
    p = subprocess.Popen(["bash", "-c", " ".join(cmds) + " wait"], cwd=work,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(3.5)  # the instances start, the front's probes find them up
    return p, FRONT


def wait_free(addrs, limit_s=40):
    """Until every (ip, port) can be bound over UDP again: the next target must not start
    while the last one (or its SIPp) still holds its sockets."""
    end = time.time() + limit_s
    for ip, port in addrs:
        while time.time() < end:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((ip, port))
                break
            except OSError:
                time.sleep(0.2)
            finally:
                s.close()


def run_step(work, dest, rate, step_s):
    calls = rate * step_s
    stat = os.path.join(work, f"uac_{rate}.csv")
    for f in glob.glob(os.path.join(work, "*_.csv")) + [stat]:
        if os.path.exists(f):
            os.remove(f)
    cmd = ["sipp", "-sn", "uac", f"{dest[0]}:{dest[1]}", "-i", UAC[0], "-p", str(UAC[1]),
           "-s", "+8610123", "-r", str(rate), "-m", str(calls), "-d", "100",
           "-l", str(max(rate * 4, 100)), "-nostdin", "-timeout", f"{step_s + 40}s",
           "-trace_stat", "-stf", stat, "-fd", "1", "-recv_timeout", "5000"]
    setup = []
    probe = threading.Thread(target=probe_calls, args=(dest, step_s, setup), daemon=True)
    t0 = time.time()
    sipp = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe.start()
    try:
        sipp.wait(timeout=step_s + 60)
    except subprocess.TimeoutExpired:
        sipp.kill()
        sipp.wait()
    probe.join(timeout=10)
    elapsed = time.time() - t0
    ok = failed = 0
    with open(stat) as f:
        rows = list(csv.reader(f, delimiter=";"))
    head, last = rows[0], rows[-1]
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")])
    return ok, failed, elapsed, sorted(setup)


PROBE = ("127.0.0.2", 5095)  # the UAC's address (its profile), another port
PROBE_SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
             "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def probe_calls(dest, step_s, out):
    """Setup latency beside the load: one call at a time every 40 ms from 1 s into the step to
    1 s before its end, INVITE -> 200 timed here with a monotonic clock (SIPp's own response
    times tick in 4 ms steps), then ACK and BYE. A call without a 200 within 2 s is not
    counted (the step's failure count covers it)."""
    import random
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(PROBE)
    s.settimeout(0.2)
    time.sleep(1.0)
    end = time.time() + step_s - 2.0
    n = 0
    try:
        while time.time() < end:
            n += 1
            tag, cid = f"p{random.getrandbits(32):x}", f"probe-{n}-{random.getrandbits(48):x}"
            t = probe_one(s, dest, n, tag, cid)
            if t is not None:
                out.append(t)
            time.sleep(0.04)
    finally:
        s.close()


def probe_request(method, uri, dest, branch, tag, cid, cseq, extra="", body=""):
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {PROBE[0]}:{PROBE[1]};branch=z9hG4bK{branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{PROBE[0]}>;tag={tag}\r\n{extra}"
            f"Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:probe@{PROBE[0]}:{PROBE[1]}>\r\n"
            f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}").encode()


def probe_one(s, dest, n, tag, cid):
    uri = f"sip:+8610123@{dest[0]}:{dest[1]}"
    to = f"To: <{uri}>\r\n"
    t0 = time.perf_counter()
    s.sendto(probe_request("INVITE", uri, dest, f"i{n}{tag}", tag, cid, 1, to, PROBE_SDP), dest)
    deadline = t0 + 2.0
    while time.perf_counter() < deadline:
        try:
            data = s.recv(65535).decode(errors="replace")
        except socket.timeout:
            continue
        if cid not in data or not data.startswith("SIP/2.0 200") or "INVITE" not in data.split("CSeq:", 1)[-1].split("\r\n", 1)[0]:
            continue
        took = (time.perf_counter() - t0) * 1000.0
        heads = data.split("\r\n\r\n", 1)[0].split("\r\n")
        to_line = next((h for h in heads if h.lower().startswith(("to:", "t:"))), "To: <" + uri + ">")
        contact = next((h.split("<", 1)[1].split(">", 1)[0] for h in heads
                        if h.lower().startswith(("contact:", "m:")) and "<" in h), uri)
        routes = [h.split(":", 1)[1].strip() for h in heads if h.lower().startswith("record-route:")]
        route = "".join(f"Route: {r}\r\n" for r in reversed(routes))
        extra = f"{to_line}\r\n{route}"
        s.sendto(probe_request("ACK", contact, dest, f"a{n}{tag}", tag, cid, 1, extra), dest)
        s.sendto(probe_request("BYE", contact, dest, f"b{n}{tag}", tag, cid, 2, extra), dest)
        return took
    return None


def percentile(sorted_xs, q):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, int(q * len(sorted_xs)))]


def bench(target, rates, step_s, reps):
    work = tempfile.mkdtemp(prefix=f"cps-{target}-")
    uas = start_uas(work)
    middle, dest = start_middle(target, work)
    time.sleep(0.5)
    results = []
    try:
        for rate in rates:
            runs = []
            for _ in range(reps):
                pids = children_of(middle.pid) if middle else []
                c0, t0 = cpu_ticks(pids), time.time()
                ok, failed, _elapsed, setup = run_step(work, dest, rate, step_s)
                cpu = (cpu_ticks(pids) - c0) / TICK / max(time.time() - t0, 1e-6) * 100 if middle else None
                mem = mem_kib(pids) if middle else None
                fail_pct = 100.0 * (rate * step_s - ok) / (rate * step_s)
                p50, p99 = percentile(setup, 0.50), percentile(setup, 0.99)
                runs.append((fail_pct, cpu, mem, p50, p99))
                print(f"{target:10s} rate {rate:5d}/s  ok {ok:6d}  failed {failed:5d} ({fail_pct:.3f} %)  "
                      f"cpu {'-' if cpu is None else f'{cpu:5.1f} %'}  pss {'-' if mem is None else f'{mem/1024:.1f} MiB'}  "
                      f"setup p50 {'-' if p50 is None else f'{p50:.2f} ms'} p99 {'-' if p99 is None else f'{p99:.2f} ms'} ({len(setup)} probes)",
                      flush=True)
                time.sleep(3)  # let retransmission/absorb timers of the step run out
            med = lambda xs: statistics.median(xs) if None not in xs else None
            spread = lambda i: None if None in [r[i] for r in runs] else (min(r[i] for r in runs), max(r[i] for r in runs))
            row = (rate, med([r[0] for r in runs]), med([r[1] for r in runs]), med([r[2] for r in runs]),
                   med([r[3] for r in runs]), med([r[4] for r in runs]), spread(1), spread(4))
            results.append(row)
            if row[1] >= 0.1:
                break
    finally:
        if middle and target.startswith("front-"):
            try:
                os.killpg(middle.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in [middle, uas]:
            if p:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["pkill", "-f", "benches/kamailio.cfg"], stderr=subprocess.DEVNULL)
        wait_free([UAS, UAC, ("127.0.0.1", 5070), ("127.0.0.1", 5072), FRONT,
                   ("127.0.0.1", 5081), ("127.0.0.1", 5082)])
        shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="direct,kamailio,trunkgate")
    ap.add_argument("--rates", default="1000,1500,2000,2500,3000,3500,4000,5000")
    ap.add_argument("--step", type=int, default=8, help="seconds per step")
    ap.add_argument("--reps", type=int, default=3, help="runs per rate; medians are reported")
    a = ap.parse_args()
    rates = [int(x) for x in a.rates.split(",")]
    summary = {t: bench(t, rates, a.step, a.reps) for t in a.targets.split(",")}
    print(f"\nMedians of {a.reps} runs of {a.step} s per rate (100 ms calls).\n")
    print("| target | rate (CPS) | failed calls | middle CPU (% of one core; spread) | CPU per call (µs) | middle PSS | setup p50 | setup p99 (spread) |")
    print("|---|---|---|---|---|---|---|---|")
    for t, rows in summary.items():
        for rate, fail, cpu, mem, p50, p99, cpu_sp, p99_sp in rows:
            cpu_s = "-" if cpu is None else f"{cpu:.0f} % ({cpu_sp[0]:.0f}–{cpu_sp[1]:.0f})"
            per_call = "-" if cpu is None else f"{cpu / 100 / rate * 1e6:.0f}"
            mem_s = "-" if mem is None else f"{mem / 1024:.0f} MiB"
            p50_s = "-" if p50 is None else f"{p50:.2f} ms"
            p99_s = "-" if p99 is None else f"{p99:.2f} ms ({p99_sp[0]:.2f}–{p99_sp[1]:.2f})"
            print(f"| {t} | {rate} | {fail:.3f} % | {cpu_s} | {per_call} | {mem_s} | {p50_s} | {p99_s} |")
    best = {t: max([r[0] for r in rows if r[1] < 0.1], default=0) for t, rows in summary.items()}
    print("\n| target | highest CPS with median failed < 0.1 % |\n|---|---|")
    for t, b in best.items():
        print(f"| {t} | {b} |")
    if best.get("trunkgate-base") and best.get("trunkgate"):
        print(f"\ntrunkgate / trunkgate-base highest-CPS ratio: {best['trunkgate'] / best['trunkgate-base']:.2f}")
        k = {r[0]: r[2] for r in summary["trunkgate-base"]}
        g = {r[0]: r[2] for r in summary["trunkgate"]}
        for r in sorted(set(k) & set(g)):
            if k[r] and g[r]:
                print(f"CPU per call at {r} CPS, trunkgate / trunkgate-base: {g[r] / k[r]:.2f}")
    if best.get("kamailio") and best.get("trunkgate"):
        print(f"\ntrunkgate / Kamailio highest-CPS ratio: {best['trunkgate'] / best['kamailio']:.2f}")
        k = {r[0]: r[2] for r in summary["kamailio"]}
        g = {r[0]: r[2] for r in summary["trunkgate"]}
        common = [r for r in sorted(set(k) & set(g)) if k[r] and g[r]]
        for r in common:
            print(f"CPU per call at {r} CPS, trunkgate / Kamailio: {g[r] / k[r]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
