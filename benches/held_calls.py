#!/usr/bin/env python3
"""Memory per established call: SIPp holds N signalling-only calls through trunkgate.

SIPp's built-in UAC places N calls (at --rate CPS, each lasting --hold seconds) to SIPp's
built-in UAS through the gateway of benches/trunkgate (no media anchoring). The gateway's
RSS is read from /proc when idle, once all N calls are up and every setup transaction has
expired (RFC 3261/6026 keep them 32 s), and again after the calls ended and their
transactions expired: per-call memory is (held - idle) / N, and "returned" says how close
to idle the process came back. CPU at rest with the calls held is sampled over 10 s.

Run it several times and report the median and spread (BENCHMARKS.md). All traffic stays
on 127.0.0.0/8; every phase is bounded in time.

Usage: benches/held_calls.py [--calls 20000] [--rate 1000] [--runs 3] [--warm 200] [--bin target/release/trunkgate]
With --warm N, N short calls are placed and ended before the burst, and idle is read again
after them ("warm"): the burst is then measured against a gateway that has carried calls.
A binary built with `--features heap-stats` also reports its live heap bytes per call (what
the code holds, beside the RSS the allocator holds for it).
Needs: sipp (sip-tester), a release build (cargo build --release).
"""
import argparse, os, re, shutil, signal, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from gateway_stats import TICK, bench_workdir, cpu_ticks, metric, rss_kib  # noqa: E402  (beside this script)
GW = ("127.0.0.1", 5072)
# Seconds between the gateway's last transaction ending and the "after" reading.
SETTLE = 5
# src/engine/overload.rs RECENT_IDLE, and a tick to act on it.
RECENT_IDLE = 66


def rss_anon_kib(pid):
    """Anonymous resident memory (the heap, stacks); RSS less the mapped files' pages."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None


def wait_until(what, cond, limit):
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.5)
    print(f"  timed out waiting for {what}", file=sys.stderr)
    return False


def save_smaps(args, pid, phase):
    """With --smaps DIR: the process's mappings at each phase, to see where resident memory
    sits (an allocator arena, a thread stack, a library's data)."""
    if args.smaps:
        os.makedirs(args.smaps, exist_ok=True)
        shutil.copyfile(f"/proc/{pid}/smaps", os.path.join(args.smaps, f"{phase}.smaps"))


def one_run(args, calls):
    if metric("trunkgate_active_calls") is not None:
        # A gateway left from an earlier run would be measured instead of this one.
        sys.exit("something already serves 127.0.0.1:9465 (a stale gateway?): stop it first")
    # Room for the calls (the default [limits] max_calls is 10,000).
    work, conf = bench_workdir("trunkgate-held-", f"\n[limits]\nmax_calls = {calls * 2}\ncps = {args.rate * 4}\n")
    env = dict(os.environ, RUST_LOG="warn")
    wrap = args.wrap.split() if args.wrap else []
    # Its own process group: a profiler wrapping it goes down with it.
    gw = subprocess.Popen(wrap + [args.bin, "run", "--config", conf],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "gw.log"), "w"), env=env,
                          start_new_session=True)
    procs = [gw]
    try:
        if not wait_until("the gateway", lambda: metric("trunkgate_active_calls") is not None, 15):
            return None
        time.sleep(2)
        idle = rss_kib(gw.pid)
        save_smaps(args, gw.pid, "idle")
        # Live heap bytes, when the binary counts them (built with --features heap-stats).
        heap_idle = metric("trunkgate_heap_bytes")
        anon_idle = rss_anon_kib(gw.pid)
        uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.3", "-p", "5090", "-nostdin",
                                "-max_socket", "65000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        procs.append(uas)
        time.sleep(0.5)
        warm = anon_warm = None
        if args.warm:
            # A few calls first, ended and their transactions gone: what any gateway that has
            # carried a call keeps for good (code paged in, the allocator's heaps) is then in
            # the baseline, and "after" shows what the burst itself left.
            w = subprocess.run(["sipp", "-sn", "uac", "-i", "127.0.0.2", "-p", "5091", "-nostdin",
                                "-r", "50", "-m", str(args.warm), "-d", "1000", "-timeout", "60",
                                f"{GW[0]}:{GW[1]}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work, timeout=90)
            done = time.time()
            if w.returncode != 0:
                print(f"  warm-up calls: sipp exited {w.returncode}", file=sys.stderr)
            wait_until("the warm-up's transactions to end",
                       lambda: (metric("trunkgate_transactions") or 0) == 0, 60)
            # Overload control keeps a table of recent INVITEs (1 MiB, written where each
            # INVITE's key falls) until RECENT_IDLE (64 s) after the last one; the "after"
            # reading comes long after that, so the warm one must too.
            time.sleep(max(0.0, done + RECENT_IDLE - time.time()))
            time.sleep(SETTLE)
            warm = rss_kib(gw.pid)
            anon_warm = rss_anon_kib(gw.pid)
            save_smaps(args, gw.pid, "warm")
        uac = subprocess.Popen(["sipp", "-sn", "uac", "-i", "127.0.0.2", "-p", "5091", "-nostdin",
                                "-r", str(args.rate), "-m", str(calls), "-l", str(calls),
                                "-d", str(args.hold * 1000), "-max_socket", "65000",
                                f"{GW[0]}:{GW[1]}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        procs.append(uac)
        ramp = calls / args.rate
        # Until every call is up, or (a few were shed at the ramp) the count stops growing.
        time.sleep(ramp)
        last, still = -1, 0
        end = time.time() + 60
        while time.time() < end:
            now = metric("trunkgate_active_calls") or 0
            if now >= calls:
                break
            still = still + 1 if now == last else 0
            if still >= 10:
                break
            last = now
            time.sleep(0.5)
        reached = metric("trunkgate_active_calls") or 0
        up = reached >= calls
        # Let every setup transaction expire (Timer H/J/L/M: 32 s with T1 = 500 ms).
        time.sleep(35)
        held = rss_kib(gw.pid)
        save_smaps(args, gw.pid, "held")
        held_calls = metric("trunkgate_active_calls") or 0
        txns = metric("trunkgate_transactions")
        heap_held = metric("trunkgate_heap_bytes")
        t0, c0 = time.time(), cpu_ticks(gw.pid)
        m0 = metric("trunkgate_sip_messages_total") or 0
        if args.perf:
            subprocess.run(["perf", "record", "-g", "-o", "/tmp/held.perf", "-p", str(gw.pid),
                            "--", "sleep", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            time.sleep(10)
        rest_cpu = (cpu_ticks(gw.pid) - c0) / TICK / (time.time() - t0) * 100
        # SIP traffic in that window: "at rest" only means something if this is ~0.
        rest_msgs = ((metric("trunkgate_sip_messages_total") or 0) - m0) / (time.time() - t0)
        if (metric("trunkgate_active_calls") or 0) < reached:
            print("  calls ended before the measurement was over: raise --hold", file=sys.stderr)
            return None
        # The calls end (SIPp hangs up at --hold); wait for them and their transactions.
        wait_until("the calls to end", lambda: (metric("trunkgate_active_calls") or 0) == 0,
                   args.hold + ramp + 60)
        # And for their transactions (Timer J keeps a BYE's 32 s), then for the allocator:
        # the gateway's last thorough collect follows the last transaction, and mimalloc
        # purges what it freed a second later, at the next once-a-second collect.
        wait_until("the transactions to end", lambda: (metric("trunkgate_transactions") or 0) == 0, 60)
        time.sleep(SETTLE)
        after = rss_kib(gw.pid)
        anon_after = rss_anon_kib(gw.pid)
        save_smaps(args, gw.pid, "after")
        heap_after = metric("trunkgate_heap_bytes")
        # What the gateway complained about (the calls that did not come up, and why).
        warns = {}
        with open(os.path.join(work, "gw.log"), errors="replace") as f:
            for line in f:
                if " WARN " in line or " ERROR " in line:
                    key = re.sub(r"\S+=\S+", "", line.split(":", 3)[-1]).strip()[:90]
                    warns[key] = warns.get(key, 0) + 1
        return {
            "warnings": dict(sorted(warns.items(), key=lambda kv: -kv[1])[:3]),
            "calls": int(reached), "all_up": up, "idle_kib": idle, "held_kib": held,
            "per_call_b": (held - idle) * 1024 / max(reached, 1), "rest_cpu_pct": rest_cpu, "rest_sip_msgs_per_s": rest_msgs,
            "after_kib": after, "returned_pct": (after - idle) * 100 / max(held - idle, 1),
            "warm_kib": warm, "anon_kib": (anon_idle, anon_warm, anon_after),
            "txns_while_held": txns, "calls_at_sample": int(held_calls),
            "heap_per_call_b": None if heap_idle is None or heap_held is None
            else (heap_held - heap_idle) / max(reached, 1),
            "heap_kib": None if heap_idle is None
            else (heap_idle // 1024, (heap_held or 0) // 1024, (heap_after or 0) // 1024),
        }
    finally:
        for p in reversed(procs):
            if p is gw:
                # SIGINT first, so a profiler sees a clean exit and writes its data out.
                if args.wrap:
                    os.killpg(p.pid, signal.SIGINT)
                    try:
                        p.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        pass
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
                continue
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--hold", type=int, default=120, help="seconds each call lasts")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/trunkgate"))
    ap.add_argument("--perf", action="store_true", help="perf record the rest phase into /tmp/held.perf")
    ap.add_argument("--smaps", help="save /proc/<pid>/smaps at idle, held and after into this directory")
    ap.add_argument("--warm", type=int, default=0,
                    help="place this many short calls before the burst and read idle again once they ended")
    ap.add_argument("--wrap", help="run the gateway under this (e.g. 'heaptrack -o /tmp/held')")
    args = ap.parse_args()
    # The calls must still be up when they are measured: the ramp, up to a minute for the
    # last ones, 35 s for the transactions to expire and 10 s of CPU sampling, with room.
    args.hold = max(args.hold, args.calls // args.rate + 180)
    results = []
    for i in range(args.runs):
        r = one_run(args, args.calls)
        print(f"run {i + 1}: {r}", flush=True)
        if r:
            results.append(r)
    if not results:
        sys.exit(1)
    per = [r["per_call_b"] for r in results]
    ret = [r["returned_pct"] for r in results]
    cpu = [r["rest_cpu_pct"] for r in results]
    print(f"{args.calls} calls: per call median {statistics.median(per):.0f} B "
          f"(spread {min(per):.0f}-{max(per):.0f}); idle {statistics.median([r['idle_kib'] for r in results])} KiB; "
          f"CPU at rest median {statistics.median(cpu):.1f} % of a core ({min(cpu):.1f}-{max(cpu):.1f}); "
          f"after the calls ended {statistics.median(ret):.0f} % of the held growth remained "
          f"({min(ret):.0f}-{max(ret):.0f})")
    warm = [r for r in results if r.get("warm_kib")]
    if warm:
        over = [r["after_kib"] - r["warm_kib"] for r in warm]
        print(f"after {args.warm} warm-up calls idle {statistics.median([r['warm_kib'] for r in warm])} KiB; "
              f"after the burst over that: median {statistics.median(over)} KiB ({min(over)}-{max(over)})")
    heap = [r["heap_per_call_b"] for r in results if r.get("heap_per_call_b") is not None]
    if heap:
        print(f"live heap per call (heap-stats build): median {statistics.median(heap):.0f} B "
              f"(spread {min(heap):.0f}-{max(heap):.0f})")


if __name__ == "__main__":
    main()
