#!/usr/bin/env python3
"""What many peers cost an idle gateway, pinged (`[sip] ping_s`) or not.

Builds two configuration trees beside the shipped one: the shipped four profiles plus N
trunk profiles on loopback addresses where nothing listens (127.1.x.10, so every ping goes
unanswered: the worst case), each with a route; one tree without pings, one with
`ping_s`. With `--answer`, a stand-in answers every ping `200` from each peer's address
(one socket per peer, in this process: its CPU is not the gateway's), the usual case. Runs the release build on each in turn, alternated, `--reps` times: idle 10 s,
CPU over 30 s from /proc, RSS, then a SIGHUP and the time until the log says the reload
was applied. Prints each run and the medians with their spread. All traffic stays on
127.0.0.0/8; every run is bounded in time.

    python3 benches/many_peers.py [--peers 2000] [--ping-s 5] [--reps 3] [--answer]
"""

import argparse, os, selectors, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree(base: str, peers: int, ping_s: int) -> str:
    d = os.path.join(base, f"p{ping_s}")
    os.makedirs(os.path.join(d, "profiles"))
    os.makedirs(os.path.join(d, "var"))
    gw = open(os.path.join(ROOT, "gateway.toml")).read()
    # Ports of their own, no call-back socket: a gateway on the shipped ports may be running.
    gw = gw.replace("127.0.0.1:5060", "127.0.0.1:15060").replace("127.0.0.1:9464", "127.0.0.1:19464")
    gw = gw.replace("port      = 5080", "port      = 0").replace("20000-20999", "31000-31999")
    routes = []
    for i in range(peers):
        ip = peer_ip(i)
        name = f"trunk{i:05d}"
        extra = f"[sip]\nping_s = {ping_s}\n" if ping_s else ""
        with open(os.path.join(d, "profiles", f"{name}.toml"), "w") as f:
            f.write(f'name = "{name}"\nrole = "trunk"\naddress = "udp:{ip}:5060"\nmatch = ["{ip}/32"]\n{extra}')
        routes.append(f'[[route]]\nfrom = "pbx"\nprefix = "+99{i:05d}"\nto = ["{name}"]\n')
    for f in ("pbx.toml", "phone.toml", "carrier-a.toml", "carrier-b.toml"):
        shutil.copy(os.path.join(ROOT, "profiles", f), os.path.join(d, "profiles", f))
    at = gw.index("[[route]]")
    with open(os.path.join(d, "gateway.toml"), "w") as f:
        f.write(gw[:at] + "\n".join(routes) + "\n" + gw[at:])
    return d


def peer_ip(i: int) -> str:
    return f"127.{1 + i // 250}.{i % 250}.10"


def answer(data: bytes) -> bytes | None:
    """A 200 to an OPTIONS: its Vias, From, To (tagged), Call-ID and CSeq, no body."""
    lines = data.decode("utf-8", "replace").split("\r\n")
    if not lines[0].startswith("OPTIONS "):
        return None
    keep = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
            "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}
    out = ["SIP/2.0 200 OK"]
    for l in lines[1:]:
        if not l:
            break
        name, _, value = l.partition(":")
        h = keep.get(name.strip().lower())
        if h == "To" and "tag=" not in value:
            value = value.strip() + ";tag=peer"
        if h:
            out.append(f"{h}: {value.strip()}")
    return ("\r\n".join(out) + "\r\nContent-Length: 0\r\n\r\n").encode()


def responder(peers: int, stop: threading.Event, answer=answer) -> None:
    """Each peer's address answers what it is sent as `answer` says (None: nothing), in
    this process, until `stop`."""
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(peers):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((peer_ip(i), 5060))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            try:
                data, src = key.fileobj.recvfrom(65535)
            except OSError:
                continue
            resp = answer(data)
            if resp:
                try:
                    key.fileobj.sendto(resp, src)
                except OSError:
                    pass
    for s in socks:
        s.close()


def ticks(pid: int) -> int:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run(binary: str, d: str) -> tuple[float, int, float]:
    log = open(os.path.join(d, "run.log"), "w")
    p = subprocess.Popen([binary, "run", "-c", os.path.join(d, "gateway.toml")], stdout=log, stderr=log)
    try:
        time.sleep(10)
        t0 = ticks(p.pid)
        time.sleep(30)
        cpu = (ticks(p.pid) - t0) * 100 / os.sysconf("SC_CLK_TCK") / 30
        rss = next(int(l.split()[1]) for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS"))
        start = time.monotonic()
        p.send_signal(signal.SIGHUP)
        reload_ms = float("nan")
        while time.monotonic() - start < 5:
            if "reload" in open(os.path.join(d, "run.log")).read().lower():
                reload_ms = (time.monotonic() - start) * 1000
                break
            time.sleep(0.005)
        return cpu, rss, reload_ms
    finally:
        stop(p, 60)


def stop(p: subprocess.Popen, timeout_s: float) -> None:
    """Stop the gateway as an operator does (SIGINT), killed if it takes over `timeout_s`."""
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=int, default=2000)
    ap.add_argument("--ping-s", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "trunkgate"))
    ap.add_argument("--answer", action="store_true", help="a stand-in answers every ping 200")
    a = ap.parse_args()
    if not os.path.exists(a.binary):
        sys.exit(f"{a.binary} missing: cargo build --release first")
    base = tempfile.mkdtemp(prefix="many-peers-")
    trees = {"not pinged": tree(base, a.peers, 0), f"pinged every {a.ping_s} s": tree(base, a.peers, a.ping_s)}
    results = {k: [] for k in trees}
    stop = threading.Event()
    if a.answer:
        threading.Thread(target=responder, args=(a.peers, stop), daemon=True).start()
        time.sleep(1)
    for rep in range(a.reps):
        for name, d in trees.items():
            r = run(a.binary, d)
            results[name].append(r)
            print(f"run {rep + 1} {name}: cpu {r[0]:.2f} % rss {r[1] / 1000:.1f} MB reload {r[2]:.0f} ms", flush=True)
    stop.set()
    answered = ", pings answered" if a.answer else ""
    print(f"| {a.peers} profiles{answered} | CPU (% of one core) | RSS | reload, SIGHUP to logged |")
    print("|---|---|---|---|")
    for name, rs in results.items():
        col = lambda i, f: f"{f(statistics.median(x[i] for x in rs))} ({f(min(x[i] for x in rs))}–{f(max(x[i] for x in rs))})"
        print(f"| {name} | {col(0, lambda v: f'{v:.2f} %')} | {col(1, lambda v: f'{v / 1000:.1f} MB')} | {col(2, lambda v: f'{v:.0f} ms')} |")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
