#!/usr/bin/env python3
"""Calls-per-second load benchmark: SIPp -> (nothing | Kamailio | trunkgate) -> SIPp.

For each target, SIPp's built-in UAC places 100 ms calls at stepped rates (each step bounded
to STEP_S seconds and RATE*STEP_S calls) against SIPp's built-in UAS. A step passes when
fewer than 0.1 % of its calls fail; the result for a target is its highest passing rate.
The middle process's CPU (user+system, all its processes) and peak RSS are read from /proc.
All traffic stays on 127.0.0.0/8. Everything is killed at the end of each target.

Usage: benches/cps.py [--targets direct,kamailio,trunkgate] [--rates 500,1000,...] [--step 10]
Needs: sipp (sip-tester), kamailio (for that target), a release build of trunkgate.
"""
import argparse, csv, glob, os, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UAS = ("127.0.0.3", 5090)
UAC = ("127.0.0.2", 5091)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def rss_kib(pids, key="VmHWM"):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except FileNotFoundError:
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
    if target == "trunkgate":
        os.makedirs("/tmp/trunkgate-bench", exist_ok=True)
        binary = os.path.join(ROOT, "target/release/trunkgate")
        env = dict(os.environ, RUST_LOG="warn")
        p = subprocess.Popen([binary, "run", "--config", os.path.join(ROOT, "benches/trunkgate/gateway.toml")],
                             cwd=work, env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, "trunkgate.log"), "w"))
        time.sleep(1.0)
        return p, ("127.0.0.1", 5072)
    raise SystemExit(f"unknown target {target}")


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
    t0 = time.time()
    subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=step_s + 60)
    elapsed = time.time() - t0
    ok = failed = 0
    with open(stat) as f:
        rows = list(csv.reader(f, delimiter=";"))
    head, last = rows[0], rows[-1]
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")])
    return ok, failed, elapsed


def bench(target, rates, step_s):
    work = tempfile.mkdtemp(prefix=f"cps-{target}-")
    uas = start_uas(work)
    middle, dest = start_middle(target, work)
    time.sleep(0.5)
    results = []
    try:
        for rate in rates:
            pids = children_of(middle.pid) if middle else []
            c0, t0 = cpu_ticks(pids), time.time()
            ok, failed, elapsed = run_step(work, dest, rate, step_s)
            cpu = (cpu_ticks(pids) - c0) / TICK / max(time.time() - t0, 1e-6) * 100 if middle else None
            rss = rss_kib(pids) if middle else None
            total = ok + failed
            fail_pct = 100.0 * (failed + (rate * step_s - total)) / (rate * step_s)
            results.append((rate, ok, failed, fail_pct, cpu, rss, elapsed))
            print(f"{target:10s} rate {rate:5d}/s  ok {ok:6d}  failed {failed:5d} ({fail_pct:.3f} %)  "
                  f"cpu {'-' if cpu is None else f'{cpu:5.1f} %'}  rss {'-' if rss is None else f'{rss/1024:.1f} MiB'}",
                  flush=True)
            if fail_pct >= 0.1:
                break
            time.sleep(3)  # let retransmission/absorb timers of the step run out
    finally:
        for p in [middle, uas]:
            if p:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["pkill", "-f", "benches/kamailio.cfg"], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    passing = [r for r in results if r[3] < 0.1]
    best = passing[-1] if passing else None
    return best, results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="direct,kamailio,trunkgate")
    ap.add_argument("--rates", default="500,1000,1500,2000,2500,3000,3500,4000,5000,6000,8000")
    ap.add_argument("--step", type=int, default=10)
    a = ap.parse_args()
    rates = [int(x) for x in a.rates.split(",")]
    summary = {}
    for t in a.targets.split(","):
        best, _ = bench(t, rates, a.step)
        summary[t] = best
    print("\n| target | highest CPS with < 0.1 % failed | middle CPU at that rate | middle peak RSS |")
    print("|---|---|---|---|")
    for t, b in summary.items():
        if b is None:
            print(f"| {t} | none of the rates passed | - | - |")
            continue
        cpu = "-" if b[4] is None else f"{b[4]:.0f} % of one core"
        rss = "-" if b[5] is None else f"{b[5]/1024:.1f} MiB"
        print(f"| {t} | {b[0]} | {cpu} | {rss} |")
    if summary.get("kamailio") and summary.get("trunkgate"):
        print(f"\ntrunkgate / Kamailio CPS ratio: {summary['trunkgate'][0] / summary['kamailio'][0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
