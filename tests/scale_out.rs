//! Two trunkgate instances behind Kamailio's dispatcher (contrib/kamailio/trunkgate-front.cfg),
//! all on loopback: SIPp phones and carriers see only the front. Calls spread over both
//! instances, BYE from either side and re-INVITE reach the instance that owns the dialog, the
//! PBX's address never reaches the carrier, a trunk's failure after ringing is not tried again
//! on the other instance, and a drained instance answers 503 and gets no new calls while its
//! calls in progress go on to their BYE and the other instance carries on.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that forks workers (Kamailio), in a process group of its own, the whole group
/// killed on drop: killing only the main process left its workers running after the test.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(id) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(id),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.wait();
    }
}

struct Instance {
    proc: Proc,
    dir: PathBuf,
    port: u16,
    metrics: u16,
}

impl Instance {
    fn cdrs(&self) -> usize {
        std::fs::read_to_string(self.dir.join("cdr.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    /// Messages it sent again on a timer or for a peer's retransmission (its `/metrics`).
    fn sent_again(&self) -> f64 {
        let page = http_get_on(self.metrics, "/metrics");
        Gateway::metric_value(&page, "trunkgate_retransmissions_total{direction=\"sent\"}")
            .unwrap_or(0.0)
    }
}

/// The world: the front on 127.0.0.1:`front`, two instances, the PBX (SIPp phone) on
/// 127.0.0.2 and carrier-a (SIPp) on 127.0.0.3.
struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    front: SocketAddr,
    _kamailio: Group,
    instances: Vec<Instance>,
    ports: Ports,
}

fn kamailio_installed() -> bool {
    Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn start_instance(dir: &Path, n: usize, front: SocketAddr) -> Instance {
    let port = free_port("127.0.0.1");
    let metrics = free_port("127.0.0.1");
    let idir = dir.join(format!("instance-{n}"));
    std::fs::create_dir_all(&idir).unwrap();
    let rtp = 31000 + 100 * n as u16;
    std::fs::write(
        idir.join("gateway.toml"),
        format!(
            "profiles = \"../profiles\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:{port}\"]\nadvertise = \"127.0.0.1\"\nfront = \"udp:{front}\"\n\n[cdr]\npath = \"cdr.jsonl\"\n\n[shutdown]\ndrain_s = 10\n\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n[media]\nadvertise = \"127.0.0.1\"\nports = \"{rtp}-{}\"\n\n[callback]\nport = 0\n\n[[route]]\nfrom = \"pbx\"\nprefix = \"\"\nto = \"carrier-a\"\n\n[[route]]\nfrom = \"*\"\nto = \"pbx\"\n",
            // 40 pairs: up to 6 calls held across the drain, and new ones beside them.
            rtp + 79
        ),
    )
    .unwrap();
    let log = std::fs::File::create(idir.join("gateway.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["run", "--config"])
        .arg(idir.join("gateway.toml"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start trunkgate");
    Instance {
        proc: Proc(child),
        dir: idir,
        port,
        metrics,
    }
}

/// An OPTIONS to `to` from a fresh socket: its status, if any came within `wait`.
fn options_status(to: SocketAddr, wait: Duration) -> Option<u16> {
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let me = sock.local_addr().unwrap();
    let ping = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKso{}\r\nFrom: <sip:t@{me}>;tag=so\r\nTo: <sip:{to}>\r\nCall-ID: so-{}@x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        me.port(),
        me.port()
    );
    sock.send_to(ping.as_bytes(), to).ok()?;
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.get(8..11)?.parse().ok()
}

fn world() -> World {
    world_with("")
}

/// [`world`], with `carrier_extra` at the end of carrier-a's profile.
fn world_with(carrier_extra: &str) -> World {
    let ports = Ports::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let front = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let pdir = dir.join("profiles");
    std::fs::create_dir(&pdir).unwrap();
    std::fs::write(
        pdir.join("pbx.toml"),
        format!(
            "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:{PHONE_IP}:{}\"\nmatch = [\"{PHONE_IP}/32\"]\n",
            ports.phone
        ),
    )
    .unwrap();
    std::fs::write(
        pdir.join("carrier-a.toml"),
        format!(
            "name = \"carrier-a\"\nrole = \"trunk\"\naddress = \"udp:{CARRIER_A_IP}:{}\"\nmatch = [\"{CARRIER_A_IP}/32\"]\ndomain = \"carrier-a.example\"\n\n[sip]\ninvite_timeout_s = 2\n\n[media]\nanchor = true\n\n[headers]\npass = [\"X-Phone-Trace\"]\n{carrier_extra}",
            ports.carrier_a
        ),
    )
    .unwrap();
    let instances: Vec<Instance> = (1..=2).map(|n| start_instance(&dir, n, front)).collect();
    let list: String = instances
        .iter()
        .map(|i| format!("1 sip:127.0.0.1:{}\n", i.port))
        .collect();
    std::fs::write(dir.join("dispatcher.list"), list).unwrap();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/kamailio/trunkgate-front.cfg"),
    )
    .unwrap();
    // One Kamailio worker: two can forward a call's 180 and 200 in either order, and SIPp
    // fails a call whose 180 arrives after its 200 (a phone ignores it). The dispatching
    // under test does not depend on the worker count.
    assert!(
        template.contains("children=2"),
        "the shipped front config changed"
    );
    // The peers' sources, as run-front.sh writes them: the front relays no one else.
    let sources = Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["front-sources", "-c"])
        .arg(instances[0].dir.join("gateway.toml"))
        .output()
        .expect("trunkgate front-sources");
    assert!(sources.status.success(), "{sources:?}");
    std::fs::write(dir.join("address.list"), &sources.stdout).unwrap();
    let cfg = template
        .replace("children=2", "children=1")
        .replace(
            "@ADDRESS_LIST@",
            &dir.join("address.list").display().to_string(),
        )
        .replace(
            "@CTL_SOCKET@",
            &dir.join("kamailio_ctl").display().to_string(),
        )
        .replace("@LISTEN@", &format!("udp:{front}"))
        .replace(
            "@DISPATCHER_LIST@",
            &dir.join("dispatcher.list").display().to_string(),
        );
    std::fs::write(dir.join("front.cfg"), cfg).unwrap();
    let klog = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let kamailio = Command::new("kamailio")
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
        .arg(dir.join("front.cfg"))
        .process_group(0)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(klog)
        .spawn()
        .expect("start kamailio");
    let w = World {
        _tmp: tmp,
        dir,
        front,
        _kamailio: Group(kamailio),
        instances,
        ports,
    };
    // Ready: both instances answer their probes, and the front answers its own.
    let deadline = Instant::now() + Duration::from_secs(15);
    for target in w
        .instances
        .iter()
        .map(|i| SocketAddr::from(([127, 0, 0, 1], i.port)))
        .chain([front])
    {
        while options_status(target, Duration::from_millis(200)) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{target} not ready:\n{}",
                w.logs()
            );
        }
    }
    // The dispatcher probes each second: let it see both instances up.
    std::thread::sleep(Duration::from_millis(2500));
    w
}

impl World {
    fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default();
        for (n, i) in self.instances.iter().enumerate() {
            s.push_str(&format!("\n--- instance {}:\n{}", n + 1, i.log()));
        }
        s
    }

    /// `calls` calls from the phone through the front to the carrier, `rate` a second;
    /// whether both SIPp scenarios passed.
    fn calls(&self, phone: &str, carrier: &str, calls: usize) -> bool {
        let dir = self.dir.join(format!("sipp-{}", phone.replace('/', "_")));
        std::fs::create_dir_all(&dir).unwrap();
        let m = calls.to_string();
        let c = Sipp::spawn_args(
            carrier,
            CARRIER_A_IP,
            self.ports.carrier_a,
            &dir,
            None,
            None,
            &["-m", &m, "-timeout", "30s", "-timeout_error"],
        );
        std::thread::sleep(Duration::from_millis(200));
        let p = Sipp::spawn_args(
            phone,
            PHONE_IP,
            self.ports.phone,
            &dir,
            Some(self.front),
            Some("+8610123"),
            &["-m", &m, "-r", "4", "-timeout", "30s", "-timeout_error"],
        );
        let ok = p.passed();
        let carrier_log = c.message_log();
        let ok = c.passed() && ok;
        if !ok {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".err.log") || name.ends_with(".msg.log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    eprintln!("--- {name}:\n{}", &text[..text.len().min(6000)]);
                }
            }
        }
        // Topology: nothing the carrier received names the PBX's address.
        let seen = std::fs::read_to_string(carrier_log).unwrap_or_default();
        if let Some(line) = seen.lines().find(|l| l.contains(PHONE_IP)) {
            panic!(
                "the PBX's address reached the carrier: {line}\n{}",
                self.logs()
            );
        }
        ok
    }

    fn cdrs(&self) -> Vec<usize> {
        self.instances.iter().map(Instance::cdrs).collect()
    }

    fn wait_cdrs(&self, total: usize) -> Vec<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.cdrs();
            if c.iter().sum::<usize>() >= total || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn two_instances_behind_kamailio_share_calls_and_a_drained_one_gets_none() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    // Calls spread by Call-ID hash; the caller hangs up.
    assert!(
        w.calls("scale-out/phone.xml", "basic-call/carrier.xml", 8),
        "{}",
        w.logs()
    );
    // The carrier hangs up: its BYE (through the front) reaches the owning instance.
    assert!(
        w.calls(
            "scale-out/phone-callee-bye.xml",
            "callee-bye/carrier.xml",
            4
        ),
        "{}",
        w.logs()
    );
    // Hold and resume: the phone's re-INVITEs within the dialog, along the Record-Route set.
    assert!(
        w.calls("scale-out/phone-hold.xml", "hold/carrier.xml", 2),
        "{}",
        w.logs()
    );
    let before = w.wait_cdrs(14);
    assert_eq!(before.iter().sum::<usize>(), 14, "{before:?}\n{}", w.logs());
    assert!(
        before.iter().all(|n| *n > 0),
        "both instances used: {before:?}"
    );
    // Failures the instances send the phone through the front (the 480s and 487s below)
    // are ACKed by the front itself, hop by hop, in an ACK it builds without the stamp:
    // taken, so no failure is sent again. (Dropped, each would go out again until Timer H:
    // twice within the 1.5 s waited below, 12 times for the 6 failures. A request or two
    // sent again to a SIPp slow to answer on a busy machine stays below half that.)
    let sent_again = |w: &World| w.instances.iter().map(Instance::sent_again).sum::<f64>();
    std::thread::sleep(Duration::from_millis(1500));
    let again_before = sent_again(&w);
    // A trunk's failure after ringing (its 408, which the instance answers 480: no answer)
    // is the call's answer: the front does not try the other instance, which would ring
    // the called party again (one CDR a call, not two). Before, every such failure went to
    // the next instance.
    assert!(
        w.calls(
            "scale-out/phone-480.xml",
            "scale-out/carrier-ring-408.xml",
            4
        ),
        "{}",
        w.logs()
    );
    // The phone gives up while it rings: its CANCEL, which the front builds anew from the
    // INVITE it relayed (Kamailio's tm), reaches the owning instance, the carrier is
    // cancelled and the phone gets 487.
    assert!(
        w.calls("cancel/phone.xml", "cancel/carrier.xml", 2),
        "{}",
        w.logs()
    );
    w.wait_cdrs(20);
    std::thread::sleep(Duration::from_millis(1500));
    let before = w.cdrs();
    assert_eq!(before.iter().sum::<usize>(), 20, "{before:?}\n{}", w.logs());
    let again = sent_again(&w) - again_before;
    assert!(
        again < 6.0,
        "{again} sent again: failures not taken as ACKed by the front\n{}",
        w.logs()
    );

    // Drain an instance with calls up (SIGTERM): it answers OPTIONS, the front's probes
    // too, with 503, so the front sends it no new call, while its calls go on to their
    // BYE. Six 6 s calls, spread by their Call-IDs; the instance drained is one that has
    // some (drain_s is 10 s: they end before it gives up on them).
    let dir = w.dir.join("sipp-drain");
    std::fs::create_dir_all(&dir).unwrap();
    let carrier = Sipp::spawn_args(
        "basic-call/carrier.xml",
        CARRIER_A_IP,
        w.ports.carrier_a,
        &dir,
        None,
        None,
        &["-m", "10", "-timeout", "40s", "-timeout_error"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let long = Sipp::spawn_args(
        "scale-out/phone-long.xml",
        PHONE_IP,
        w.ports.phone,
        &dir,
        Some(w.front),
        Some("+8610123"),
        &["-m", "6", "-r", "20", "-timeout", "30s", "-timeout_error"],
    );
    let active = |i: &Instance| {
        let page = http_get_on(i.metrics, "/metrics");
        Gateway::metric_value(&page, "trunkgate_active_calls").unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let up = loop {
        // The gauge is set every second.
        std::thread::sleep(Duration::from_millis(500));
        let up: Vec<f64> = w.instances.iter().map(active).collect();
        if up.iter().sum::<f64>() >= 6.0 || Instant::now() > deadline {
            break up;
        }
    };
    assert_eq!(up.iter().sum::<f64>(), 6.0, "{up:?}\n{}", w.logs());
    let (d, other) = if up[0] > 0.0 { (0, 1) } else { (1, 0) };
    let pid = w.instances[d].proc.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let drained = SocketAddr::from(([127, 0, 0, 1], w.instances[d].port));
    let deadline = Instant::now() + Duration::from_secs(3);
    while options_status(drained, Duration::from_millis(500)) != Some(503) {
        assert!(
            Instant::now() < deadline,
            "no 503 while draining\n{}",
            w.logs()
        );
    }
    // The front's probe (every second) sees it too before the next calls.
    std::thread::sleep(Duration::from_millis(2000));
    let short = Sipp::spawn_args(
        "scale-out/phone.xml",
        PHONE_IP,
        free_port(PHONE_IP),
        &dir,
        Some(w.front),
        Some("+8610123"),
        &["-m", "4", "-r", "4", "-timeout", "30s", "-timeout_error"],
    );
    assert!(short.passed(), "new calls while one drains\n{}", w.logs());
    assert!(
        long.passed(),
        "calls up on the draining instance\n{}",
        w.logs()
    );
    assert!(carrier.passed(), "{}", w.logs());
    let after = w.wait_cdrs(30);
    // The drained instance wrote its calls' CDRs, and took no new one.
    assert_eq!(
        after[d],
        before[d] + up[d] as usize,
        "the drained instance: {after:?} {up:?}\n{}",
        w.logs()
    );
    assert_eq!(
        after[other],
        before[other] + up[other] as usize + 4,
        "{after:?} {up:?}\n{}",
        w.logs()
    );
    // A peer's keepalive to the front itself: 200 while an instance takes calls; once the
    // other drains too, 503, so a carrier that fails over on its keepalives does. Before,
    // the front answered 200 whatever the instances' state.
    assert_eq!(
        options_status(w.front, Duration::from_secs(2)),
        Some(200),
        "{}",
        w.logs()
    );
    let pid = w.instances[other].proc.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while options_status(w.front, Duration::from_millis(500)) != Some(503) {
        assert!(
            Instant::now() < deadline,
            "the front's keepalive answer with no instance in rotation is not 503\n{}",
            w.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The front is no open relay: a request in a dialog from outside (a To tag, and a Route
/// set the sender wrote) goes only to an instance. Before, `loose_route` sent it wherever
/// its Route set named, from the front's address (the one carriers trust), with the
/// sender's source stamped on it: anyone could send a MESSAGE or an INVITE to a carrier
/// through it.
#[test]
fn the_front_relays_a_peers_request_to_no_host_but_an_instance() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    let victim = UdpSocket::bind("127.0.0.9:0").unwrap();
    victim
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let target = victim.local_addr().unwrap();
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap();
    let front = w.front;
    for route in [
        format!("<sip:{front};lr>,<sip:{target};lr>"),
        format!("<sip:{target};lr>"),
    ] {
        let msg = format!(
            "MESSAGE sip:+19005550100@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKrelay{}\r\nRoute: {route}\r\nFrom: <sip:a@{me}>;tag=r1\r\nTo: <sip:+19005550100@{target}>;tag=r2\r\nCall-ID: relay-{}@x\r\nCSeq: 2 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
            route.len(),
            route.len()
        );
        sock.send_to(msg.as_bytes(), front).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer from the front ({e}):\n{}", w.logs()));
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
        assert!(
            victim.recv_from(&mut buf).is_err(),
            "the front relayed a stranger's request to {target}:\n{}",
            String::from_utf8_lossy(&buf)
        );
    }
}

/// A peer's CANCEL is relayed only from where its INVITE came: the instance takes what the
/// front relays unstamped as the caller's, and anyone who guesses a caller's Via branch (SIPp
/// numbers them) could otherwise cancel its call from elsewhere. The caller's own CANCEL still
/// ends it.
#[test]
fn a_cancel_from_elsewhere_than_its_invite_is_refused_by_the_front() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    // The trunk takes the INVITE and says nothing: the call stays unanswered meanwhile.
    let _trunk = UdpSocket::bind((CARRIER_A_IP, w.ports.carrier_a)).unwrap();
    let phone = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    phone
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let me = phone.local_addr().unwrap();
    let front = w.front;
    let head = |method: &str| {
        format!(
            "{method} sip:+8610123@{front} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-guessable-1\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{me}>;tag=ph1\r\nTo: <sip:+8610123@{front}>\r\nCall-ID: front-cancel@{me}\r\nCSeq: 1 {method}\r\n"
        )
    };
    let invite = format!(
        "{}Contact: <sip:1000@{me}>\r\nContent-Length: 0\r\n\r\n",
        head("INVITE")
    );
    phone.send_to(invite.as_bytes(), front).unwrap();
    assert_eq!(status_for(&phone, "INVITE"), Some(100), "{}", w.logs());
    let cancel = format!("{}Content-Length: 0\r\n\r\n", head("CANCEL"));
    // From the port the phone's Via names, at another peer's address: the 403 goes to the
    // sender's address and the Via's port (RFC 3261 §18.2.2). (A stranger's CANCEL is
    // dropped before this check: `a_strangers_request_draws_nothing_from_the_front`.)
    let elsewhere = UdpSocket::bind((CARRIER_A_IP, me.port())).unwrap();
    elsewhere
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    elsewhere.send_to(cancel.as_bytes(), front).unwrap();
    assert_eq!(status_for(&elsewhere, "CANCEL"), Some(403), "{}", w.logs());
    // The call still rings: no 487 for the phone.
    phone
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert_eq!(status_for(&phone, "INVITE"), None, "{}", w.logs());
    phone
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    phone.send_to(cancel.as_bytes(), front).unwrap();
    assert_eq!(status_for(&phone, "CANCEL"), Some(200), "{}", w.logs());
    assert_eq!(status_for(&phone, "INVITE"), Some(487), "{}", w.logs());
}

/// A request from a source no profile names (`trunkgate front-sources`) is dropped by the
/// front: no 100 Trying, no failure resent for 32 s toward the address it claims, no
/// transaction held. Before, the front relayed a stranger's
/// INVITE statefully (the instances see every request come from the front, so they cannot
/// drop it for it): a 100 at once, a 408 after each instance's 2 s of silence, resent
/// until its ACK. A peer's INVITE from the same port still gets its 100.
#[test]
fn a_strangers_request_draws_nothing_from_the_front() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    let _trunk = UdpSocket::bind((CARRIER_A_IP, w.ports.carrier_a)).unwrap();
    let stranger = UdpSocket::bind("127.0.0.9:0").unwrap();
    let port = stranger.local_addr().unwrap().port();
    let phone = UdpSocket::bind((PHONE_IP, port)).unwrap();
    for s in [&stranger, &phone] {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    let front = w.front;
    let invite = |from: &UdpSocket, id: &str| {
        let me = from.local_addr().unwrap();
        format!(
            "INVITE sip:+8610123@{front} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{id}\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{me}>;tag={id}\r\nTo: <sip:+8610123@{front}>\r\nCall-ID: {id}@{me}\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{me}>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for (method, text) in [
        ("INVITE", invite(&stranger, "stranger-1")),
        // Max-Forwards 0: no 483 either (before, it was answered ahead of the check).
        (
            "INVITE",
            invite(&stranger, "stranger-2").replace("Max-Forwards: 70", "Max-Forwards: 0"),
        ),
        (
            "OPTIONS",
            format!(
                "OPTIONS sip:{front} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-so\r\nMax-Forwards: 70\r\nFrom: <sip:x@127.0.0.9>;tag=so\r\nTo: <sip:{front}>\r\nCall-ID: so@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                stranger.local_addr().unwrap()
            ),
        ),
    ] {
        stranger.send_to(text.as_bytes(), front).unwrap();
        assert_eq!(status_for(&stranger, method), None, "{}", w.logs());
    }
    // The phone, from the same port at its own address: relayed.
    phone
        .send_to(invite(&phone, "phone-1").as_bytes(), front)
        .unwrap();
    assert_eq!(status_for(&phone, "INVITE"), Some(100), "{}", w.logs());
    // A stranger's response whose next Via is the phone's: dropped too. Before, the front
    // sent it on, from its own address, stamped, wherever the Via said.
    let reply = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {front};branch=z9hG4bK-fake\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-x\r\nFrom: <sip:a@127.0.0.9>;tag=a\r\nTo: <sip:b@127.0.0.9>;tag=b\r\nCall-ID: fake@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        phone.local_addr().unwrap()
    );
    stranger.send_to(reply.as_bytes(), front).unwrap();
    assert_eq!(status_for(&phone, "OPTIONS"), None, "{}", w.logs());
    // A peer's keepalive to the front itself: 200 while an instance takes calls.
    let keepalive = format!(
        "OPTIONS sip:{front} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-ka\r\nMax-Forwards: 70\r\nFrom: <sip:x@127.0.0.5>;tag=ka\r\nTo: <sip:{front}>\r\nCall-ID: ka@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        phone.local_addr().unwrap()
    );
    phone.send_to(keepalive.as_bytes(), front).unwrap();
    assert_eq!(status_for(&phone, "OPTIONS"), Some(200), "{}", w.logs());
}

/// The values of header `name` in `text` (full name only), in order.
fn values(text: &str, name: &str) -> Vec<String> {
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    (head.lines())
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The first request with `method` that reaches `sock` within its read timeout.
fn request_at(sock: &UdpSocket, method: &str) -> Option<String> {
    let mut buf = [0u8; 8192];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(&format!("{method} ")) {
            return Some(text);
        }
    }
}

/// An instance's request within a dialog goes through the front to the address the peer is
/// known by (the caller's source, as the front stamped it), not where the Contact the peer
/// wrote points: a Contact names anyone its writer likes, and the front would send there
/// from the address carriers trust. Before, the front followed the Route set and the
/// Request-URI: a caller whose Contact named another host had the carrier's BYE (and any
/// re-INVITE) sent there.
#[test]
fn an_instances_bye_goes_to_the_callers_address_not_where_its_contact_points() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    let front = w.front;
    let trunk = UdpSocket::bind((CARRIER_A_IP, w.ports.carrier_a)).unwrap();
    let victim = UdpSocket::bind("127.0.0.9:0").unwrap();
    let phone = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    for s in [&trunk, &victim, &phone] {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    let me = phone.local_addr().unwrap();
    let elsewhere = victim.local_addr().unwrap();
    let invite = phone_invite(me, front, "contact-1").replace(
        &format!("Contact: <sip:1000@{me}>"),
        &format!("Contact: <sip:1000@{elsewhere}>"),
    );
    phone.send_to(invite.as_bytes(), front).unwrap();
    let inv = request_at(&trunk, "INVITE").unwrap_or_else(|| panic!("{}", w.logs()));
    let one = |name: &str| values(&inv, name).into_iter().next().unwrap_or_default();
    let sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 40010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for v in values(&inv, "Via") {
        ok += &format!("Via: {v}\r\n");
    }
    for rr in values(&inv, "Record-Route") {
        ok += &format!("Record-Route: {rr}\r\n");
    }
    let trunk_at = trunk.local_addr().unwrap();
    ok += &format!(
        "From: {}\r\nTo: {};tag=t1\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:c@{trunk_at}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        one("From"),
        one("To"),
        one("Call-ID"),
        one("CSeq"),
        sdp.len()
    );
    trunk.send_to(ok.as_bytes(), front).unwrap();
    // The phone's 200 (after any provisional), then its ACK along the Record-Route.
    let mut buf = [0u8; 8192];
    let answer = loop {
        let n = (phone.recv(&mut buf)).unwrap_or_else(|e| panic!("no 200 ({e}):\n{}", w.logs()));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            break text;
        }
    };
    let to = values(&answer, "To").remove(0);
    let contact = values(&answer, "Contact").remove(0);
    let uri = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default();
    let routes: String = (values(&answer, "Record-Route").iter().rev())
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    let ack = format!(
        "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKcontact-ack\r\n{routes}From: <sip:1000@{me}>;tag=contact-1\r\nTo: {to}\r\nCall-ID: contact-1@x\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send_to(ack.as_bytes(), front).unwrap();
    // The trunk hangs up, along the INVITE's Record-Route to its Contact (the instance).
    let target = values(&inv, "Contact").remove(0);
    let target = target
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_string();
    let routes: String = (values(&inv, "Record-Route").iter())
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {trunk_at};branch=z9hG4bKcontact-bye\r\n{routes}From: {};tag=t1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        one("To"),
        one("From"),
        one("Call-ID")
    );
    trunk.send_to(bye.as_bytes(), front).unwrap();
    assert_eq!(status_for(&trunk, "BYE"), Some(200), "{}", w.logs());
    assert!(
        request_at(&phone, "BYE").is_some(),
        "the caller got no BYE:\n{}",
        w.logs()
    );
    victim
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        victim.recv(&mut buf).is_err(),
        "the front sent the caller's BYE where its Contact pointed:\n{}",
        String::from_utf8_lossy(&buf)
    );
}

/// A phone behind NAT that does not ask for `rport` (its Via names a port it does not send
/// from) is answered through the front at the address and port its INVITE came from, as an
/// instance alone answers it. Before, the shipped front answered at the Via's port: the
/// phone heard nothing, and its call was torn down unACKed.
#[test]
fn a_phone_that_asks_no_rport_is_answered_at_its_source_port_through_the_front() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    let front = w.front;
    let _trunk = UdpSocket::bind((CARRIER_A_IP, w.ports.carrier_a)).unwrap();
    let phone = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let wrong = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    for s in [&phone, &wrong] {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    let me = phone.local_addr().unwrap();
    let via_port = wrong.local_addr().unwrap();
    let invite = phone_invite(me, front, "norport-1").replacen(
        &format!("Via: SIP/2.0/UDP {me}"),
        &format!("Via: SIP/2.0/UDP {via_port}"),
        1,
    );
    assert!(!invite.contains(";rport"), "{invite}");
    phone.send_to(invite.as_bytes(), front).unwrap();
    let mut buf = [0u8; 8192];
    let n = phone
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no answer at the source port ({e}):\n{}", w.logs()));
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 1"), "{text}");
}

/// A new call from the phone's socket `me` to the front, offering one PCMU stream; `id`
/// names its branch, tag and Call-ID (`{id}@x`).
fn phone_invite(me: SocketAddr, front: SocketAddr, id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:+8610123@{front} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{id}\r\nFrom: <sip:1000@{me}>;tag={id}\r\nTo: <sip:+8610123@{front}>\r\nCall-ID: {id}@x\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// A trunk that says nothing at all (a black hole) behind the front is given up in its
/// `[sip] invite_timeout_s` (2 s here), by the front, which the instance told that time:
/// the caller gets 408 and the CDR says `peer_unreachable` with `peer_timeout`. Before, the
/// front's own 100 stopped the instance's timer, the caller waited the front's 32 s, and
/// the CDR said the trunk had refused the call (`callee_reject`, `failover_408`).
#[test]
fn a_silent_trunk_behind_the_front_is_given_up_in_its_invite_timeout() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world();
    // carrier-a's port takes datagrams and never answers.
    let _hole = UdpSocket::bind((CARRIER_A_IP, w.ports.carrier_a)).unwrap();
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let front = w.front;
    let invite = phone_invite(me, front, "silent-1");
    sock.send_to(invite.as_bytes(), front).unwrap();
    // Read until a final answer, for well under the front's own 32 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            last = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !last.starts_with("SIP/2.0 1") {
                break;
            }
        }
    }
    assert!(last.starts_with("SIP/2.0 408"), "{last}\n{}", w.logs());
    w.wait_cdrs(1);
    let cdr: String = (w.instances.iter())
        .map(|i| std::fs::read_to_string(i.dir.join("cdr.jsonl")).unwrap_or_default())
        .collect();
    assert!(
        cdr.contains("\"call_tag\":\"peer_unreachable\"") && cdr.contains("peer_timeout"),
        "{cdr}"
    );
}

/// A call whose route is full on every instance (carrier-a's `max_calls = 1` each, both
/// taken by calls ringing at a trunk that says nothing): the first instance's refusal
/// (503, Retry-After, marked as the route's) moves it to the other, whose refusal the
/// front answers with a 503 of its own, without the Retry-After that would hold back every
/// call the caller sends, and with the instance's Reason. Before, the instance's refusal
/// had no Retry-After and was never moved; and the front turned any 503 into a 500.
#[test]
fn a_call_whose_route_is_full_everywhere_gets_the_fronts_503_without_retry_after() {
    assert!(
        kamailio_installed(),
        "kamailio is not installed: apt-get install -y kamailio (the README's test command does it)"
    );
    let w = world_with("\n[limits]\nmax_calls = 1\n");
    let _hole = UdpSocket::bind((CARRIER_A_IP, w.ports.carrier_a)).unwrap();
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let front = w.front;
    for n in 1..=3 {
        let invite = phone_invite(me, front, &format!("full-{n}"));
        sock.send_to(invite.as_bytes(), front).unwrap();
        // (Within carrier-a's 2 s invite_timeout_s: the first two still ring.)
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refusal = None;
    while Instant::now() < deadline && refusal.is_none() {
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 5") {
                refusal = Some(text);
            }
        }
    }
    let refusal = refusal.unwrap_or_else(|| panic!("no refusal:\n{}", w.logs()));
    assert!(refusal.starts_with("SIP/2.0 503"), "{refusal}");
    assert!(refusal.contains("Call-ID: full-3@x"), "{refusal}");
    assert!(
        !refusal.to_ascii_lowercase().contains("retry-after"),
        "{refusal}"
    );
    assert!(!refusal.contains("X-Trunkgate"), "{refusal}");
    assert!(refusal.contains("Reason: Q.850;cause="), "{refusal}");
}
