//! Which SDP addresses the relay may send to before a leg's own packets show where it is.

use crate::config::Config;

/// Whether the relay may send a leg's RTP to `ip` before the leg's own packets show where
/// it is (audit M2). `0.0.0.0` (old-style hold) would reach this host, multicast and
/// broadcast reach many, and the gateway's own addresses would loop (its media address)
/// or reach its own services (the SIP and call-back listeners' addresses); loopback is a
/// target only for a gateway that is itself on loopback (a lab). The host's other
/// interfaces' addresses are refused too: a listener on `0.0.0.0` (ours, or any other
/// service's) hears them all. A refused address is not sent to first: the leg is answered
/// where its packets come from, once they come.
pub(super) fn deliverable(ip: std::net::IpAddr, cfg: &Config) -> bool {
    // `::ffff:127.0.0.1` is 127.0.0.1 to a dual-stack socket: judged as what it reaches.
    let ip = ip.to_canonical();
    let media_ip = cfg.media_ip.to_canonical();
    let listeners = cfg.listen.iter().map(|l| l.addr).chain(cfg.callback.listen);
    let ours = |a: std::net::SocketAddr| a.ip().to_canonical() == ip;
    crate::config::net::names_one_host(ip)
        && ip != media_ip
        && (!ip.is_loopback() || media_ip.is_loopback())
        && !listeners.clone().any(ours)
        && !cfg.host_ips.contains(&ip)
}

/// Whether `ip` is within a peer's `[media] networks` (`None`: anywhere). Outside them the
/// relay neither sends to it first (the leg waits for its source, `emit_relay`) nor takes
/// a packet from it (`media::relay`).
pub(super) fn within(networks: Option<&[ipnet::IpNet]>, ip: std::net::IpAddr) -> bool {
    networks.is_none_or(|n| crate::config::net::holds(n, ip))
}
