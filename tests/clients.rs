//! Real SIP clients through the gateway, as users run them: Debian's `baresip` and
//! `linphonec` (belle-sip) as the PBX's phone, SIPp as the carrier. Each client calls out
//! and hangs up, and takes a call the carrier places and the carrier hangs up; media is
//! anchored, and the client's audio comes back to it (SIPp echoes RTP), so RTP must cross
//! the relay both ways. Clients' configurations live in `tests/clients/`; every run is
//! bounded. The results table in the README comes from these tests (`compat` lines in the
//! test output, with `--nocapture`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// What a client program is, and how to start it for one call.
trait Client {
    fn name(&self) -> &'static str;
    /// The program's version line, for the compatibility table.
    fn version(&self) -> String;
    /// Start the client on 127.0.0.2:`port`, calling `dial` if given (else waiting to answer),
    /// for at most `secs` seconds; it hangs up what it dialled after `talk`.
    fn start(&self, port: u16, dir: &Path, dial: Option<&str>, talk: Duration) -> Child;
    /// Whether a call it places is put on hold and resumed on the way.
    fn holds(&self) -> bool {
        false
    }
    /// Whether the calls it places go over TCP (checked on the wire).
    fn over_tcp(&self) -> bool {
        false
    }
}

/// Whether a TCP connection to `to` (a loopback address) is established within `limit`.
fn tcp_connection_to(to: std::net::SocketAddrV4, limit: Duration) -> bool {
    tcp_socket_in_state(to, TCP_ESTABLISHED, limit)
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(rel)
}

/// An 8 kHz mono 16-bit WAV of a 440 Hz tone, `secs` long: what the clients play.
fn tone_wav(path: &Path, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 * secs {
        let t = i as f32 / 8000.0;
        let s = (t * 440.0 * std::f32::consts::TAU).sin() * 8000.0;
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// baresip; with `tcp`, its requests (the calls it places, their ACK and BYE) go over TCP,
/// and the gateway reaches it over TCP (the PBX profile's `address`) for the call it answers.
struct Baresip {
    tcp: bool,
}

impl Client for Baresip {
    fn name(&self) -> &'static str {
        if self.tcp {
            "baresip (over TCP both ways)"
        } else {
            "baresip"
        }
    }

    fn over_tcp(&self) -> bool {
        self.tcp
    }

    fn version(&self) -> String {
        first_line(Command::new("baresip").arg("-h"), "baresip v")
            .split(" Copyright")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    fn start(&self, port: u16, dir: &Path, dial: Option<&str>, talk: Duration) -> Child {
        tone_wav(&dir.join("tone.wav"), 20);
        let config = std::fs::read_to_string(data("baresip/config"))
            .unwrap()
            .replace("@PORT@", &port.to_string())
            .replace("@DIR@", &dir.display().to_string())
            .replace("@TRANSPORT@", if self.tcp { "tcp" } else { "udp" });
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::copy(data("baresip/accounts"), dir.join("accounts")).unwrap();
        let mut cmd = Command::new("baresip");
        // `-n`: the SDP names the phone's loopback address, never the machine's own.
        cmd.args(["-f", &dir.display().to_string(), "-n", PHONE_IP]);
        // Quit (hanging up) after the talk time; a called client quits later than the
        // carrier hangs up.
        let quit = talk.as_secs() + if dial.is_some() { 1 } else { 6 };
        if let Some(uri) = dial {
            let uri = if self.tcp {
                format!("{uri};transport=tcp")
            } else {
                uri.to_string()
            };
            cmd.args(["-e", &format!("/dial {uri}")]);
        }
        cmd.args(["-t", &quit.to_string()]);
        spawn_logged(cmd, dir, "baresip")
    }
}

struct Linphone;

impl Client for Linphone {
    fn name(&self) -> &'static str {
        "linphonec"
    }

    fn version(&self) -> String {
        first_line(Command::new("linphonec").arg("-v"), "version")
    }

    fn holds(&self) -> bool {
        true
    }

    fn start(&self, port: u16, dir: &Path, dial: Option<&str>, talk: Duration) -> Child {
        let config = std::fs::read_to_string(data("linphone/linphonerc"))
            .unwrap()
            .replace("@PORT@", &port.to_string());
        std::fs::write(dir.join("linphonerc"), config).unwrap();
        // Its call history database lives under $HOME; without the folder the core never
        // starts its transports.
        std::fs::create_dir_all(dir.join(".local/share/linphone")).unwrap();
        let mut cmd = Command::new("linphonec");
        cmd.env("HOME", dir)
            .args(["-c", &dir.join("linphonerc").display().to_string()])
            .args([
                "-d",
                "4",
                "-l",
                &dir.join("linphone-core.log").display().to_string(),
            ]);
        if dial.is_none() {
            cmd.arg("-a");
        }
        // Commands on its console, timed; then it quits.
        // No sound card here: it plays a tone from a WAV file instead. A call it places is
        // put on hold and resumed (re-INVITEs), then hung up.
        tone_wav(&dir.join("tone.wav"), 20);
        let mut script: Vec<(Duration, String)> = vec![
            (Duration::from_millis(1500), "soundcard use files".into()),
            (
                Duration::ZERO,
                format!("play {}", dir.join("tone.wav").display()),
            ),
        ];
        match dial {
            Some(uri) => script.extend([
                (Duration::ZERO, format!("call {uri}")),
                (talk / 2 + Duration::from_millis(1500), "pause".into()),
                (Duration::from_secs(1), "resume".into()),
                (talk / 2 + Duration::from_millis(500), "terminate".into()),
                (Duration::from_secs(1), "quit".into()),
            ]),
            None => script.push((talk + Duration::from_secs(5), "quit".into())),
        }
        let log = std::fs::File::create(dir.join("linphonec.log")).unwrap();
        let mut child = cmd
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start linphonec: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            for (wait, line) in script {
                std::thread::sleep(wait);
                if writeln!(stdin, "{line}").is_err() {
                    return;
                }
            }
        });
        child
    }
}

/// Sofia-SIP's NUA (GNOME Calls' stack) in `tests/clients/sofia/nua-phone.c`, built here
/// against Debian's `libsofia-sip-ua-dev`. Sofia has no media engine: the little phone sends
/// its own RTP and counts what returns.
struct Sofia {
    bin: PathBuf,
}

impl Sofia {
    fn build() -> Sofia {
        let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nua-phone");
        let flags = Command::new("pkg-config")
            .args(["--cflags", "--libs", "sofia-sip-ua"])
            .output()
            .expect("pkg-config");
        assert!(
            flags.status.success(),
            "libsofia-sip-ua-dev is not installed: `scripts/dev test` installs it"
        );
        let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
        let out = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&bin)
            .arg(data("sofia/nua-phone.c"))
            .args(flags.split_whitespace())
            .output()
            .expect("cc");
        assert!(
            out.status.success(),
            "nua-phone does not build:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sofia { bin }
    }
}

impl Client for Sofia {
    fn name(&self) -> &'static str {
        "Sofia-SIP nua (tests/clients/sofia)"
    }

    fn version(&self) -> String {
        let v = Command::new("pkg-config")
            .args(["--modversion", "sofia-sip-ua"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        format!("sofia-sip-ua {v}")
    }

    fn start(&self, port: u16, dir: &Path, dial: Option<&str>, talk: Duration) -> Child {
        let mut cmd = Command::new(&self.bin);
        // Sofia's own message trace, in the log shown when a run fails.
        cmd.env("TPORT_LOG", "1").env("NUA_DEBUG", "3");
        let rtp = free_port(PHONE_IP);
        cmd.args(["--bind", &format!("{PHONE_IP}:{port}")])
            .args(["--rtp", &rtp.to_string()])
            .args(["--talk", &talk.as_secs().to_string()]);
        match dial {
            Some(uri) => cmd.args(["--dial", uri, "--seconds", "12"]),
            None => cmd.args(["--seconds", &(talk.as_secs() + 8).to_string()]),
        };
        spawn_logged(cmd, dir, "nua-phone")
    }
}

fn first_line(cmd: &mut Command, prefix: &str) -> String {
    let out = cmd.output().map(|o| {
        let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&o.stderr));
        s
    });
    out.ok()
        .and_then(|s| s.lines().find(|l| l.contains(prefix)).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn spawn_logged(mut cmd: Command, dir: &Path, name: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// Wait for `child` to end, at most `limit`; kill it after that. True when it ended itself.
fn wait_bounded(child: &mut Child, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn rtp_packets(gw: &Gateway, toward: &str) -> f64 {
    let page = gw.metrics();
    Gateway::metric_value(
        &page,
        &format!("trunkgate_rtp_packets_total{{toward=\"{toward}\"}}"),
    )
    .unwrap_or(0.0)
}

/// One client, both directions, through one anchored gateway. Panics with the logs of
/// everyone involved when something fails; prints a `compat` line when all passed.
fn client_calls_both_ways(client: &dyn Client) {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            // A TCP connection to the gateway on loopback leaves from 127.0.0.1, whatever
            // address the client bound: the PBX's profile matches it too.
            pbx_also_matches: if client.over_tcp() {
                "127.0.0.1/32"
            } else {
                ""
            },
            // And the gateway calls it over TCP: a connection it opens to the client.
            pbx_transport: if client.over_tcp() { "tcp" } else { "udp" },
            ..GwOpts::pbx("[media]\nanchor = true\n")
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let talk = Duration::from_secs(3);
    let logs = |what: &str, dir: &Path| {
        let mut out = format!("{what}\n--- gateway log:\n{}", gw.log());
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.push_str(&format!("\n--- {}:\n{text}", p.display()));
            }
        }
        out
    };

    // 1. The client calls a carrier number and hangs up after the talk time.
    let out_dir = tmp.path().join("outbound");
    std::fs::create_dir_all(&out_dir).unwrap();
    let carrier = Sipp::uas_with(
        "clients/carrier-answers.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        &out_dir,
        &["-rtp_echo"],
    );
    let dial = format!("sip:+8610123@{}", gw.addr());
    let mut c = client.start(gw.ports.phone, &out_dir, Some(&dial), talk);
    if client.over_tcp() {
        assert!(
            tcp_connection_to(
                std::net::SocketAddrV4::new([127, 0, 0, 1].into(), gw.addr().port()),
                Duration::from_secs(5)
            ),
            "{}",
            logs("the client's call came over no TCP connection", &out_dir)
        );
    }
    let ended = wait_bounded(&mut c, talk + Duration::from_secs(15));
    let carrier_saw = carrier.message_log();
    assert!(
        carrier.passed(),
        "{}",
        logs(
            &format!("{}: outbound call, carrier failed", client.name()),
            &out_dir
        )
    );
    assert!(ended, "{}", logs("client did not quit", &out_dir));
    let cdr = gw.wait_cdrs(1)[0].clone();
    assert_eq!(cdr["call_tag"], "caller_bye", "{cdr}");
    let mut held = "";
    if client.holds() {
        // Hold and resume reached the carrier as re-INVITEs: sendonly, then sendrecv.
        let seen = std::fs::read_to_string(&carrier_saw).unwrap_or_default();
        let invites = seen.matches("INVITE sip:").count();
        assert!(
            invites >= 3 && seen.contains("a=sendonly"),
            "{}",
            logs(&format!("hold: {invites} INVITEs at the carrier"), &out_dir)
        );
        held = "; holds and resumes";
    }
    let (to_callee, to_caller) = (rtp_packets(&gw, "callee"), rtp_packets(&gw, "caller"));
    assert!(
        to_callee >= 50.0 && to_caller >= 50.0,
        "{}",
        logs(
            &format!("RTP through the relay: {to_callee} toward the carrier, {to_caller} back"),
            &out_dir
        )
    );

    // 2. The carrier calls the client, which answers by itself; the carrier hangs up.
    let in_dir = tmp.path().join("inbound");
    std::fs::create_dir_all(&in_dir).unwrap();
    let mut c = client.start(gw.ports.phone, &in_dir, None, talk);
    if client.over_tcp() {
        // The gateway connects to it once the carrier's INVITE comes (no retransmission
        // over TCP): it must listen by then, however slowly it started.
        let listen = std::net::SocketAddrV4::new([127, 0, 0, 2].into(), gw.ports.phone);
        assert!(
            tcp_socket_in_state(listen, TCP_LISTEN, Duration::from_secs(10)),
            "{}",
            logs("the client never listened on TCP", &in_dir)
        );
    } else {
        std::thread::sleep(Duration::from_millis(1500));
    }
    let carrier = Sipp::spawn_args(
        "clients/carrier-calls.xml",
        CARRIER_A_IP,
        free_port(CARRIER_A_IP),
        &in_dir,
        Some(gw.addr()),
        Some("1000"),
        &["-m", "1", "-timeout", "20s", "-timeout_error", "-rtp_echo"],
    );
    if client.over_tcp() {
        let phone = std::net::SocketAddrV4::new([127, 0, 0, 2].into(), gw.ports.phone);
        assert!(
            tcp_connection_to(phone, Duration::from_secs(8)),
            "{}",
            logs(
                "the gateway reached the client over no TCP connection",
                &in_dir
            )
        );
    }
    let passed = carrier.passed();
    wait_bounded(&mut c, Duration::from_secs(12));
    assert!(
        passed,
        "{}",
        logs(
            &format!("{}: inbound call, carrier failed", client.name()),
            &in_dir
        )
    );
    let cdrs = gw.wait_cdrs(2);
    assert_eq!(cdrs[1]["call_tag"], "caller_bye", "{}", cdrs[1]);
    let (to_callee2, to_caller2) = (rtp_packets(&gw, "callee"), rtp_packets(&gw, "caller"));
    assert!(
        to_callee2 - to_callee >= 50.0 && to_caller2 - to_caller >= 50.0,
        "{}",
        logs(
            &format!(
                "inbound RTP: {} toward the client, {} toward the carrier",
                to_callee2 - to_callee,
                to_caller2 - to_caller
            ),
            &in_dir
        )
    );
    println!(
        "compat | {} | {} | calls out and hangs up{held}; answers a call the carrier hangs up; anchored RTP both ways (relay packets out {}/{}, in {}/{}) | pass",
        client.name(),
        client.version(),
        to_callee,
        to_caller,
        to_callee2 - to_callee,
        to_caller2 - to_caller
    );
}

/// baresip, its calls over TCP or not; it must be installed.
fn baresip(tcp: bool) -> Baresip {
    assert!(
        installed("baresip"),
        "baresip is not installed: `scripts/dev test` installs it (apt-get install baresip-core)"
    );
    Baresip { tcp }
}

#[test]
fn baresip_calls_and_answers_through_the_gateway() {
    client_calls_both_ways(&baresip(false));
}

/// The calls baresip places go over TCP (its INVITE, ACK and BYE, and our answers, on its
/// connection, which the test sees established in the kernel's table): a real client's
/// TCP path, with our 2xx's retransmission timer armed over TCP too until the ACK (RFC 3261
/// §13.3.1.4). On loopback its connection leaves from 127.0.0.1, which the PBX's profile
/// then matches. The call it answers comes over a TCP connection the gateway opens to it (the
/// PBX's profile `address` is `tcp:`), also seen in the kernel's table.
#[test]
fn baresip_over_tcp_calls_and_answers_through_the_gateway() {
    client_calls_both_ways(&baresip(true));
}

#[test]
fn linphonec_calls_and_answers_through_the_gateway() {
    assert!(
        installed("linphonec"),
        "linphonec is not installed: `scripts/dev test` installs it (apt-get install linphone-cli)"
    );
    client_calls_both_ways(&Linphone);
}

#[test]
fn sofia_sip_calls_and_answers_through_the_gateway() {
    client_calls_both_ways(&Sofia::build());
}
