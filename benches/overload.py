#!/usr/bin/env python3
"""Overload and flood benchmark (issue 7): trunkgate beside Kamailio, in one run.

curve: SIPp's built-in UAC offers 100 ms calls at 0.5x, 1x, 1.5x, 2x and 3x of a capacity
       (--capacity, CPS) through the middle box to SIPp's UAS, STEP_S seconds per level, REPS
       times. Reported per level: the rate SIPp achieved, goodput (completed calls per second
       while calls were offered), the share of calls that failed and, for trunkgate, the share
       refused by overload control (stateless 503) from its /metrics.
flood: a UAC places legitimate calls at 25 % of capacity from 127.0.0.2 for FLOOD_S + 4
       seconds; after 2 s a second SIPp sends bare INVITEs (benches/flood/invite.xml) at 10x
       capacity for FLOOD_S seconds, either from a stranger (127.0.0.9) or from a known peer
       over its [limits] cps (127.0.0.5). Reported: legitimate calls completed, INVITEs the
       flooder managed to send, packets the flooder got back (SIPp's dead-call messages),
       and the middle box's peak memory (PSS).
fair:  two peers at once through trunkgate: "uac" (127.0.0.2) offers --fair-heavy times the
       capacity, "light" (127.0.0.6) a tenth of it, for STEP_S seconds, REPS times; reported
       per peer: the share of its calls completed and refused by overload control, for the
       build under test and for a base build (TRUNKGATE_BASE_BIN) in the same run.

All traffic is on 127.0.0.0/8; every SIPp run is bounded in calls and time.
Usage: benches/overload.py [--capacity 2500] [--targets trunkgate,kamailio] [--reps 3]
                           [--step 10] [--flood-s 10] [--only curve|flood|fair] [--fair-heavy 2]
Needs: sipp, kamailio, a release build of trunkgate.
"""
import argparse, csv, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cps  # noqa: E402  (shared helpers: /proc readers, SIPp UAS, port waits)

ROOT = cps.ROOT
GW = ("127.0.0.1", 5072)
KAM = ("127.0.0.1", 5070)
METRICS = "http://127.0.0.1:9465/metrics"
STRANGER = "127.0.0.9"
KNOWN_FLOODER = "127.0.0.5"
LIGHT = ("127.0.0.6", 5096)
LEVELS = [0.5, 1.0, 1.5, 2.0, 3.0]


def start_trunkgate(work, protect, binary=None):
    """trunkgate on a copy of benches/trunkgate with `protect` as its [protect] section."""
    conf = os.path.join(work, "conf")
    shutil.copytree(os.path.join(ROOT, "benches/trunkgate"), conf)
    gw = os.path.join(conf, "gateway.toml")
    text = open(gw).read()
    start = text.index("[protect]")
    end = text.index("[[route]]", start)
    open(gw, "w").write(text[:start] + "[protect]\n" + protect + "\n\n" + text[end:])
    os.makedirs("/tmp/trunkgate-bench", exist_ok=True)
    binary = binary or os.environ.get("TRUNKGATE_BIN", os.path.join(ROOT, "target/release/trunkgate"))
    log = os.path.join(work, "trunkgate.log")
    p = subprocess.Popen([binary, "run", "--config", gw], cwd=work, env=dict(os.environ, RUST_LOG="warn"),
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    time.sleep(1.0)
    if p.poll() is not None:
        raise SystemExit("trunkgate did not start:\n" + open(log).read())
    return p, GW


def start_kamailio(work, cfg):
    p = subprocess.Popen(["kamailio", "-DD", "-E", "-m", "512", "-M", "32", "-f", os.path.join(ROOT, "benches", cfg)],
                         cwd=work, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "kamailio.log"), "w"))
    time.sleep(1.5)
    return p, KAM


def stop(procs):
    for p in procs:
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    subprocess.run(["pkill", "-f", "benches/kamailio"], stderr=subprocess.DEVNULL)
    cps.wait_free([cps.UAS, cps.UAC, KAM, GW, (STRANGER, 5094), (KNOWN_FLOODER, 5093), LIGHT])


def metric(name_and_labels):
    """A counter from trunkgate's /metrics (0 when absent or unreachable)."""
    try:
        text = urllib.request.urlopen(METRICS, timeout=2).read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.split()[-1])
    return 0


def sipp_stats(path):
    with open(path) as f:
        rows = list(csv.reader(f, delimiter=";"))
    head = rows[0]
    col = lambda r, name: int(r[head.index(name)])
    return head, rows[1:], col


def uac(work, dest, rate, calls, tag, limit_s, source=cps.UAC):
    """SIPp's UAC from `source`: `calls` 100 ms calls at `rate`; returns the process and the
    path of its statistics."""
    stat = os.path.join(work, f"uac_{tag}.csv")
    cmd = ["sipp", "-sn", "uac", f"{dest[0]}:{dest[1]}", "-i", source[0], "-p", str(source[1]),
           "-s", "+8610123", "-r", str(rate), "-m", str(calls), "-d", "100",
           "-l", str(max(rate * 4, 100)), "-nostdin", "-timeout", f"{limit_s}s",
           "-trace_stat", "-stf", stat, "-fd", "1", "-recv_timeout", "5000"]
    return subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), stat


def uac_result(stat):
    """(completed, failed, offered rate, goodput, share of completed calls answered within
    200 ms) of a UAC run."""
    head, rows, col = sipp_stats(stat)
    last = rows[-1]
    ok, failed = col(last, "SuccessfulCall(C)"), col(last, "FailedCall(C)")
    placing = [r for r in rows if col(r, "OutgoingCall(P)") > 0]
    # Seconds during which calls were offered (SIPp writes a row per second with -fd 1).
    secs = max(len(placing), 1)
    offered = col(last, "OutgoingCall(C)")
    # SIPp's built-in UAC times INVITE -> 200 (rtd 1); its histogram is cumulative.
    buckets = [h for h in head if h.startswith("ResponseTimeRepartition1_")]
    fast = sum(col(last, h) for h in buckets if not h.endswith(">=200"))
    total = sum(col(last, h) for h in buckets)
    return ok, failed, offered / secs, ok / secs, (fast / total if total else 0.0)


def curve(target, capacity, reps, step_s):
    work = tempfile.mkdtemp(prefix=f"overload-{target}-")
    uas = cps.start_uas(work)
    if target == "trunkgate":
        middle, dest = start_trunkgate(work, "source_rate = 1000000")
    elif target.startswith("trunkgate-delay"):
        # The same with another [protect] overload_delay_ms (e.g. trunkgate-delay50).
        ms = int(target[len("trunkgate-delay"):])
        middle, dest = start_trunkgate(work, f"source_rate = 1000000\noverload_delay_ms = {ms}")
    elif target == "trunkgate-noshed":
        # Overload control out of reach: what the same build does without it.
        middle, dest = start_trunkgate(work, "source_rate = 1000000\noverload_delay_ms = 10000\noverload_drop_ms = 60000")
    else:
        middle, dest = start_kamailio(work, "kamailio.cfg")
    rows = []
    try:
        for level in LEVELS:
            rate = int(capacity * level)
            runs = []
            for rep in range(reps):
                shed0 = metric('trunkgate_refused_messages_total{reason="overload"}')
                drop0 = metric('trunkgate_refused_messages_total{reason="overload_drop"}')
                p, stat = uac(work, dest, rate, rate * step_s, f"{rate}_{rep}", step_s + 40)
                p.wait(timeout=step_s + 60)
                ok, failed, achieved, goodput, fast = uac_result(stat)
                calls = rate * step_s
                shed = metric('trunkgate_refused_messages_total{reason="overload"}') - shed0
                dropped = metric('trunkgate_refused_messages_total{reason="overload_drop"}') - drop0
                runs.append((achieved, goodput, 100.0 * (calls - ok) / calls, 100.0 * shed / calls,
                             100.0 * dropped / calls, 100.0 * fast))
                print(f"{target:16s} {level:3.1f}x offered {rate:5d}/s achieved {achieved:7.0f}/s  "
                      f"goodput {goodput:7.0f}/s  failed {runs[-1][2]:5.1f} %  503 {runs[-1][3]:5.1f} %  "
                      f"dropped {runs[-1][4]:5.1f} %  answered < 200 ms {runs[-1][5]:5.1f} %", flush=True)
                time.sleep(4)
            med = [statistics.median(r[i] for r in runs) for i in range(6)]
            spread = (min(r[1] for r in runs), max(r[1] for r in runs))
            rows.append((level, rate, *med, spread))
    finally:
        stop([middle, uas])
        shutil.rmtree(work, ignore_errors=True)
    return rows


def fair(target, capacity, reps, step_s, heavy):
    """Two peers at once, one overloading: each one's share of calls completed and of calls
    refused by overload control (503s counted by SIPp per peer: its UAC ends a refused call
    as failed)."""
    work = tempfile.mkdtemp(prefix=f"fair-{target}-")
    uas = cps.start_uas(work)
    binary = os.environ.get("TRUNKGATE_BASE_BIN") if target == "trunkgate-base" else None
    if target == "trunkgate-base" and not binary:
        raise SystemExit("trunkgate-base needs TRUNKGATE_BASE_BIN")
    middle, dest = start_trunkgate(work, "source_rate = 1000000", binary)
    heavy_rate, light_rate = int(capacity * heavy), max(capacity // 10, 1)
    runs = []
    try:
        for rep in range(reps):
            shed0 = metric('trunkgate_refused_messages_total{reason="overload"}')
            h, hstat = uac(work, dest, heavy_rate, heavy_rate * step_s, f"heavy_{rep}", step_s + 40)
            l, lstat = uac(work, dest, light_rate, light_rate * step_s, f"light_{rep}", step_s + 40, LIGHT)
            h.wait(timeout=step_s + 60)
            l.wait(timeout=step_s + 60)
            hok, hfailed, hach, _, _ = uac_result(hstat)
            lok, lfailed, lach, _, _ = uac_result(lstat)
            shed = metric('trunkgate_refused_messages_total{reason="overload"}') - shed0
            hcalls, lcalls = heavy_rate * step_s, light_rate * step_s
            runs.append((100.0 * hok / hcalls, 100.0 * lok / lcalls, 100.0 * hfailed / hcalls,
                         100.0 * lfailed / lcalls, 100.0 * shed / (hcalls + lcalls)))
            print(f"fair {target:15s} heavy {heavy_rate}/s (achieved {hach:.0f}): completed {runs[-1][0]:5.1f} %, "
                  f"failed {runs[-1][2]:5.1f} %;  light {light_rate}/s (achieved {lach:.0f}): completed "
                  f"{runs[-1][1]:5.1f} %, failed {runs[-1][3]:5.1f} %;  503 {runs[-1][4]:5.1f} % of all",
                  flush=True)
            time.sleep(4)
    finally:
        stop([middle, uas])
        shutil.rmtree(work, ignore_errors=True)
    return runs


def flood(target, capacity, flood_s, source):
    work = tempfile.mkdtemp(prefix=f"flood-{target}-")
    uas = cps.start_uas(work)
    if target.startswith("trunkgate"):
        mode = "reject" if target.endswith("reject") else "drop"
        middle, dest = start_trunkgate(work, f'source_rate = 5000\nunknown_sources = "{mode}"')
    else:
        middle, dest = start_kamailio(work, "kamailio-protect.cfg")
    legit_rate = capacity // 4
    legit_s = flood_s + 4
    flood_rate = capacity * 10
    peak_kib = 0
    try:
        legit, lstat = uac(work, dest, legit_rate, legit_rate * legit_s, "legit", legit_s + 40)
        time.sleep(2)
        fstat = os.path.join(work, "flood.csv")
        port = 5094 if source == STRANGER else 5093
        flooder = subprocess.Popen(
            ["sipp", f"{dest[0]}:{dest[1]}", "-sf", os.path.join(ROOT, "benches/flood/invite.xml"),
             "-i", source, "-p", str(port), "-s", "+8610123", "-r", str(flood_rate),
             "-m", str(flood_rate * flood_s), "-l", "1000000", "-nostdin", "-timeout", f"{flood_s + 5}s",
             "-trace_stat", "-stf", fstat, "-fd", "1"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids = cps.children_of(middle.pid)
        end = time.time() + legit_s + 45
        while legit.poll() is None and time.time() < end:
            peak_kib = max(peak_kib, cps.mem_kib(pids))
            time.sleep(0.5)
        flooder.wait(timeout=flood_s + 30)
        legit.wait(timeout=60)
        ok, failed, _, _, _ = uac_result(lstat)
        _, frows, fcol = sipp_stats(fstat)
        sent = fcol(frows[-1], "OutgoingCall(C)")
        # What came back: SIPp counts a response to a call it already ended (every flood
        # call ends as its INVITE leaves) as a dead-call message.
        back = fcol(frows[-1], "DeadCallMsgs(C)") + fcol(frows[-1], "OutOfCallMsgs(C)")
        calls = legit_rate * legit_s
        r = (target, source, calls, ok, 100.0 * ok / calls, sent, sent / flood_s, back, peak_kib / 1024)
        print(f"flood {target:16s} from {source}: legit {ok}/{calls} ({r[4]:.2f} %)  flood sent {sent} "
              f"({r[6]:.0f}/s)  packets back {back}  peak PSS {r[8]:.0f} MiB", flush=True)
        return r
    finally:
        stop([middle, uas])
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capacity", type=int, default=2500, help="CPS the levels are multiples of")
    ap.add_argument("--targets", default="trunkgate,kamailio")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--flood-s", type=int, default=10)
    ap.add_argument("--only", choices=["curve", "flood", "fair"])
    ap.add_argument("--fair-heavy", type=float, default=2.0, help="the heavy peer's load, times capacity")
    ap.add_argument("--levels", default=",".join(str(x) for x in LEVELS))
    a = ap.parse_args()
    targets = a.targets.split(",")
    LEVELS[:] = [float(x) for x in a.levels.split(",")]
    if a.only == "fair":
        runs = {t: fair(t, a.capacity, a.reps, a.step, a.fair_heavy) for t in targets}
        print(f"\nFair shedding: capacity {a.capacity} CPS, heavy peer {a.fair_heavy}x, light peer 0.1x, "
              f"medians (spread) of {a.reps} runs of {a.step} s\n")
        print("| build | heavy: completed | heavy: failed | light: completed | light: failed | 503s, share of all |")
        print("|---|---|---|---|---|---|")
        for t, rs in runs.items():
            cells = []
            for i in [0, 2, 1, 3, 4]:
                xs = [r[i] for r in rs]
                cells.append(f"{statistics.median(xs):.1f} % ({min(xs):.1f}–{max(xs):.1f})")
            print(f"| {t} | " + " | ".join(cells) + " |")
        return
    if a.only != "flood":
        curves = {t: curve(t, a.capacity, a.reps, a.step) for t in targets}
        print(f"\nOverload curve: capacity {a.capacity} CPS, 100 ms calls, medians of {a.reps} runs of {a.step} s\n")
        print("| target | offered | achieved (CPS) | goodput (CPS) | goodput / capacity | goodput spread | answered < 200 ms | failed | 503 (overload) | dropped (overload) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for t, rows in curves.items():
            for level, rate, ach, good, fail, shed, drop, fast, (lo, hi) in rows:
                print(f"| {t} | {level:.1f}x ({rate}) | {ach:.0f} | {good:.0f} | {good / a.capacity:.2f} | "
                      f"{lo:.0f}–{hi:.0f} | {fast:.0f} % | {fail:.1f} % | {shed:.1f} % | {drop:.1f} % |")
    if a.only != "curve":
        rows = []
        for t in targets:
            if t == "trunkgate-noshed":
                continue
            variants = ["trunkgate-drop", "trunkgate-reject"] if t == "trunkgate" else [t]
            for v in variants:
                rows.append(flood(v, a.capacity, a.flood_s, STRANGER))
            rows.append(flood(variants[0], a.capacity, a.flood_s, KNOWN_FLOODER))
        print(f"\nFlood: legitimate calls at {a.capacity // 4} CPS; INVITEs at {a.capacity * 10}/s offered for {a.flood_s} s\n")
        print("| target | flood source | legit calls completed | flood INVITEs sent (rate) | packets back to the flooder | per flood packet | peak PSS |")
        print("|---|---|---|---|---|---|---|")
        for t, src, calls, ok, pct, sent, rate, back, pss in rows:
            kind = "stranger" if src == STRANGER else "known peer over its cps"
            print(f"| {t} | {kind} | {ok}/{calls} ({pct:.2f} %) | {sent} ({rate:.0f}/s) | {back} | "
                  f"{back / max(sent, 1):.3f} | {pss:.0f} MiB |")


if __name__ == "__main__":
    sys.exit(main())
