"""What the benchmark scripts read from a running gateway: its RSS and CPU from /proc, and
its metrics from the benches' `/metrics` address (benches/trunkgate/gateway.toml)."""
import os
import shutil
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

METRICS = "http://127.0.0.1:9465/metrics"
TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    """User plus system CPU of the process, in TICKs."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def metric(name):
    """The sum of a metric's series, or None when nothing answers (no gateway up)."""
    try:
        page = urllib.request.urlopen(METRICS, timeout=2).read().decode()
    except Exception:
        return None
    total = None
    for line in page.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def bench_workdir(prefix, extra):
    """A fresh directory with benches/trunkgate's profiles and gateway.toml (its CDR file
    inside the directory, `extra` appended); returns (directory, path of gateway.toml). The
    caller removes the directory."""
    work = tempfile.mkdtemp(prefix=prefix)
    shutil.copytree(os.path.join(ROOT, "benches/trunkgate/profiles"), os.path.join(work, "profiles"))
    with open(os.path.join(ROOT, "benches/trunkgate/gateway.toml")) as f:
        conf = f.read().replace("/tmp/trunkgate-bench", work)
    path = os.path.join(work, "gateway.toml")
    with open(path, "w") as f:
        f.write(conf + extra)
    return work, path
