#!/usr/bin/env python3
"""What many registrations cost the gateway: until all are up, and on a reload.

Builds a configuration tree beside the shipped one: the shipped four profiles plus N trunk
profiles on loopback addresses (127.1.x.10), each with `[register] enabled = true`, and a
stand-in registrar in this process answering every REGISTER from each peer's address with
`200` (its Contact with `;expires=3600`). Runs each binary given in turn, alternated,
`--reps` times: the time from start until the log says every registration is up, the
gateway's CPU over that time, then a SIGHUP that changes every `expires_s` (so that each
registration starts anew: the same binding, registered again) and the time and CPU until
all are up again. Prints each run and the medians with their spread, per binary. All
traffic stays on 127.0.0.0/8; every run is bounded in time (`--limit-s`).

    python3 benches/many_registrations.py --binary NEW --binary BASE [--peers 2000] [--reps 3]
"""

import argparse, os, re, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from many_peers import peer_ip, responder, stop, ticks  # the same loopback peers and stand-in
METRICS = "127.0.0.1:19474"


def profiles(d: str, peers: int, expires: int) -> None:
    for i in range(peers):
        name = f"reg{i:05d}"
        with open(os.path.join(d, "profiles", f"{name}.toml"), "w") as f:
            f.write(f'name = "{name}"\nrole = "trunk"\naddress = "udp:{peer_ip(i)}:5060"\n'
                    f'match = ["{peer_ip(i)}/32"]\n[register]\nenabled = true\nexpires_s = {expires}\n'
                    f'contact_user = "gw{i}"\n')


def tree(base: str, peers: int) -> str:
    d = os.path.join(base, "tree")
    os.makedirs(os.path.join(d, "profiles"))
    os.makedirs(os.path.join(d, "var"))
    gw = open(os.path.join(ROOT, "gateway.toml")).read()
    # Ports of their own, no call-back socket: a gateway on the shipped ports may be running.
    gw = gw.replace("127.0.0.1:5060", "127.0.0.1:15070").replace("127.0.0.1:9464", METRICS)
    gw = gw.replace("port      = 5080", "port      = 0").replace("20000-20999", "32000-32999")
    with open(os.path.join(d, "gateway.toml"), "w") as f:
        f.write(gw)
    for f in ("pbx.toml", "phone.toml", "carrier-a.toml", "carrier-b.toml"):
        shutil.copy(os.path.join(ROOT, "profiles", f), os.path.join(d, "profiles", f))
    profiles(d, peers, 3600)
    return d


def answer(data: bytes) -> bytes | None:
    """A 200 to a REGISTER: its Vias, From, To (tagged), Call-ID, CSeq, and its Contact
    with the expiry it asked for (0 for a removal)."""
    lines = data.decode("utf-8", "replace").split("\r\n")
    if not lines[0].startswith("REGISTER "):
        return None
    keep = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
            "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq", "contact": "Contact", "m": "Contact"}
    out, expires = ["SIP/2.0 200 OK"], "3600"
    for l in lines[1:]:
        if not l:
            break
        name, _, value = l.partition(":")
        n = name.strip().lower()
        if n == "expires":
            expires = value.strip()
        h = keep.get(n)
        if h == "To" and "tag=" not in value:
            value = value.strip() + ";tag=registrar"
        if h == "Contact":
            value = re.sub(r";expires=\d+", "", value.strip()) + ";expires={E}"
        if h:
            out.append(f"{h}: {value.strip()}")
    text = "\r\n".join(out).replace("{E}", expires)
    return (text + "\r\nContent-Length: 0\r\n\r\n").encode()


def registered(log: str) -> int:
    """How many times the log says a registration was accepted."""
    try:
        text = open(log, errors="replace").read()
    except OSError:
        return 0
    return len(re.findall(r"\bregistered\b", text)) - len(re.findall(r"\bunregistered\b", text))


def until(pid: int, log: str, lines: int, limit: float) -> tuple[float, float]:
    """Seconds until the log has said `registered` `lines` times, and the CPU seconds the
    gateway spent meanwhile."""
    t0, c0 = time.monotonic(), ticks(pid)
    while time.monotonic() - t0 < limit:
        if registered(log) >= lines:
            return time.monotonic() - t0, (ticks(pid) - c0) / os.sysconf("SC_CLK_TCK")
        time.sleep(0.02)
    return float("nan"), (ticks(pid) - c0) / os.sysconf("SC_CLK_TCK")


def run(binary: str, d: str, peers: int, limit: float) -> tuple[float, float, float, float]:
    profiles(d, peers, 3600)
    log = os.path.join(d, "run.log")
    out = open(log, "w")
    p = subprocess.Popen([binary, "run", "-c", os.path.join(d, "gateway.toml")], stdout=out, stderr=out)
    try:
        start_s, start_cpu = until(p.pid, log, peers, limit)
        # Every registration changed (its expiry): each registers its binding anew.
        profiles(d, peers, 1800)
        time.sleep(1.2)  # a file is read once it has gone a second unchanged
        p.send_signal(signal.SIGHUP)
        reload_s, reload_cpu = until(p.pid, log, 2 * peers, limit)
        return start_s, start_cpu, reload_s, reload_cpu
    finally:
        stop(p, 90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--limit-s", type=float, default=120)
    ap.add_argument("--binary", action="append", default=[])
    a = ap.parse_args()
    binaries = a.binary or [os.path.join(ROOT, "target", "release", "trunkgate")]
    for b in binaries:
        if not os.path.exists(b):
            sys.exit(f"{b} missing: cargo build --release first")
    base = tempfile.mkdtemp(prefix="many-regs-")
    d = tree(base, a.peers)
    stop = threading.Event()
    threading.Thread(target=responder, args=(a.peers, stop, answer), daemon=True).start()
    time.sleep(1)
    results = {b: [] for b in binaries}
    try:
        for rep in range(a.reps):
            for b in binaries:
                r = run(b, d, a.peers, a.limit_s)
                results[b].append(r)
                print(f"run {rep + 1} {b}: all up after start {r[0]:.2f} s (cpu {r[1]:.2f} s), "
                      f"after reload {r[2]:.2f} s (cpu {r[3]:.2f} s)", flush=True)
    finally:
        stop.set()
        shutil.rmtree(base, ignore_errors=True)
    print(f"| {a.peers} registrations | start: all up | CPU meanwhile | reload: all up again | CPU meanwhile |")
    print("|---|---|---|---|---|")
    for b, rs in results.items():
        col = lambda i: f"{statistics.median(x[i] for x in rs):.2f} s ({min(x[i] for x in rs):.2f}–{max(x[i] for x in rs):.2f})"
        print(f"| {b} | {col(0)} | {col(1)} | {col(2)} | {col(3)} |")


if __name__ == "__main__":
    main()
