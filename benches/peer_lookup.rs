//! What the edge pays to ask whether a datagram's source is a peer's, with many profiles.
//!
//! The edge asks `Config::is_peer_source` and `Config::is_peer_address` of every datagram
//! (a stranger's flood included). For 10, 1,000 and 5,000 profiles, each matching a /32 and
//! a /24 of its own, it times those two questions for a stranger's address and for a
//! peer's, through the index (`src/config/peer_index.rs`) and through the scan of every
//! profile it replaced (written out here, the same-run baseline). Median of 5 rounds of
//! 200,000 lookups each; the spread is the slowest and fastest round.
//!
//! `cargo bench --bench peer_lookup`

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use trunkgate::config::Config;

const LOOKUPS: u32 = 200_000;
const ROUNDS: usize = 5;

fn config(profiles: u32) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    std::fs::create_dir(root.join("profiles")).expect("the profiles folder");
    let gateway = "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                   advertise = \"127.0.0.1\"\n[[route]]\nto = \"p0\"\n";
    std::fs::write(root.join("gateway.toml"), gateway).expect("gateway.toml");
    for i in 0..profiles {
        let (hi, lo) = (i / 256, i % 256);
        let text = format!(
            "name = \"p{i}\"\nrole = \"trunk\"\naddress = \"udp:10.{hi}.{lo}.1:5060\"\n\
             match = [\"10.{hi}.{lo}.1/32\", \"172.{}.{lo}.0/24\"]\n",
            16 + hi
        );
        std::fs::write(root.join("profiles").join(format!("p{i}.toml")), text).expect("profile");
    }
    let cfg = Config::load(&root.join("gateway.toml")).expect("the generated configuration");
    (dir, cfg)
}

/// The scan the index replaced: every profile's `match`, then every `address`.
fn scanned(cfg: &Config, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    cfg.profiles
        .values()
        .any(|p| p.matches.iter().any(|n| n.contains(&ip)))
        || cfg
            .profiles
            .values()
            .any(|p| p.address.addr.ip().to_canonical() == ip)
}

fn indexed(cfg: &Config, ip: IpAddr) -> bool {
    cfg.is_peer_source(ip) || cfg.is_peer_address(ip)
}

/// Nanoseconds per lookup: median, min, max of the rounds.
fn time(ask: impl Fn(IpAddr) -> bool, ips: &[IpAddr]) -> (f64, f64, f64) {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for i in 0..LOOKUPS {
                black_box(ask(black_box(ips[i as usize % ips.len()])));
            }
            start.elapsed().as_nanos() as f64 / f64::from(LOOKUPS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    (rounds[ROUNDS / 2], rounds[0], rounds[ROUNDS - 1])
}

fn main() {
    println!("| profiles | source | scan: ns per lookup (median, spread) | index | scan / index |");
    println!("|---|---|---|---|---|");
    for n in [10, 1_000, 5_000] {
        let (_dir, cfg) = config(n);
        let strangers: Vec<IpAddr> = (0..64u8).map(|i| IpAddr::from([203, 0, 113, i])).collect();
        let peers: Vec<IpAddr> = (0..64u32)
            .map(|i| {
                let i = i * (n / 64).max(1) % n;
                IpAddr::from([172, (16 + i / 256) as u8, (i % 256) as u8, 9])
            })
            .collect();
        for (who, ips) in [("stranger", &strangers), ("peer", &peers)] {
            for ip in ips.iter() {
                assert_eq!(scanned(&cfg, *ip), indexed(&cfg, *ip), "{ip}");
            }
            let s = time(|ip| scanned(&cfg, ip), ips);
            let x = time(|ip| indexed(&cfg, ip), ips);
            println!(
                "| {n} | {who} | {:.0} ({:.0}–{:.0}) | {:.1} ({:.1}–{:.1}) | {:.0} |",
                s.0,
                s.1,
                s.2,
                x.0,
                x.1,
                x.2,
                s.0 / x.0
            );
        }
    }
}
