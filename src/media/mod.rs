//! Media anchoring, sans-IO: the port pool, the relay plan the call layer hands the shell,
//! the per-packet routing policy (`relay`: latching and destinations), which relay thread
//! carries a call (`placement`), the recorder's jitter buffer and the repacketiser.
//! `engine/media.rs` binds the sockets and moves the packets; `engine/wav.rs` writes the
//! files.

mod latch;
pub mod placement;
mod pool;
pub mod record;
pub mod relay;
pub mod repacketize;
pub mod rtcp_translate;
pub mod rtp_check;
pub mod sdes;

pub use latch::{MOVE_AFTER_SILENCE, RtpHead, SourceLatch};
pub use pool::PortPool;
pub use rtp_check::{
    MAX_PACKET, PacketError, RtpView, check_datagram, check_rtcp, check_rtp, check_srtcp,
    check_srtp,
};

use std::net::SocketAddr;

/// `[media] latch` of a profile: which source a leg's RTP is accepted from and answered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latch {
    /// Symmetric RTP: answer wherever the peer's packets come from (NAT-friendly).
    Any,
    /// Only packets from the IP its SDP named; answer to the port they come from.
    SdpIp,
}

/// What the relay reads of a stream's packets, from its SDP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamKind {
    /// RTP and RTCP in the clear: checked, latched by SSRC, recorded, repacketised, RTCP
    /// source descriptions replaced.
    #[default]
    Rtp,
    /// SRTP: headers checked and latched by SSRC; payloads and RTCP are encrypted and
    /// authenticated end to end, so they pass exactly as sent (no recording, no
    /// repacketising, no RTCP rewrite).
    Srtp,
    /// Datagrams without RTP headers (T.38's UDPTL, DTLS-SRTP): size-checked, latched by
    /// address only, passed as sent.
    Datagram,
}

/// One anchored stream: the gateway's port facing each leg, and where each leg's RTP goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPair {
    pub kind: StreamKind,
    /// RTCP rides on the RTP port too (both legs' SDPs said `a=rtcp-mux`).
    pub rtcp_mux: bool,
    /// RTP port the caller sends to (RTCP is the next port).
    pub a_port: u16,
    /// RTP port the callee sends to.
    pub b_port: u16,
    /// The caller's RTP address from its SDP.
    pub a_remote: Option<SocketAddr>,
    /// The callee's RTP address from its SDP.
    pub b_remote: Option<SocketAddr>,
    /// The port the caller's SDP asks its RTCP to be sent to, at its RTP address's IP,
    /// when that is not the RTP port + 1 (`a=rtcp`, RFC 3605): where the callee's reports
    /// go until the caller's own show where it is.
    pub a_rtcp_port: Option<u16>,
    /// The same for the callee.
    pub b_rtcp_port: Option<u16>,
    /// Send nothing toward the caller before its own packets show where it is: its SDP
    /// names a private address while its signalling comes from a public one (an endpoint
    /// behind NAT, `latch = "any"`: that address is in the endpoint's network, not ours,
    /// and in ours may name a host of our own), or an address that is no destination (this
    /// host's own: its packets are still taken from there with `latch = "sdp-ip"`).
    pub a_wait_for_source: bool,
    /// The same for the callee.
    pub b_wait_for_source: bool,
    /// The IP the caller's signalling comes from: after the first seconds of an
    /// offer/answer its RTP is latched only from there or from its SDP's IP
    /// ([`crate::media::latch::OPEN_TO_ANYONE`]).
    pub a_signalling: Option<std::net::IpAddr>,
    /// The same for the callee.
    pub b_signalling: Option<std::net::IpAddr>,
    pub a_latch: Latch,
    pub b_latch: Latch,
    /// Re-chunk G.711 sent to the caller into packets of this ptime (ms).
    pub a_ptime: Option<u16>,
    /// The same toward the callee.
    pub b_ptime: Option<u16>,
    /// How long each leg's latched source must be silent before its stream may move
    /// (`[media] rebind_after_silence_ms` of that leg's peer).
    pub a_rebind_after: std::time::Duration,
    pub b_rebind_after: std::time::Duration,
    /// Which callee of the call side B is: a failover's next callee is another peer, and
    /// nothing learnt of the one before (its latched source, its SDP's IP) carries over.
    pub callee: u32,
    /// Each leg's peer has sent SDP (side B's: this callee). Until it has, `latch = "any"`
    /// takes no source for that leg: nobody is the leg before its peer said anything (a
    /// failed callee's last packets, or anyone spraying the port).
    pub a_heard: bool,
    pub b_heard: bool,
    /// The last completed offer/answer has media flowing both ways on this stream: each
    /// leg's SDP sends and receives (no `sendonly`, `recvonly`, `inactive`, `c=0.0.0.0` or
    /// port 0). When that turns true (a resume from hold of any kind) a leg that has sent
    /// nothing is open to a first source from anywhere again for a while; an update that
    /// does not change it (the other leg's offer, a refresh, a refused offer) opens none.
    pub flowing: bool,
    /// The stream is in use: the last SDP of the call offers or answers it with a port.
    /// A stream turned off (port 0) keeps its ports until another takes them, and relays
    /// nothing meanwhile: latched by anyone, its two sides would carry strangers' traffic.
    pub active: bool,
    /// This host's own addresses ([`crate::config::Config::host_ips`]): an IPv6 one is a
    /// leg's source only when the leg's signalling comes from loopback or one of them (a PBX
    /// or SBC on this host). The kernel drops an IPv4 packet from outside that claims one of
    /// them, not an IPv6 one: the relay would answer it into whatever listens there.
    pub host_ips: std::sync::Arc<[std::net::IpAddr]>,
    /// Where the caller's peer's media may be (`[media] networks`; None: anywhere): no
    /// packet from outside them is its, and an SDP address outside them is never sent to
    /// (the call layer makes such a leg wait for its source).
    pub a_networks: Option<std::sync::Arc<[ipnet::IpNet]>>,
    /// The same for the callee.
    pub b_networks: Option<std::sync::Arc<[ipnet::IpNet]>>,
    /// G.711 audio (`m=audio` listing PCMU or PCMA): what a recording takes (the first
    /// such stream of the call) and repacketising re-cuts.
    pub g711: bool,
}

impl RelayPair {
    /// Whether it carries G.711 audio in use, in the clear: what the recorder can take.
    /// (An encrypted one took the call's recording before, which then held nothing, and a
    /// clear G.711 stream of the same call went unrecorded.)
    pub fn is_voice(&self) -> bool {
        self.g711 && self.active && self.kind == StreamKind::Rtp
    }
}

#[cfg(test)]
impl RelayPair {
    /// An active RTP stream on ports `a_port`/`b_port` toward the legs' SDP addresses,
    /// both legs heard from and flowing, `latch` on both, nothing else set: what tests
    /// change the rest of with struct update syntax.
    pub fn plain(
        a_port: u16,
        b_port: u16,
        remotes: (Option<SocketAddr>, Option<SocketAddr>),
        latch: Latch,
    ) -> RelayPair {
        RelayPair {
            kind: StreamKind::Rtp,
            rtcp_mux: false,
            a_port,
            b_port,
            a_remote: remotes.0,
            b_remote: remotes.1,
            a_rtcp_port: None,
            b_rtcp_port: None,
            a_wait_for_source: false,
            b_wait_for_source: false,
            a_signalling: None,
            b_signalling: None,
            a_latch: latch,
            b_latch: latch,
            a_ptime: None,
            b_ptime: None,
            a_rebind_after: std::time::Duration::ZERO,
            b_rebind_after: std::time::Duration::ZERO,
            callee: 0,
            a_heard: true,
            b_heard: true,
            flowing: true,
            active: true,
            host_ips: Default::default(),
            a_networks: None,
            b_networks: None,
            g711: true,
        }
    }
}

/// What became of a call's recording on the writer thread, told to the call so its CDR
/// names only a file that exists and says when the recording did not cover the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingNews {
    /// No file was made (its folder or file could not be created, or the writer was
    /// stalled): the CDR names none.
    NotStarted,
    /// The file was made under another name (one was in the way).
    Renamed(std::path::PathBuf),
    /// The disk refused a write, or the file reached the WAV size limit: the file holds
    /// the call up to there.
    Stopped,
    /// The file was removed while the call was recorded (its folder deleted to free a
    /// full disk, say): the recording stopped, and the CDR names no file.
    Removed,
    /// The call's recording is complete: its last audio written, its header final (the
    /// sync to the disk follows on a thread of its own). Its CDR, held until now, goes.
    Finished,
}

/// Record the call's first stream into this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub path: std::path::PathBuf,
    /// Caller left, callee right; else both mixed into one channel.
    pub stereo: bool,
    pub jitter: std::time::Duration,
}

/// What the call layer asks of the media relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAction {
    /// Relay these streams for the call (creates them, or updates remotes after a re-INVITE),
    /// recording the first one when `record` says so.
    Relay {
        call: u64,
        pairs: Vec<RelayPair>,
        record: Option<RecordSpec>,
        /// Tell the call layer when no RTP flowed either way for this long.
        rtp_timeout: Option<std::time::Duration>,
    },
    /// The call was answered: its media clock starts over now, whether or not the answer
    /// carried SDP (ringing never counts against an answered call's `rtp_timeout_s`).
    /// `record: false`: neither the caller's peer nor the callee that answered records, and
    /// what was recorded while it rang is removed.
    Answered { call: u64, record: bool },
    /// Stop relaying and close the call's sockets. A call that was never answered keeps no
    /// recording (`keep_recording: false`: its file is removed, not left empty).
    Release { call: u64, keep_recording: bool },
}
