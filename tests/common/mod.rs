//! Test harness: start the real `trunkgate` binary on a generated configuration and drive it
//! with SIPp and raw UDP. Every peer has its own loopback address (peers are told apart by
//! source address); every test picks its own ports so tests can run in parallel.

#![allow(dead_code)]

pub mod anchored;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const PHONE_IP: &str = "127.0.0.2";
pub const CARRIER_A_IP: &str = "127.0.0.3";
pub const CARRIER_B_IP: &str = "127.0.0.4";
pub const STRANGER_IP: &str = "127.0.0.9";

/// `/proc/net/tcp`'s state of an established connection.
pub const TCP_ESTABLISHED: &str = "01";
/// `/proc/net/tcp`'s state of a listening socket.
pub const TCP_LISTEN: &str = "0A";

/// Whether a TCP socket with the local address `at` (IPv4) is in `state` within `limit`,
/// read from the kernel's table (`/proc/net/tcp`: a local address `0100007F:PORT` for
/// 127.0.0.1), which looking does not disturb (a test connection would be one more for the
/// peer, binding the port could take it from the peer).
pub fn tcp_socket_in_state(at: std::net::SocketAddrV4, state: &str, limit: Duration) -> bool {
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(at.ip().octets()),
        at.port()
    );
    let end = std::time::Instant::now() + limit;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let found = table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&state)
        });
        if found {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port free for both UDP and TCP on `ip`, from 10000–19999: below the kernel's ephemeral
/// range and outside the RTP ranges (`rtp_base`, and 40000–43999 for the real clients). A
/// port found by binding port 0 is an ephemeral one, which any socket bound to port 0 in the
/// meantime (a SIPp's, another test's) can take before the test's peer binds it: that race
/// once left a carrier SIPp unable to start in CI. The start is spread by process id, and a
/// counter keeps this process's tests apart. Each call claims a block of four ports (the
/// three after the one returned are free too and handed to no one else): a SIPp given
/// `-mp P` binds P and P + 2 (audio and video echo), so with single ports another test's SIP
/// port could be P + 2, and whichever SIPp came second could not start. One CI run showed a
/// carrier SIPp that never answered, which this explains.
pub fn free_port(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BLOCK: u32 = 4;
    const BLOCKS: u32 = 10_000 / BLOCK;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % BLOCKS;
    for _ in 0..BLOCKS {
        let block = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % BLOCKS;
        let p = u16::try_from(10_000 + block * BLOCK).expect("below 20000");
        let free = (p..p + BLOCK as u16).all(|q| UdpSocket::bind((ip, q)).is_ok())
            && TcpListener::bind((ip, p)).is_ok();
        if free {
            return p;
        }
    }
    panic!("no free port on {ip}");
}

/// A base for 20 RTP ports that are free now, below the kernel's ephemeral range (so no
/// test socket bound to port 0 lands in it), and not handed to another test of this process.
fn rtp_base() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    for _ in 0..600 {
        let slot = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 600;
        let p = 20000 + slot * 20;
        if (p..p + 20).all(|q| UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return p;
        }
    }
    panic!("no free RTP port range");
}

/// Ports of one test's world.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gw: u16,
    pub metrics: u16,
    /// First of 20 RTP ports for anchored media.
    pub rtp: u16,
    pub phone: u16,
    pub carrier_a: u16,
    pub carrier_b: u16,
}

impl Ports {
    pub fn new() -> Self {
        Ports {
            gw: free_port("127.0.0.1"),
            metrics: free_port("127.0.0.1"),
            rtp: rtp_base(),
            phone: free_port(PHONE_IP),
            carrier_a: free_port(CARRIER_A_IP),
            carrier_b: free_port(CARRIER_B_IP),
        }
    }
}

/// Options for the generated configuration.
pub struct GwOpts {
    pub carrier_a_transport: &'static str,
    pub ring_timeout_s: u64,
    /// Appended to profiles/pbx.toml (e.g. a `[prack]` table).
    pub pbx_extra: String,
    /// Appended to profiles/carrier-a.toml.
    pub carrier_a_extra: String,
    /// `domain` of carrier-a.
    pub carrier_a_domain: &'static str,
    /// Route the PBX's calls to carrier-a only (no failover to carrier-b).
    pub single_carrier: bool,
    /// Appended to gateway.toml (e.g. a `[recording]` table).
    pub gateway_extra: String,
    /// `[[route]]` tables placed before the standard routes (first match wins).
    pub routes_first: String,
    /// The body of gateway.toml's `[callback]` table. The default, `port = 0`, opens no
    /// call-back socket, so parallel test gateways do not fight over UDP 5080; a test of the
    /// service names its own port (see [`GwOpts::callback_on`]).
    pub callback: String,
    /// `[shutdown] drain_s`.
    pub drain_s: u64,
    /// Keys added to gateway.toml's `[cdr]` table (its `path` is set).
    pub cdr_extra: &'static str,
    /// The IP of `[sip] listen` (UDP and TCP), and `[sip] advertise`.
    pub listen_ip: &'static str,
    pub advertise: &'static str,
    /// A network the PBX's profile matches besides its address (a client whose TCP
    /// connections leave from another loopback address than its UDP).
    pub pbx_also_matches: &'static str,
    /// The transport of the PBX's profile `address`: how the gateway reaches it.
    pub pbx_transport: &'static str,
}

impl Default for GwOpts {
    fn default() -> Self {
        GwOpts {
            carrier_a_transport: "udp",
            ring_timeout_s: 30,
            pbx_extra: String::new(),
            carrier_a_extra: String::new(),
            carrier_a_domain: "carrier-a.example",
            single_carrier: false,
            gateway_extra: String::new(),
            routes_first: String::new(),
            callback: "port = 0\n".into(),
            drain_s: 2,
            cdr_extra: "",
            listen_ip: "127.0.0.1",
            advertise: "127.0.0.1",
            pbx_also_matches: "",
            pbx_transport: "udp",
        }
    }
}

impl GwOpts {
    /// Default options with extra keys for carrier-a's profile.
    pub fn carrier_a(extra: &str) -> Self {
        GwOpts {
            carrier_a_extra: extra.to_string(),
            ..GwOpts::default()
        }
    }

    /// Default options with the call-back service on 127.0.0.1:`port`, legs routed as calls
    /// from the PBX, plus `extra` keys of `[callback]`.
    pub fn callback_on(port: u16, extra: &str) -> Self {
        GwOpts {
            callback: format!(
                "port = {port}\nlisten = \"127.0.0.1\"\nfrom_peer = \"pbx\"\n{extra}"
            ),
            ..GwOpts::default()
        }
    }

    /// Default options with extra keys for the PBX's profile.
    pub fn pbx(extra: &str) -> Self {
        GwOpts {
            pbx_extra: extra.to_string(),
            ..GwOpts::default()
        }
    }
}

/// A TCP connection to the gateway from `ip` (a peer's address, or a stranger's).
pub fn tcp_from(ip: &str, gw: &Gateway) -> std::net::TcpStream {
    tcp_between(ip, gw.addr())
}

/// A TCP connection from `ip` to `to`.
pub fn tcp_between(ip: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{ip}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .unwrap();
    sock.into()
}

/// A running gateway. Killed on drop.
pub struct Gateway {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub ports: Ports,
}

impl Gateway {
    pub fn start(ports: Ports, opts: GwOpts) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let to = if opts.single_carrier {
            "[\"carrier-a\"]"
        } else {
            "[\"carrier-a\", \"carrier-b\"]"
        };
        // `[media] threads = 2`: calls alternate between two relay threads in every test.
        let gw = format!(
            "profiles = \"profiles\"\n\n[sip]\nlisten = [\"udp:{ip}:{p}\", \"tcp:{ip}:{p}\"]\nadvertise = \"{adv}\"\n\n[cdr]\npath = \"cdr.jsonl\"\n{cdr_extra}\n[shutdown]\ndrain_s = {drain}\n\n[metrics]\nlisten = \"127.0.0.1:{mp}\"\n\n[media]\nadvertise = \"127.0.0.1\"\nports = \"{rtp}-{rtp_end}\"\nthreads = 2\n\n{first}[[route]]\nfrom = \"pbx\"\nprefix = \"\"\nto = {to}\nring_timeout_s = {rt}\n\n[[route]]\nfrom = \"*\"\nto = \"pbx\"\n",
            p = ports.gw,
            ip = opts.listen_ip,
            adv = opts.advertise,
            mp = ports.metrics,
            rtp = ports.rtp,
            rtp_end = ports.rtp + 19,
            rt = opts.ring_timeout_s,
            first = opts.routes_first,
            drain = opts.drain_s,
            cdr_extra = opts.cdr_extra,
        );
        std::fs::write(
            dir.path().join("gateway.toml"),
            format!(
                "{gw}\n[callback]\n{}\n{}\n",
                opts.callback, opts.gateway_extra
            ),
        )
        .unwrap();
        // The scenarios' X-Phone-Trace must cross the gateway (basic-call checks it, as
        // carrier-a, carrier-b or the PBX): `[headers]` is an allow-list, so every profile
        // passes it unless a test sets its own.
        let with_trace = |extra: &str| {
            if extra.contains("[headers]") {
                extra.to_string()
            } else {
                format!("{extra}\n[headers]\npass = [\"X-Phone-Trace\"]\n")
            }
        };
        let carrier_a_extra = with_trace(&opts.carrier_a_extra);
        let pdir = dir.path().join("profiles");
        std::fs::create_dir(&pdir).unwrap();
        let profile = |name: &str,
                       role: &str,
                       transport: &str,
                       ip: &str,
                       port: u16,
                       domain: &str,
                       extra: &str| {
            format!(
                "name = \"{name}\"\nrole = \"{role}\"\naddress = \"{transport}:{ip}:{port}\"\nmatch = [\"{ip}/32\"]\ndomain = \"{domain}\"\n{extra}\n"
            )
        };
        let pbx_match = format!("match = [\"{PHONE_IP}/32\"]");
        let pbx_matches = match opts.pbx_also_matches {
            "" => pbx_match.clone(),
            also => format!("match = [\"{PHONE_IP}/32\", \"{also}\"]"),
        };
        std::fs::write(
            pdir.join("pbx.toml"),
            profile(
                "pbx",
                "internal",
                opts.pbx_transport,
                PHONE_IP,
                ports.phone,
                "pbx.example",
                // As the shipped pbx.toml: its asserted identities are believed.
                &with_trace(&opts.pbx_extra).replacen(
                    "[headers]\n",
                    "[headers]\ntrust_asserted = true\n",
                    1,
                ),
            )
            .replacen(&pbx_match, &pbx_matches, 1),
        )
        .unwrap();
        std::fs::write(
            pdir.join("carrier-a.toml"),
            profile(
                "carrier-a",
                "trunk",
                opts.carrier_a_transport,
                CARRIER_A_IP,
                ports.carrier_a,
                opts.carrier_a_domain,
                &carrier_a_extra,
            ),
        )
        .unwrap();
        std::fs::write(
            pdir.join("carrier-b.toml"),
            profile(
                "carrier-b",
                "trunk",
                "udp",
                CARRIER_B_IP,
                ports.carrier_b,
                "carrier-b.example",
                &with_trace(""),
            ),
        )
        .unwrap();
        let child = spawn_gateway(dir.path(), &dir.path().join("gateway.log"));
        let gw = Gateway { child, dir, ports };
        gw.wait_ready();
        gw
    }

    /// SIGKILL: the process gets no chance to flush, fsync or say goodbye to anyone.
    /// Send the gateway a signal (`TERM`, `INT`, `HUP`, `STOP`, `CONT`). A signal that
    /// cannot be sent fails the test: one that went silently unsent (no `kill` program on a
    /// minimal machine) let a test of a stalled gateway pass on a running one.
    pub fn signal(&self, name: &str) {
        let sig: nix::sys::signal::Signal = format!("SIG{name}")
            .parse()
            .unwrap_or_else(|e| panic!("no signal {name}: {e}"));
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap_or_else(|e| panic!("cannot send SIG{name}: {e}"));
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the binary again on the same folder (configuration, ports, CDR file) after it
    /// died, and wait until it answers OPTIONS. Its log is appended to gateway.log.
    pub fn restart(&mut self) {
        self.respawn();
        self.wait_ready();
    }

    /// Start the binary again on the same folder after it died, without waiting for it: a
    /// test that acts on the process during its start-up, then calls [`Gateway::ready`].
    pub fn respawn(&mut self) {
        self.child = spawn_gateway(self.dir.path(), &self.path("gateway.log"));
    }

    /// Wait until the gateway answers OPTIONS (a failed test if it does not within 10 s).
    pub fn ready(&self) {
        self.wait_ready();
    }

    /// Start the binary on this folder's configuration while this one is not running, for a
    /// start-up that must fail: its exit status (None if it still ran after 15 s and had to
    /// be killed) and its log.
    pub fn start_again_expecting_exit(&self) -> (Option<ExitStatus>, String) {
        let log = self.path("second-start.log");
        let mut child = spawn_gateway(self.dir.path(), &log);
        let status = exit_within(&mut child, Duration::from_secs(15));
        (status, std::fs::read_to_string(log).unwrap_or_default())
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.ports.gw).parse().unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Ready when an OPTIONS gets its 200 (sent from the PBX's address: the gateway does not
    /// answer sources no profile matches).
    fn wait_ready(&self) {
        let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = sock.local_addr().unwrap().port();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let ping = format!(
                "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{port};branch=z9hG4bKready{}\r\nFrom: <sip:t@127.0.0.2>;tag=r\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ready-{}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                Instant::now().elapsed().as_nanos(),
                port
            );
            let _ = sock.send_to(ping.as_bytes(), self.addr());
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200")
            {
                return;
            }
        }
        panic!("gateway did not come up; log:\n{}", self.log());
    }

    /// The Prometheus exposition text from `/metrics`.
    pub fn metrics(&self) -> String {
        self.http_get("/metrics")
    }

    /// The whole HTTP answer (status line, headers, body) to `GET path` on the metrics
    /// listener.
    pub fn http_get(&self, path: &str) -> String {
        http_get_on(self.ports.metrics, path)
    }

    /// The value of one series (its exact name with labels) on the `/metrics` page `page`
    /// (what [`Gateway::metrics`] returns), if the page has it.
    pub fn metric_value(page: &str, series: &str) -> Option<f64> {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("gateway.log")).unwrap_or_default()
    }

    /// The CDR lines written so far.
    pub fn cdrs(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("cdr.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("CDR line is JSON"))
            .collect()
    }

    /// Wait until `n` CDRs exist (the writer flushes each line as it arrives).
    pub fn wait_cdrs(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.cdrs();
            if c.len() >= n || Instant::now() > deadline {
                assert_eq!(c.len(), n, "CDRs: {c:#?}\nlog:\n{}", self.log());
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until at least `n` CDRs exist.
    pub fn wait_cdrs_at_least(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.cdrs();
            if c.len() >= n {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} CDRs: {c:#?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gateway did not stop on SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An application server of the call-back service: a UDP socket on `ip` (an ephemeral port).
pub struct CallbackClient {
    sock: UdpSocket,
    to: SocketAddr,
}

impl CallbackClient {
    /// A client on `ip` talking to the service at 127.0.0.1:`port`.
    pub fn new(ip: &str, port: u16) -> CallbackClient {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        CallbackClient {
            sock,
            to: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    pub fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.to).unwrap();
    }

    /// The next datagram from the service within `wait`, or None.
    pub fn recv(&self, wait: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, self.to, "call-back answer from an unexpected address");
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            Err(_) => None,
        }
    }

    /// Send `text` and return the answer, if one comes within 2 s.
    pub fn ask(&self, text: &str) -> Option<String> {
        self.send(text);
        self.recv(Duration::from_secs(2))
    }
}

/// Wait (at most `limit`) for `child` to exit; `None`, and the child killed, if it did not.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `trunkgate run` on `dir`/gateway.toml, stderr appended to `log`.
fn spawn_gateway(dir: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["run", "--config"])
        .arg(dir.join("gateway.toml"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start trunkgate")
}

/// The conformance scenario folder.
pub fn scenario(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance")
        .join(rel)
}

fn sipp_bin() -> &'static str {
    if Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!(
            "SIPp is not installed: apt-get install -y sip-tester (the README's test command does it)"
        );
    }
    "sipp"
}

/// A SIPp instance.
pub struct Sipp {
    child: Child,
    name: String,
    dir: PathBuf,
}

/// How the SIPp peers reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Start `carrier` as the UAS on carrier-a, then `phone` calling `dialled` from the PBX
/// through `gw`, both over `transport`. Returns (carrier, phone), still running.
pub fn phone_calls_carrier(
    gw: &Gateway,
    dir: &Path,
    carrier: &str,
    phone: &str,
    dialled: &str,
    transport: Transport,
) -> (Sipp, Sipp) {
    let extra: &[&str] = match transport {
        Transport::Udp => &[],
        Transport::Tcp => &["-t", "t1"],
    };
    let c = Sipp::spawn_with(
        carrier,
        CARRIER_A_IP,
        gw.ports.carrier_a,
        dir,
        None,
        None,
        extra,
    );
    if transport == Transport::Tcp {
        // The gateway connects to the carrier as soon as the INVITE arrives: SIPp must be
        // listening by then, however slowly it started.
        let listen = std::net::SocketAddrV4::new(
            CARRIER_A_IP.parse().expect("an IPv4 address"),
            gw.ports.carrier_a,
        );
        assert!(
            tcp_socket_in_state(listen, TCP_LISTEN, Duration::from_secs(10)),
            "the carrier's SIPp never listened on TCP"
        );
    }
    let p = Sipp::spawn_with(
        phone,
        PHONE_IP,
        gw.ports.phone,
        dir,
        Some(gw.addr()),
        Some(dialled),
        extra,
    );
    (c, p)
}

/// [`phone_calls_carrier`] dialling +8610123, where both scenarios must pass.
pub fn call_succeeds(gw: &Gateway, dir: &Path, carrier: &str, phone: &str, transport: Transport) {
    let (c, p) = phone_calls_carrier(gw, dir, carrier, phone, "+8610123", transport);
    p.expect_success(gw);
    c.expect_success(gw);
}

impl Sipp {
    /// A UAS (carrier or phone side) on `ip:port`, for one call.
    pub fn uas(scenario_rel: &str, ip: &str, port: u16, dir: &Path) -> Sipp {
        Self::spawn(scenario_rel, ip, port, dir, None, None)
    }

    /// A UAC calling `service` through the gateway, for one call.
    pub fn uac(
        scenario_rel: &str,
        ip: &str,
        port: u16,
        dir: &Path,
        gw: SocketAddr,
        service: &str,
    ) -> Sipp {
        Self::spawn(scenario_rel, ip, port, dir, Some(gw), Some(service))
    }

    /// A UAS with extra SIPp options (e.g. `-rtp_echo`).
    pub fn uas_with(scenario_rel: &str, ip: &str, port: u16, dir: &Path, extra: &[&str]) -> Sipp {
        Self::spawn_with(scenario_rel, ip, port, dir, None, None, extra)
    }

    fn spawn(
        scenario_rel: &str,
        ip: &str,
        port: u16,
        dir: &Path,
        gw: Option<SocketAddr>,
        service: Option<&str>,
    ) -> Sipp {
        Self::spawn_with(scenario_rel, ip, port, dir, gw, service, &[])
    }

    fn spawn_with(
        scenario_rel: &str,
        ip: &str,
        port: u16,
        dir: &Path,
        gw: Option<SocketAddr>,
        service: Option<&str>,
        extra: &[&str],
    ) -> Sipp {
        let mut args = vec!["-m", "1", "-timeout", "20s", "-timeout_error"];
        args.extend_from_slice(extra);
        Self::spawn_args(scenario_rel, ip, port, dir, gw, service, &args)
    }

    /// SIPp with the caller's own call count, rate and timeouts in `args` (for load: `-r`,
    /// `-m`, `-l`, `-timeout`); traces go to `dir` as for the other constructors.
    pub fn spawn_args(
        scenario_rel: &str,
        ip: &str,
        port: u16,
        dir: &Path,
        gw: Option<SocketAddr>,
        service: Option<&str>,
        args: &[&str],
    ) -> Sipp {
        let name = format!("{}-{ip}", scenario_rel.replace('/', "_"));
        let mut cmd = Command::new(sipp_bin());
        cmd.current_dir(dir)
            .arg("-sf")
            .arg(scenario(scenario_rel))
            .args(["-i", ip, "-p", &port.to_string(), "-nostdin"])
            .args(["-mi", ip, "-mp", &free_port(ip).to_string()])
            .args(["-trace_msg", "-message_file"])
            .arg(dir.join(format!("{name}.msg.log")))
            .args(["-trace_err", "-error_file"])
            .arg(dir.join(format!("{name}.err.log")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap());
        cmd.args(args);
        if let Some(s) = service {
            cmd.args(["-s", s]);
        }
        if let Some(gw) = gw {
            cmd.arg(gw.to_string());
        }
        let child = cmd.spawn().expect("start sipp");
        Sipp {
            child,
            name,
            dir: dir.to_path_buf(),
        }
    }

    /// The path of this SIPp's message trace.
    pub fn message_log(&self) -> PathBuf {
        self.dir.join(format!("{}.msg.log", self.name))
    }

    /// Stop it now (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait (at most `limit`) for SIPp to exit; `None` if it had to be killed.
    fn finish(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for SIPp to finish and return whether its scenario passed.
    pub fn passed(self) -> bool {
        self.passed_within(Duration::from_secs(30))
    }

    /// [`Sipp::passed`] for scenarios that take longer than 30 s (session timers).
    pub fn passed_within(mut self, limit: Duration) -> bool {
        self.finish(limit).is_some_and(|s| s.success())
    }

    /// Wait for SIPp to finish; panics with its traces unless it succeeded.
    pub fn expect_success(self, gw: &Gateway) {
        self.expect_success_within(gw, Duration::from_secs(30));
    }

    /// [`Sipp::expect_success`] for scenarios that legitimately take longer than 30 s (a
    /// failover after Timer B).
    pub fn expect_success_within(mut self, gw: &Gateway, limit: Duration) {
        let Some(status) = self.finish(limit) else {
            panic!("{} did not finish", self.name);
        };
        if !status.success() {
            let read = |suffix: &str| {
                std::fs::read_to_string(self.dir.join(format!("{}.{suffix}", self.name)))
                    .unwrap_or_default()
            };
            panic!(
                "{} failed ({status}).\nerrors:\n{}\nstderr:\n{}\nmessages:\n{}\ngateway log:\n{}",
                self.name,
                read("err.log"),
                read("stderr"),
                read("msg.log"),
                gw.log()
            );
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The whole HTTP answer to `GET path` on 127.0.0.1:`port` (a gateway's metrics listener).
pub fn http_get_on(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A status line's code, from the first datagram `sock` receives whose CSeq method is
/// `method` (the rest are skipped); None when none comes within its timeout.
pub fn status_for(sock: &UdpSocket, method: &str) -> Option<u16> {
    let mut buf = [0u8; 8192];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let cseq = text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("cseq:"));
        if text.starts_with("SIP/2.0 ") && cseq.is_some_and(|c| c.trim_end().ends_with(method)) {
            return text[8..11].parse().ok();
        }
    }
}
