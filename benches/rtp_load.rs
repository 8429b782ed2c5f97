//! RTP relay load: N anchored calls through the real gateway, each carrying PCMU (20 ms
//! packets by default, 50 a second per call) from the phone side to the carrier side, for a
//! bounded time. Reports packets relayed per second, loss, added latency (p50/p99,
//! send-to-receive on one machine) and the gateway's CPU, with and without recording. Traffic stays on 127.0.0.0/8. The
//! generator is two sockets and two threads for all calls (see `Media`), and SIP setup
//! latency is probed with the calls silent and again while they relay.
//!
//! The same load through rtpengine (Debian's `rtpengine-daemon`, userspace forwarding,
//! driven over its ng control protocol) gives the same-run baseline.
//!
//! cargo build --release && cargo bench --bench rtp_load -- [calls,calls,...] [seconds] [targets]
//!
//! `targets`: any of `trunkgate,rtpengine,direct`, run in that order (all by default);
//! `direct` sends with no relay in between, the floor this machine puts under every latency
//! figure.
//!
//! `RTP_LOAD_PTIME_MS` (default 20) sets the packetisation: at 40 ms, 2,000 calls offer
//! 50,000 packets a second, which the generator can send to either relay on a 2-core machine
//! (at 20 ms it falls behind, and by how much depends on the relay it shares the cores with).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use trunkgate::sip::{Hdr, Message, Method, Response, parse_datagram};

const PHONE: &str = "127.0.0.2";
const CARRIER: &str = "127.0.0.3";

/// Linux reports process CPU in USER_HZ ticks, 100 per second.
fn tick() -> u64 {
    100
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let f = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    f(11) + f(12)
}

struct Gw {
    child: Child,
    sip: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(record: bool, phone_port: u16, carrier_port: u16) -> Gw {
    let dir = tempfile::tempdir().expect("tempdir");
    let sip_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The load comes from one address per side, faster than a real peer sets up calls:
    // the per-source guard is off here (it is measured in benches/overload.py).
    // Relay threads: the gateway's default (one per core but one) unless the run sets
    // TRUNKGATE_MEDIA_THREADS.
    let threads: u32 = std::env::var("TRUNKGATE_MEDIA_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let gw = format!(
        "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\nadvertise = \"127.0.0.1\"\n[cdr]\npath = \"cdr.jsonl\"\n[metrics]\nlisten = \"\"\n[protect]\nsource_rate = 0\n[media]\nadvertise = \"127.0.0.1\"\nports = \"20000-29999\"\nthreads = {threads}\n[recording]\ndir = \"rec\"\n[[route]]\nfrom = \"pbx\"\nto = \"carrier\"\n"
    );
    std::fs::write(dir.path().join("gateway.toml"), gw).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/pbx.toml"),
        format!("name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:{PHONE}:{phone_port}\"\nmatch = [\"{PHONE}/32\"]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("profiles/carrier.toml"),
        format!(
            "name = \"carrier\"\nrole = \"trunk\"\naddress = \"udp:{CARRIER}:{carrier_port}\"\nmatch = [\"{CARRIER}/32\"]\n[media]\nanchor = true\nrecord = {record}\n"
        ),
    )
    .unwrap();
    let bin = std::env::var("TRUNKGATE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/trunkgate").into()
    });
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start target/release/trunkgate (cargo build --release first)");
    std::thread::sleep(Duration::from_millis(500));
    Gw {
        child,
        sip: format!("127.0.0.1:{sip_port}").parse().unwrap(),
        _dir: dir,
    }
}

fn recv(sock: &UdpSocket, want: impl Fn(&Message) -> bool) -> Message {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("SIP in time");
        if let Ok(m) = parse_datagram(Bytes::copy_from_slice(&buf[..n]), 65535)
            && want(&m)
        {
            return m;
        }
    }
}

fn port_of(body: &[u8]) -> u16 {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("anchored m= port")
}

/// The load generator's two RTP sockets: every call's phone side sends from `phone`, every
/// call's carrier side receives on `carrier` (the relay keeps calls apart by its own ports).
/// Two sockets and two plain threads instead of two sockets and two tasks per call: the
/// generator shares the machine's two cores with the relay under test, so the less it
/// costs, the more the figures are the relay's.
struct Media {
    phone: UdpSocket,
    carrier: UdpSocket,
}

impl Media {
    fn new() -> Media {
        let phone = UdpSocket::bind((PHONE, 0)).unwrap();
        let carrier = UdpSocket::bind((CARRIER, 0)).unwrap();
        // Every call's packet lands on one socket: room for a few periods' worth.
        let _ = socket2::SockRef::from(&carrier).set_recv_buffer_size(16 << 20);
        let _ = socket2::SockRef::from(&phone).set_send_buffer_size(4 << 20);
        Media { phone, carrier }
    }

    fn ports(&self) -> (u16, u16) {
        (
            self.phone.local_addr().unwrap().port(),
            self.carrier.local_addr().unwrap().port(),
        )
    }
}

/// Set up one call; returns the gateway's address facing the phone.
fn call(gw: &Gw, phone: &UdpSocket, carrier: &UdpSocket, i: usize, media: &Media) -> SocketAddr {
    let (prtp, crtp) = media.ports();
    let pp = phone.local_addr().unwrap().port();
    let sdp = |ip: &str, port: u16| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
        )
    };
    let body = sdp(PHONE, prtp);
    let inv = format!(
        "INVITE sip:+861{i:07}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE}:{pp};branch=z9hG4bKload{i};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE}>;tag=l{i}\r\nTo: <sip:+861{i:07}@127.0.0.1>\r\nCall-ID: load-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{PHONE}:{pp}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    phone.send_to(inv.as_bytes(), gw.sip).unwrap();
    let Message::Request(req) = recv(
        carrier,
        |m| matches!(m, Message::Request(r) if r.method() == Method::Invite),
    ) else {
        unreachable!()
    };
    let mut ok = Response::to_request(&req, 200, "OK", Some("c")).unwrap();
    ok.remove_header(&Hdr::CONTENT_LENGTH);
    ok.push_header(
        &Hdr::CONTACT,
        format!("<sip:c@{}>", carrier.local_addr().unwrap()),
    )
    .unwrap();
    ok.push_header(&Hdr::CONTENT_LENGTH, "0").unwrap();
    ok.set_body(Bytes::from(sdp(CARRIER, crtp)), Some("application/sdp"))
        .unwrap();
    carrier.send_to(&ok.to_bytes(), gw.sip).unwrap();
    let Message::Response(r) = recv(
        phone,
        |m| matches!(m, Message::Response(r) if r.status() == 200 && r.call_id().as_deref() == Some(&format!("load-{i}"))),
    ) else {
        unreachable!()
    };
    let to = r.header(&Hdr::TO).unwrap();
    let ack = format!(
        "ACK sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE}:{pp};branch=z9hG4bKloada{i};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE}>;tag=l{i}\r\nTo: {to}\r\nCall-ID: load-{i}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send_to(ack.as_bytes(), gw.sip).unwrap();
    SocketAddr::new("127.0.0.1".parse().unwrap(), port_of(r.body()))
}

/// The media relay under test and how to set a call up through it.
enum Relay {
    Trunkgate {
        gw: Gw,
        phone: UdpSocket,
        carrier: UdpSocket,
    },
    Rtpengine {
        child: Child,
        ng: UdpSocket,
    },
    /// No relay: the phone side sends straight to the carrier side. What this machine adds
    /// by itself (the generator's sending, the kernel's loopback, the receiver's wake-up):
    /// the floor under every relay's latency figure.
    Direct,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Relay::Rtpengine { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Relay {
    fn pid(&self) -> u32 {
        match self {
            Relay::Trunkgate { gw, .. } => gw.child.id(),
            Relay::Rtpengine { child, .. } => child.id(),
            // Nothing to measure: the process's own CPU is the generator's.
            Relay::Direct => 0,
        }
    }

    /// One call: the relay address the phone sends to.
    fn call(&self, i: usize, media: &Media) -> SocketAddr {
        match self {
            Relay::Trunkgate { gw, phone, carrier } => call(gw, phone, carrier, i, media),
            Relay::Direct => media.carrier.local_addr().unwrap(),
            Relay::Rtpengine { ng, .. } => {
                let (prtp, crtp) = media.ports();
                let sdp = |ip: &str, port: u16| {
                    format!(
                        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
                    )
                };
                let id = format!("load-{i}");
                let to_carrier = ng_call(
                    ng,
                    &[
                        ("command", "offer"),
                        ("sdp", &sdp(PHONE, prtp)),
                        ("call-id", &id),
                        ("from-tag", "f"),
                    ],
                );
                let to_phone = ng_call(
                    ng,
                    &[
                        ("command", "answer"),
                        ("sdp", &sdp(CARRIER, crtp)),
                        ("call-id", &id),
                        ("from-tag", "f"),
                        ("to-tag", "t"),
                    ],
                );
                let a = SocketAddr::new("127.0.0.1".parse().unwrap(), port_of(to_phone.as_bytes()));
                // rtpengine forwards to a leg once it has heard from it (symmetric RTP).
                let b =
                    SocketAddr::new("127.0.0.1".parse().unwrap(), port_of(to_carrier.as_bytes()));
                let _ = media
                    .carrier
                    .send_to(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], b);
                a
            }
        }
    }
}

/// One ng request (bencoded dictionary of strings); returns the `sdp` of the reply.
fn ng_call(sock: &UdpSocket, pairs: &[(&str, &str)]) -> String {
    // Each command needs its own cookie: rtpengine answers a repeated cookie from its cache.
    static COOKIE: AtomicU64 = AtomicU64::new(0);
    let mut msg = format!("c{} d", COOKIE.fetch_add(1, Ordering::Relaxed)).into_bytes();
    for (k, v) in pairs {
        msg.extend_from_slice(format!("{}:{k}{}:", k.len(), v.len()).as_bytes());
        msg.extend_from_slice(v.as_bytes());
    }
    msg.push(b'e');
    sock.send(&msg).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).expect("rtpengine answers");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let at = text.find("3:sdp").expect("sdp in the ng reply") + 5;
    let colon = at + text[at..].find(':').unwrap_or(0);
    let len: usize = text[at..colon].parse().unwrap_or(0);
    text[colon + 1..colon + 1 + len].to_string()
}

fn start_rtpengine() -> Relay {
    let ng_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("rtpengine")
        .args([
            "--foreground",
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ng_port}"),
            "--port-min=40000",
            "--port-max=49999",
            "--table=-1",
            "--log-level=3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rtpengine (apt-get install rtpengine-daemon)");
    std::thread::sleep(Duration::from_millis(800));
    let ng = UdpSocket::bind("127.0.0.1:0").unwrap();
    ng.connect(("127.0.0.1", ng_port)).unwrap();
    ng.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Relay::Rtpengine { child, ng }
}

struct Result {
    target: &'static str,
    calls: usize,
    record: bool,
    sent: u64,
    received: u64,
    cpu: f64,
    p50: Duration,
    p99: Duration,
    /// INVITE -> 200 at the phone for probe calls placed with the N calls up but silent, and
    /// again while their RTP flows (trunkgate only).
    setup_idle: Option<(Duration, Duration)>,
    setup_relaying: Option<(Duration, Duration)>,
}

/// Probe calls placed one at a time, `gap` apart, until `until`; returns (p50, p99) of their
/// INVITE -> 200 times at the phone. The calls stay up (the gateway's table holds them).
fn probe_setup(
    relay: &Relay,
    media: &Media,
    first: usize,
    until: Instant,
    gap: Duration,
) -> Option<(Duration, Duration)> {
    let mut times = Vec::new();
    let mut i = first;
    while Instant::now() < until {
        let t0 = Instant::now();
        relay.call(i, media);
        times.push(t0.elapsed());
        i += 1;
        std::thread::sleep(gap);
    }
    times.sort_unstable();
    let q = |f: f64| times[((times.len() as f64 * f) as usize).min(times.len() - 1)];
    (!times.is_empty()).then(|| (q(0.5), q(0.99)))
}

/// Where in the 20 ms period each call sends: evenly spread, in an order unrelated to the
/// order the calls were set up (a fixed shuffle). Real calls' packet phases follow the
/// moment each was answered, not the order a relay placed them in; sending in setup order
/// would make the calls a relay places side by side also send side by side.
fn phases(n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    // Fisher-Yates with a fixed xorshift seed: the same order in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

/// The packetisation (ms): `RTP_LOAD_PTIME_MS`, 20 by default; PCMU, 8 bytes a ms.
fn ptime_ms() -> u32 {
    std::env::var("RTP_LOAD_PTIME_MS")
        .ok()
        .and_then(|p| p.parse().ok())
        .filter(|p| (10..=120).contains(p))
        .unwrap_or(20)
}

/// Send every call's packet once per period (the ptime), spread evenly over it (see [`phases`]),
/// until `end`. Each packet carries its call's SSRC, its sequence number and the send time
/// (µs since `epoch`) for the receiver's latency figure.
fn send_load(
    media: &Media,
    targets: &[SocketAddr],
    epoch: Instant,
    end: Instant,
    sent: &AtomicU64,
) {
    let ptime = ptime_ms();
    let period = Duration::from_millis(u64::from(ptime));
    let n = targets.len().max(1) as u32;
    let mut pkt = vec![0u8; 12 + 8 * ptime as usize];
    pkt[0] = 0x80;
    // Calls in the order they send within a period: (call index, its slot).
    let mut by_slot: Vec<(usize, u32)> = phases(targets.len()).into_iter().enumerate().collect();
    by_slot.sort_unstable_by_key(|&(_, slot)| slot);
    let start = Instant::now();
    let mut k: u32 = 0;
    while Instant::now() < end {
        let seq = k as u16;
        for &(i, slot) in &by_slot {
            let to = &targets[i];
            let due = start + period * k + period * slot / n;
            let now = Instant::now();
            if due > now + Duration::from_micros(200) {
                std::thread::sleep(due - now);
            }
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            pkt[4..8].copy_from_slice(&(u32::from(seq) * 8 * ptime).to_be_bytes());
            pkt[8..12].copy_from_slice(&(i as u32).to_be_bytes());
            let t = epoch.elapsed().as_micros() as u64;
            pkt[12..20].copy_from_slice(&t.to_be_bytes());
            if media.phone.send_to(&pkt, to).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        k += 1;
    }
}

/// Receive until nothing came for 2 s; returns each packet's delay through the relay (µs).
fn receive_load(media: &Media, epoch: Instant, received: &AtomicU64) -> Vec<u32> {
    let _ = media.carrier.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 2048];
    let mut lat = Vec::new();
    while let Ok((n, _)) = media.carrier.recv_from(&mut buf) {
        if n >= 20 {
            let t = u64::from_be_bytes(buf[12..20].try_into().unwrap_or([0; 8]));
            lat.push((epoch.elapsed().as_micros() as u64).saturating_sub(t) as u32);
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
    lat
}

fn run(target: &'static str, calls: usize, seconds: u64, record: bool) -> Result {
    let relay = if target == "rtpengine" {
        start_rtpengine()
    } else if target == "direct" {
        Relay::Direct
    } else {
        let phone = UdpSocket::bind((PHONE, 0)).unwrap();
        let carrier = UdpSocket::bind((CARRIER, 0)).unwrap();
        for s in [&phone, &carrier] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let gw = start(
            record,
            phone.local_addr().unwrap().port(),
            carrier.local_addr().unwrap().port(),
        );
        Relay::Trunkgate { gw, phone, carrier }
    };
    let media = Media::new();
    let targets: Vec<SocketAddr> = (0..calls).map(|i| relay.call(i, &media)).collect();
    // SIP setup beside the media: with the calls up and silent, then while they relay.
    let probing = matches!(relay, Relay::Trunkgate { .. });
    const PROBES: usize = 1_000_000;
    let setup_idle = probing
        .then(|| {
            probe_setup(
                &relay,
                &media,
                PROBES,
                Instant::now() + Duration::from_secs(3),
                Duration::from_millis(30),
            )
        })
        .flatten();
    // Probe calls are not sent RTP: their (silent) media goes nowhere near the receiver.
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let epoch = Instant::now();
    let end = epoch + Duration::from_secs(seconds + 1);
    let pid = relay.pid();
    let (cpu, mut lat, setup_relaying) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| send_load(&media, &targets, epoch, end, &sent));
        let receiver = scope.spawn(|| receive_load(&media, epoch, &received));
        let probe = probing.then(|| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(1500));
                probe_setup(
                    &relay,
                    &media,
                    2 * PROBES,
                    epoch + Duration::from_secs(seconds),
                    Duration::from_millis(30),
                )
            })
        });
        // The relay's CPU over the steady part: after 1 s, for `seconds`.
        std::thread::sleep(Duration::from_secs(1));
        let (c0, t0) = (cpu_ticks(pid), Instant::now());
        std::thread::sleep(Duration::from_secs(seconds));
        let cpu = (cpu_ticks(pid) - c0) as f64 / tick() as f64 / t0.elapsed().as_secs_f64() * 100.0;
        let _ = sender.join();
        let lat = receiver.join().unwrap_or_default();
        let setup = probe.and_then(|p| p.join().ok()).flatten();
        (cpu, lat, setup)
    });
    lat.sort_unstable();
    let q = |f: f64| {
        Duration::from_micros(
            lat.get(((lat.len() as f64 * f) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as u64,
        )
    };
    Result {
        target,
        calls,
        record,
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        cpu,
        p50: q(0.5),
        p99: q(0.99),
        setup_idle,
        setup_relaying,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let steps: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![250, 1000, 2000]);
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    // Any of trunkgate, rtpengine and direct (the floor), comma-separated, run in the order
    // given (so rounds can alternate which relay goes first); all by default.
    let known = ["trunkgate", "rtpengine", "direct"];
    let targets: Vec<&'static str> = match args.get(2) {
        None => known.to_vec(),
        Some(a) => a
            .split(',')
            .filter_map(|x| known.iter().find(|t| **t == x).copied())
            .collect(),
    };
    println!("packetisation {} ms (RTP_LOAD_PTIME_MS)", ptime_ms());
    println!(
        "| target | calls | recording | packets/s relayed | loss | CPU | packets per CPU-second | added latency p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &calls in &steps {
        for &target in &targets {
            let modes: &[bool] = if target == "trunkgate" {
                &[false, true]
            } else {
                &[false]
            };
            for &record in modes {
                let r = run(target, calls, seconds, record);
                let pps = r.received as f64 / (seconds + 1) as f64;
                if target == "direct" {
                    println!(
                        "| direct (no relay: the floor) | {} | no | {:.0} | {:.2} % | | | {:.2} ms / {:.2} ms |",
                        r.calls,
                        pps,
                        100.0 * (r.sent.saturating_sub(r.received)) as f64 / r.sent.max(1) as f64,
                        r.p50.as_secs_f64() * 1000.0,
                        r.p99.as_secs_f64() * 1000.0
                    );
                    continue;
                }
                let loss =
                    100.0 * (r.sent.saturating_sub(r.received)) as f64 / r.sent.max(1) as f64;
                println!(
                    "| {} | {} | {} | {:.0} | {:.2} % | {:.0} % | {:.0} | {:.2} ms / {:.2} ms |",
                    r.target,
                    r.calls,
                    if r.record { "yes" } else { "no" },
                    pps,
                    loss,
                    r.cpu,
                    pps / (r.cpu / 100.0).max(0.01),
                    r.p50.as_secs_f64() * 1000.0,
                    r.p99.as_secs_f64() * 1000.0
                );
                if let (Some(idle), Some(busy)) = (r.setup_idle, r.setup_relaying) {
                    println!(
                        "|   SIP setup (INVITE -> 200) | {} | {} | calls silent: p50 {:.2} ms / p99 {:.2} ms | relaying: p50 {:.2} ms / p99 {:.2} ms | | | |",
                        r.calls,
                        if r.record { "yes" } else { "no" },
                        idle.0.as_secs_f64() * 1000.0,
                        idle.1.as_secs_f64() * 1000.0,
                        busy.0.as_secs_f64() * 1000.0,
                        busy.1.as_secs_f64() * 1000.0
                    );
                }
                let _ = std::io::stdout().flush();
            }
        }
    }
}
