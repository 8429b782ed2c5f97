//! UDP transport: one reader task per socket; sends happen on the core task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::sip::Target;

/// Socket buffers for SIP over UDP. The default (about 200 KiB) overflows in the bursts a
/// busy trunk sends (a timer sweep, a reconnecting PBX); the kernel caps this at
/// net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Datagrams a full socket buffer made wait, at most: past it one is dropped (SIP over UDP
/// retransmits), so a peer that cannot keep up, or a flood of answers, cannot grow tasks.
const MAX_DEFERRED: usize = 4096;
/// Bytes those datagrams hold at most: 4,096 of the longest (64 KiB) would be 256 MiB.
const MAX_DEFERRED_BYTES: usize = 16 * 1024 * 1024;

/// How long `[sip] advertise` is not asked for after the kernel refused to send from it.
const ADVERTISE_RETRY_MS: u64 = 10_000;

/// The UDP listeners, for sending, in `[sip] listen` order ([`ListenerId`] is the index):
/// each with its bound address, so that a datagram leaves from one of its address family
/// without a syscall to ask.
pub(super) struct Out {
    /// Each with whether it also serves IPv4 (a dual-stack `[::]` listener).
    socks: Vec<(Arc<UdpSocket>, SocketAddr, bool)>,
    /// What a request we start leaves from on a wildcard listener: `[sip] advertise`, when
    /// that is an IP address ([`local`]).
    advertise: Option<std::net::IpAddr>,
    /// Until when (ms after `born`) `advertise` is not asked for: the kernel refused it (a
    /// floating address on the other host), and each refusal costs a system call.
    advertise_off_until: std::sync::atomic::AtomicU64,
    born: Instant,
    /// Sends waiting for room in a socket buffer (each a task).
    deferred: Arc<Slots>,
    /// Where failed sends are counted for the shell's periodic summary.
    tally: Arc<super::inbox::Tally>,
}

/// A bounded number of things under way, and of the bytes they hold; each holds a [`Slot`]
/// until it is done.
#[derive(Debug)]
struct Slots {
    used: AtomicUsize,
    max: usize,
    bytes: super::byte_budget::SharedBudget,
}

impl Slots {
    fn new(max: usize, max_bytes: usize) -> Arc<Slots> {
        Arc::new(Slots {
            used: AtomicUsize::new(0),
            max,
            bytes: super::byte_budget::SharedBudget::new(max_bytes),
        })
    }

    /// A slot for `len` bytes, or None when all are taken or the bytes would go over.
    fn take(self: &Arc<Self>, len: usize) -> Option<Slot> {
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        if !self.bytes.take(len) {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(self.clone(), len))
    }
}

/// Given back when dropped (also when its task is cancelled).
struct Slot(Arc<Slots>, usize);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.bytes.give(self.1);
        self.0.used.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Out {
    pub(super) fn new(socks: Vec<(Arc<UdpSocket>, SocketAddr)>) -> Out {
        let socks = socks
            .into_iter()
            .map(|(s, local)| {
                let dual = super::bind::is_v6_wildcard(local)
                    && socket2::SockRef::from(&*s).only_v6().is_ok_and(|v6| !v6);
                (s, local, dual)
            })
            .collect();
        Out {
            socks,
            advertise: None,
            advertise_off_until: std::sync::atomic::AtomicU64::new(0),
            born: Instant::now(),
            deferred: Slots::new(MAX_DEFERRED, MAX_DEFERRED_BYTES),
            tally: Arc::default(),
        }
    }

    /// Failed sends counted in `tally`, the edge's (the shell sums it up every 10 s).
    pub(super) fn counting(mut self, tally: Arc<super::inbox::Tally>) -> Out {
        self.tally = tally;
        self
    }

    /// Requests we start on a wildcard listener leave from `advertise` (when this host has
    /// it: else from what the kernel picks, as without).
    pub(super) fn advertising(mut self, advertise: Option<std::net::IpAddr>) -> Out {
        self.advertise = advertise.map(|ip| ip.to_canonical());
        self
    }

    /// Send toward `target.addr`: by the listener it names (a reply leaves where its request
    /// came in, a dual-stack `[::]` one for an IPv4 peer too), else by the first listener of
    /// the address family, else the first that serves it. On a wildcard listener, from the
    /// address the peer's datagram came to, else from `advertise` ([`local`]).
    pub(super) fn send(&self, target: Target, bytes: Bytes) {
        let to = target.addr;
        let same_family = |local: &SocketAddr| local.is_ipv4() == to.is_ipv4();
        let serves = |(_, local, dual): &&(Arc<UdpSocket>, SocketAddr, bool)| {
            same_family(local) || (*dual && to.is_ipv4())
        };
        let (index, came_to) = target.listener.map_or((None, None), |id| {
            let (i, ip) = local::split(id);
            (Some(i), ip)
        });
        let named = index.and_then(|i| self.socks.get(i)).filter(serves);
        let Some((sock, bound)) = named
            .or_else(|| self.socks.iter().find(|(_, local, _)| same_family(local)))
            .or_else(|| self.socks.iter().find(serves))
            .or(self.socks.first())
            .map(|(s, local, _)| (s, local))
        else {
            warn!(%to, "no UDP listener to send from");
            return;
        };
        // Only a wildcard listener picks a source, and only a request we start reads the
        // clock (whether `advertise` is asked for again): a bound listener's send is as it was.
        let now_ms = || self.born.elapsed().as_millis() as u64;
        let from = if bound.ip().is_unspecified() {
            came_to.or_else(|| {
                (self.advertise)
                    .filter(|_| now_ms() >= self.advertise_off_until.load(Ordering::Relaxed))
            })
        } else {
            None
        };
        let from = from.filter(|ip| ip.is_ipv4() == to.ip().to_canonical().is_ipv4());
        let (sent, refused) = local::try_send(sock, &bytes, to, from);
        if refused && came_to.is_none() {
            // Asked again in a while: a floating address may come to this host.
            (self.advertise_off_until).store(now_ms() + ADVERTISE_RETRY_MS, Ordering::Relaxed);
        }
        match sent {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let Some(slot) = self.deferred.take(bytes.len()) else {
                    crate::ops::metrics::udp_send_dropped().increment(1);
                    return;
                };
                let sock = sock.clone();
                let tally = self.tally.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = local::send(&sock, &bytes, to, from).await {
                        debug!(%to, error = %e, "UDP send failed");
                        tally.count_send_failed();
                    }
                });
            }
            // ICMP errors from earlier sends surface here; UDP has no delivery to report.
            // Counted and summed up in the log every 10 s, never a line per datagram.
            Err(e) => {
                debug!(%to, error = %e, "UDP send failed");
                self.tally.count_send_failed();
            }
        }
    }
}

/// Bind a non-blocking UDP socket with large buffers.
pub(super) fn bind(
    addr: std::net::SocketAddr,
    stack: super::bind::Stack,
) -> std::io::Result<UdpSocket> {
    use socket2::{Protocol, Type};
    let sock = super::bind::socket(addr, Type::DGRAM, Protocol::UDP, stack)?;
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER) {
        warn!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER) {
        warn!(error = %e, "cannot enlarge the UDP send buffer");
    }
    // The kernel stamps each datagram as it arrives: the queue delay overload control
    // watches then includes the time spent in the socket buffer, where a saturated process
    // keeps most of its backlog.
    if let Err(e) =
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        warn!(error = %e, "no receive timestamps: overload control sees only the internal queue");
    }
    // Each datagram's destination, on IPv6: a real IPv4 packet on a dual-stack socket came
    // to a mapped address, an IPv6 one posing as IPv4 did not (`bind::mapped_impostor`).
    if addr.is_ipv6()
        && let Err(e) = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::Ipv6RecvPacketInfo,
            &true,
        )
    {
        warn!(error = %e, "no IPv6 packet info: IPv6 packets posing as IPv4 are told apart only on a native IPv6 address");
    }
    // Each datagram's destination on an IPv4 wildcard, to answer from it (`local`).
    if addr.is_ipv4()
        && addr.ip().is_unspecified()
        && let Err(e) =
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
    {
        warn!(error = %e, "no IPv4 packet info: answers on 0.0.0.0 leave from the address the kernel picks");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

mod local;
mod reader;
#[cfg(test)]
use reader::{Early, shed_early};
pub(super) use reader::{reader, recv_stamped};
#[cfg(test)]
mod tests;
