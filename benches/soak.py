#!/usr/bin/env python3
"""Soak: trunkgate carries a steady call rate for a long, bounded time; its RSS and CPU are
sampled every 10 s. A gateway that leaks or slows down shows it here as a slope.

SIPp's built-in UAC (127.0.0.2) places 100 ms calls at --rate CPS through the gateway of
benches/trunkgate (127.0.0.1:5072) to SIPp's built-in UAS (127.0.0.3), for --minutes. Each
sample: RSS (KiB), CPU over the last 10 s (% of one core), calls and transactions alive,
and SIPp's successful and failed call counts so far. The summary compares the first and
the last fifth of the run (medians), and fits a line through the RSS samples after the
first minute (the warm-up: transactions live 32 s after each call).

Usage: benches/soak.py [--rate 1000] [--minutes 30] [--bin target/release/trunkgate] [--csv FILE]
Needs: sipp (sip-tester), a release build. All traffic stays on 127.0.0.0/8.
"""
import argparse, csv, os, shutil, signal, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from gateway_stats import TICK, bench_workdir, cpu_ticks, metric, rss_kib  # noqa: E402  (beside this script)
EVERY_S = 10


def sipp_counts(stat_path):
    """(successful, failed) calls so far from SIPp's -trace_stat file, or (None, None)."""
    try:
        with open(stat_path) as f:
            rows = list(csv.reader(f, delimiter=";"))
        head, last = rows[0], rows[-1]
        return int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")])
    except (OSError, ValueError, IndexError):
        return None, None


def slope_per_hour(samples):
    """Least-squares slope of RSS (KiB) against time, in KiB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 3600 if var else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/trunkgate"))
    ap.add_argument("--csv", help="write every sample here")
    a = ap.parse_args()
    if metric("trunkgate_active_calls") is not None:
        sys.exit("something already serves 127.0.0.1:9465 (a stale gateway?): stop it first")
    seconds = int(a.minutes * 60)
    work, conf = bench_workdir("trunkgate-soak-", f"\n[limits]\ncps = {a.rate * 4}\n")
    gw = subprocess.Popen([a.bin, "run", "--config", conf],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "gw.log"), "w"),
                          env=dict(os.environ, RUST_LOG="warn"))
    procs = [gw]
    samples = []
    try:
        time.sleep(2)
        if gw.poll() is not None:
            sys.exit("the gateway did not start:\n" + open(os.path.join(work, "gw.log")).read())
        idle = rss_kib(gw.pid)
        procs.append(subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.3", "-p", "5090", "-nostdin"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work))
        time.sleep(0.5)
        stat = os.path.join(work, "uac.csv")
        procs.append(subprocess.Popen(
            ["sipp", "-sn", "uac", "-i", "127.0.0.2", "-p", "5091", "-nostdin",
             "-r", str(a.rate), "-m", str(a.rate * seconds), "-d", "100", "-l", str(a.rate * 4),
             "-timeout", f"{seconds + 60}s", "-recv_timeout", "5000",
             "-trace_stat", "-stf", stat, "-fd", str(EVERY_S), "127.0.0.1:5072"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work))
        t_start = time.time()
        c_prev, t_prev = cpu_ticks(gw.pid), t_start
        print("| t (s) | RSS (MiB) | CPU (% of a core) | calls alive | transactions | calls ok | failed |")
        print("|---|---|---|---|---|---|---|", flush=True)
        while time.time() - t_start < seconds:
            time.sleep(EVERY_S)
            if gw.poll() is not None:
                print("the gateway exited", file=sys.stderr)
                break
            now, c = time.time(), cpu_ticks(gw.pid)
            cpu = (c - c_prev) / TICK / (now - t_prev) * 100
            c_prev, t_prev = c, now
            ok, failed = sipp_counts(stat)
            s = {"t": round(now - t_start), "rss_kib": rss_kib(gw.pid), "cpu_pct": cpu,
                 "calls": metric("trunkgate_active_calls"), "txns": metric("trunkgate_transactions"),
                 "ok": ok, "failed": failed}
            samples.append(s)
            print(f"| {s['t']} | {s['rss_kib'] / 1024:.1f} | {cpu:.1f} | {s['calls']} | {s['txns']} | {ok} | {failed} |",
                  flush=True)
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(work, ignore_errors=True)
    if a.csv and samples:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(samples[0]))
            w.writeheader()
            w.writerows(samples)
    if len(samples) < 10:
        sys.exit("too few samples for a summary")
    fifth = max(len(samples) // 5, 1)
    first, last = samples[:fifth], samples[-fifth:]
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    steady = [(s["t"], s["rss_kib"]) for s in samples if s["t"] > 60]
    ok, failed = samples[-1]["ok"], samples[-1]["failed"]
    print(f"\n{a.rate} CPS for {seconds // 60} min, idle RSS {idle / 1024:.1f} MiB, {len(samples)} samples")
    print(f"RSS: first fifth median {med(first, 'rss_kib') / 1024:.1f} MiB, last fifth "
          f"{med(last, 'rss_kib') / 1024:.1f} MiB; range after the first minute "
          f"{min(r for _, r in steady) / 1024:.1f}-{max(r for _, r in steady) / 1024:.1f} MiB; "
          f"slope {slope_per_hour(steady) / 1024:+.2f} MiB per hour")
    print(f"CPU: first fifth median {med(first, 'cpu_pct'):.1f} %, last fifth {med(last, 'cpu_pct'):.1f} % "
          f"(all samples {min(s['cpu_pct'] for s in samples):.1f}-{max(s['cpu_pct'] for s in samples):.1f} %)")
    if ok is not None:
        print(f"calls: {ok} ok, {failed} failed ({100.0 * failed / max(ok + failed, 1):.3f} %)")


if __name__ == "__main__":
    main()
