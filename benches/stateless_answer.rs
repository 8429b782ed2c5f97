//! What a stateless answer's To tag costs (RFC 3261 §8.2.7: the same tag for a
//! retransmission of the same request, so it is a hash, seeded per process, of the header
//! lines that name the request: `IdGen::stateless_tag`), beside the random tag it replaced (24 random hex digits, what
//! `IdGen::hex_token(24)` still makes: the same-run baseline), and beside the whole of what
//! the call core does to answer one OPTIONS ping from a peer on the shipped configuration
//! (parsed beforehand, as the edge hands it over). Median of 5 rounds; the spread is the
//! fastest and slowest round.
//!
//! `cargo bench --bench stateless_answer`

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use trunkgate::call::{B2bua, Input, Output};
use trunkgate::config::Config;
use trunkgate::sip::{IdGen, Message, Target, parse_datagram};

const ROUNDS: usize = 5;
const TAGS: usize = 200_000;
const PINGS: usize = 20_000;

fn options(i: usize) -> Message {
    let text = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKb{i}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.2>;tag=f{i}\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: ping-{i}@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(Bytes::from(text), 65535).expect("a well-formed OPTIONS")
}

/// Nanoseconds per item over `n` items: median, fastest, slowest round.
fn rounds(n: usize, mut round: impl FnMut()) -> (f64, f64, f64) {
    let mut r: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            round();
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    r.sort_by(f64::total_cmp);
    (r[ROUNDS / 2], r[0], r[ROUNDS - 1])
}

fn main() {
    let cfg = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml"))
        .expect("the shipped configuration");
    let cfg = Arc::new(cfg);
    let requests: Vec<Message> = (0..PINGS).map(options).collect();
    let reqs: Vec<_> = requests
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.clone()),
            Message::Response(_) => None,
        })
        .collect();
    let mut ids = IdGen::new(7);
    let random = rounds(TAGS, || {
        for _ in 0..TAGS {
            black_box(ids.hex_token(24));
        }
    });
    let hashed = rounds(TAGS, || {
        for i in 0..TAGS {
            black_box(ids.stateless_tag(black_box(&reqs[i % reqs.len()])));
        }
    });
    let source = Target::udp(SocketAddr::from(([127, 0, 0, 2], 5060)));
    let mut answered = 0usize;
    let ping = rounds(PINGS, || {
        let now = Instant::now();
        let mut core = B2bua::new(
            cfg.clone(),
            trunkgate::txn::TimerConfig::default(),
            IdGen::new(7),
            now,
            SystemTime::UNIX_EPOCH,
        );
        for msg in &requests {
            core.handle_input(
                now,
                Input::Message {
                    msg: msg.clone(),
                    source,
                },
            );
            while let Some(o) = core.poll_output() {
                if matches!(o, Output::Transmit { .. }) {
                    answered += 1;
                }
            }
        }
        assert_eq!(
            core.stats().server_txns,
            0,
            "answered without a transaction"
        );
    });
    assert_eq!(answered, PINGS * ROUNDS, "every ping answered once");
    println!("| what | ns each (median, spread) |");
    println!("|---|---|");
    println!(
        "| random tag (before) | {:.0} ({:.0}–{:.0}) |",
        random.0, random.1, random.2
    );
    println!(
        "| hashed tag (now) | {:.0} ({:.0}–{:.0}) |",
        hashed.0, hashed.1, hashed.2
    );
    println!(
        "| one OPTIONS answered by the core (now) | {:.0} ({:.0}–{:.0}) |",
        ping.0, ping.1, ping.2
    );
    println!(
        "\nhashed − random: {:.0} ns, {:.1} % of an answered OPTIONS",
        hashed.0 - random.0,
        100.0 * (hashed.0 - random.0) / ping.0
    );
}
