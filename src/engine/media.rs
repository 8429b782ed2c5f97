//! The RTP/RTCP relay for anchored calls: per stream, a socket pair facing each leg, moved
//! packet by packet on a relay thread (`relay_thread`). Which packets are accepted and
//! where they go (latching, within each profile's `[media] latch`) is `media::relay`'s
//! decision; this file binds the sockets (`relay_socket`), places each call on a thread,
//! and keeps activity and the recording feed.
//!
//! The relays run on threads of their own (`[media] threads`, each call on one of them,
//! chosen by `media::placement`): an RTP flood, or thousands of recorded calls, never
//! delays a SIP message, and a burst of signalling never delays a packet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{debug, warn};

use super::relay_socket::bind;
use super::relay_thread::{
    A_RTCP, A_RTP, Activity, B_RTCP, B_RTP, Direction, RelayThread, StreamIo,
};
use super::wav::{SharedRecorder, WavWriters};
use crate::media::record::Recorder;
use crate::media::relay::{Dir, StreamRoute};
use crate::media::{MediaAction, RelayPair};

/// A call's media activity: one clock for every stream and direction (RTP and RTCP) of the
/// call, and its `rtp_timeout_s` when it has one.
struct Watch {
    last: Activity,
    timeout: Option<std::time::Duration>,
}

struct Stream {
    a_port: u16,
    b_port: u16,
    route: Arc<Mutex<StreamRoute>>,
    /// Its name on its relay thread.
    id: u64,
    /// Set by the relay thread if the stream stopped before it was closed.
    dead: Arc<AtomicBool>,
    /// Its failure has been reported to the core.
    reported: bool,
}

/// An anchored call's streams, all on one relay thread.
struct Placed {
    thread: usize,
    streams: Vec<Stream>,
}

/// The relays of every anchored call.
pub(super) struct Relays {
    /// Never empty.
    threads: Vec<RelayThread>,
    /// Streams each thread carries (same index as `threads`).
    loads: Vec<usize>,
    /// Streams a thread takes before the next one is used (`media::placement`).
    fill: usize,
    ip: IpAddr,
    calls: HashMap<u64, Placed>,
    /// Calls being recorded: the recorder their first stream's relay tasks feed (the WAV
    /// writer thread drains it).
    recordings: HashMap<u64, SharedRecorder>,
    wav: Option<WavWriters>,
    watches: HashMap<u64, Watch>,
    /// Calls whose relay could not open, not yet reported.
    failed: Vec<u64>,
    /// The next stream's id.
    next_stream: u64,
}

impl Relays {
    pub(super) fn new(
        ip: IpAddr,
        threads: usize,
        wav: Option<WavWriters>,
    ) -> std::io::Result<Self> {
        let threads: Vec<RelayThread> = (0..threads.max(1))
            .map(RelayThread::start)
            .collect::<std::io::Result<_>>()?;
        Ok(Relays {
            loads: vec![0; threads.len()],
            fill: crate::media::placement::FILL_STREAMS,
            threads,
            ip,
            calls: HashMap::new(),
            recordings: HashMap::new(),
            wav,
            watches: HashMap::new(),
            failed: Vec::new(),
            next_stream: 0,
        })
    }

    /// Calls whose relay could not open or whose stream stopped on its relay thread (a
    /// stream only stops when the call is released, so any other end is a failure). Each is
    /// reported once.
    pub(super) fn failed_calls(&mut self) -> Vec<u64> {
        let mut failed = std::mem::take(&mut self.failed);
        for (call, Placed { streams, .. }) in &mut self.calls {
            let dead = streams
                .iter_mut()
                .any(|s| !s.reported && s.dead.load(Ordering::Relaxed));
            if dead {
                for s in streams.iter_mut() {
                    s.reported = true;
                }
                failed.push(*call);
            }
        }
        failed
    }

    /// Calls whose media has been silent for their timeout. A reported call starts counting
    /// again (the core releases answered calls only: a ringing call without early media is
    /// reported and carries on), and every new offer/answer restarts the count too.
    pub(super) fn silent_calls(&mut self, now: std::time::Instant) -> Vec<u64> {
        let mut expired = Vec::new();
        for (call, w) in &self.watches {
            let Some(timeout) = w.timeout else { continue };
            let Ok(mut last) = w.last.lock() else {
                continue;
            };
            if now.saturating_duration_since(*last) >= timeout {
                *last = now;
                expired.push(*call);
            }
        }
        expired
    }

    pub(super) fn apply(&mut self, action: MediaAction) {
        match action {
            MediaAction::Relay {
                call,
                pairs,
                record,
                rtp_timeout,
            } => {
                // One clock per call, handed to every stream it will ever have; each new
                // offer/answer (this action) counts as activity, so ringing without early
                // media never ends an answered call early (audit H3).
                let now = std::time::Instant::now();
                let watch = self.watches.entry(call).or_insert_with(|| Watch {
                    last: Arc::new(Mutex::new(now)),
                    timeout: None,
                });
                watch.timeout = rtp_timeout;
                if let Ok(mut last) = watch.last.lock() {
                    *last = now;
                }
                let activity = Some(watch.last.clone());
                if let (Some(spec), Some(wav)) = (record, &self.wav)
                    && !self.recordings.contains_key(&call)
                {
                    let rec: SharedRecorder = Arc::new(Mutex::new(Recorder::new(spec.jitter)));
                    wav.open(call, spec.path, spec.stereo, rec.clone());
                    self.recordings.insert(call, rec);
                }
                let recorder = self.recordings.get(&call).cloned();
                // Every stream of a call on one thread, so its activity clock and the
                // recorder its streams push into are only ever contended by the WAV
                // writer's drain every 100 ms.
                let placed = self.calls.entry(call).or_insert_with(|| Placed {
                    thread: crate::media::placement::pick_thread(&self.loads, self.fill, |i| {
                        self.threads.get(i).is_some_and(RelayThread::runs)
                    }),
                    streams: Vec::new(),
                });
                let thread = &self.threads[placed.thread];
                let streams = &mut placed.streams;
                for p in pairs {
                    match streams
                        .iter()
                        .find(|s| s.a_port == p.a_port && s.b_port == p.b_port)
                    {
                        Some(s) => update(s, &p),
                        // Only the first stream (the audio of a plain call) is recorded.
                        None => {
                            let rec = recorder.clone().filter(|_| streams.is_empty());
                            self.next_stream += 1;
                            let id = self.next_stream;
                            match open(thread, id, self.ip, &p, rec, activity.clone()) {
                                Ok(s) => {
                                    streams.push(s);
                                    self.loads[placed.thread] += 1;
                                }
                                Err(e) => {
                                    warn!(call, a_port = p.a_port, b_port = p.b_port, error = %e, "cannot open RTP relay");
                                    if !self.failed.contains(&call) {
                                        self.failed.push(call);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            MediaAction::Release {
                call,
                keep_recording,
            } => {
                self.watches.remove(&call);
                if let Some(placed) = self.calls.remove(&call) {
                    let load = &mut self.loads[placed.thread];
                    *load = load.saturating_sub(placed.streams.len());
                    let thread = &self.threads[placed.thread];
                    for s in placed.streams {
                        thread.close(s.id);
                    }
                }
                if self.recordings.remove(&call).is_some()
                    && let Some(wav) = &self.wav
                {
                    if keep_recording {
                        wav.close(call);
                    } else {
                        wav.discard(call);
                    }
                }
                // What a burst of anchored calls grew goes back as they end.
                crate::maps::shrink_if_sparse(&mut self.calls);
                crate::maps::shrink_if_sparse(&mut self.recordings);
                crate::maps::shrink_if_sparse(&mut self.watches);
            }
        }
    }

    /// Calls being recorded.
    pub(super) fn recordings(&self) -> usize {
        self.recordings.len()
    }

    /// Streams being relayed.
    pub(super) fn streams(&self) -> usize {
        self.loads.iter().sum()
    }
}

fn update(s: &Stream, p: &RelayPair) {
    if let Ok(mut r) = s.route.lock() {
        r.update(p);
    }
}

fn open(
    thread: &RelayThread,
    id: u64,
    ip: IpAddr,
    p: &RelayPair,
    recorder: Option<SharedRecorder>,
    activity: Option<Activity>,
) -> std::io::Result<Stream> {
    let sockets = [
        bind(ip, p.a_port)?,
        bind(ip, p.a_port + 1)?,
        bind(ip, p.b_port)?,
        bind(ip, p.b_port + 1)?,
    ];
    let route = StreamRoute::new(p);
    let cname = format!("trunkgate@{ip}");
    // RTCP toward a repacketised leg is not relayed: its packet counts describe a stream
    // that leg never sees (see README). What a stream the gateway does not read sends
    // there (SRTCP, once a re-INVITE made the stream SRTP) still passes.
    let mut dirs: [Option<Direction>; 4] = Default::default();
    dirs[A_RTP] = Some(Direction::rtp(
        Dir::AtoB,
        &route,
        recorder.clone(),
        activity.clone(),
        &cname,
    ));
    dirs[B_RTP] = Some(Direction::rtp(
        Dir::BtoA,
        &route,
        recorder,
        activity.clone(),
        &cname,
    ));
    dirs[A_RTCP] = Some(Direction::rtcp(Dir::AtoB, &route, activity.clone(), &cname));
    dirs[B_RTCP] = Some(Direction::rtcp(Dir::BtoA, &route, activity, &cname));
    let route = Arc::new(Mutex::new(route));
    let dead = Arc::new(AtomicBool::new(false));
    thread.open(
        id,
        StreamIo {
            sockets,
            route: route.clone(),
            dirs,
            dead: dead.clone(),
        },
    )?;
    debug!(a_port = p.a_port, b_port = p.b_port, "RTP relay open");
    Ok(Stream {
        a_port: p.a_port,
        b_port: p.b_port,
        route,
        id,
        dead,
        reported: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Latch, StreamKind};
    use std::time::Duration;

    /// A base port whose four ports (two RTP/RTCP pairs) are free now.
    fn free_quad() -> u16 {
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        // Below the kernel's ephemeral range, so no socket bound to port 0 lands there.
        for _ in 0..200 {
            let p = 29_000 + 4 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if (p..p + 4).all(|q| std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
                return p;
            }
        }
        panic!("no four free ports from 29000");
    }

    /// Relay one stream for `call` on the four ports from `port`.
    fn relay(call: u64, port: u16) -> MediaAction {
        MediaAction::Relay {
            call,
            pairs: vec![RelayPair {
                kind: StreamKind::Rtp,
                rtcp_mux: false,
                a_port: port,
                b_port: port + 2,
                a_remote: None,
                b_remote: None,
                a_latch: Latch::Any,
                b_latch: Latch::Any,
                a_ptime: None,
                b_ptime: None,
                a_rebind_after: Duration::ZERO,
                b_rebind_after: Duration::ZERO,
                callee: 0,
                a_heard: true,
                b_heard: true,
            }],
            record: None,
            rtp_timeout: None,
        }
    }

    fn release(call: u64) -> MediaAction {
        MediaAction::Release {
            call,
            keep_recording: false,
        }
    }

    #[test]
    fn calls_fill_a_thread_then_spread_and_release_gives_the_load_back() {
        let mut r = Relays::new("127.0.0.1".parse().unwrap(), 2, None).unwrap();
        r.fill = 2;
        let ports: Vec<u16> = (0..=6).map(|_| free_quad()).collect();
        for call in 1..=5 {
            r.apply(relay(call, ports[call as usize]));
        }
        assert!(r.failed_calls().is_empty(), "every relay opened");
        // Two calls fill thread 0, two thread 1, the fifth goes to the least loaded.
        assert_eq!(r.loads, [3, 2]);
        assert_eq!(r.calls[&3].thread, 1);
        assert_eq!(r.streams(), 5);
        // A re-INVITE (the same ports again) updates its stream: no new load.
        r.apply(relay(3, ports[3]));
        assert_eq!(r.loads, [3, 2]);
        r.apply(release(1));
        r.apply(release(2));
        assert_eq!(r.loads, [1, 2]);
        // Thread 0 is under its fill line again: the next call goes there.
        r.apply(relay(6, ports[6]));
        assert_eq!(r.calls[&6].thread, 0);
        assert_eq!(r.loads, [2, 2]);
        for call in [3, 4, 5, 6] {
            r.apply(release(call));
        }
        assert_eq!(r.loads, [0, 0]);
        assert_eq!(r.streams(), 0);
    }

    #[test]
    fn a_stream_that_becomes_srtp_relays_srtcp_toward_a_repacketised_leg() {
        let mut r = Relays::new("127.0.0.1".parse().unwrap(), 1, None).unwrap();
        let gw = free_quad();
        let peers = free_quad();
        let (phone_rtcp, carrier_rtcp) = (peer(peers + 1), peer(peers + 3));
        let pair = |kind| RelayPair {
            kind,
            a_remote: Some(([127, 0, 0, 1], peers).into()),
            b_remote: Some(([127, 0, 0, 1], peers + 2).into()),
            // The carrier's leg is repacketised to 20 ms.
            b_ptime: Some(20),
            ..match relay(1, gw) {
                MediaAction::Relay { pairs, .. } => pairs[0].clone(),
                MediaAction::Release { .. } => unreachable!(),
            }
        };
        let action = |kind| MediaAction::Relay {
            call: 1,
            pairs: vec![pair(kind)],
            record: None,
            rtp_timeout: None,
        };
        let to_gw = ("127.0.0.1", gw + 1);
        let mut buf = [0u8; 2048];
        // Plain RTCP toward the repacketised leg describes packets it never sees: not relayed.
        r.apply(action(StreamKind::Rtp));
        phone_rtcp
            .send_to(&[0x80, 201, 0, 1, 0, 0, 0, 7], to_gw)
            .unwrap();
        assert!(carrier_rtcp.recv_from(&mut buf).is_err());
        // A re-INVITE makes the stream SRTP: its SRTCP passes as sent.
        r.apply(action(StreamKind::Srtp));
        let mut srtcp = vec![0x80, 201, 0, 1, 0, 0, 0, 7];
        srtcp.extend_from_slice(&[0x80, 0, 0, 1]);
        srtcp.extend_from_slice(&[0xab; 10]);
        phone_rtcp.send_to(&srtcp, to_gw).unwrap();
        let (n, _) = carrier_rtcp.recv_from(&mut buf).expect("SRTCP relayed");
        assert_eq!(&buf[..n], &srtcp[..]);
        r.apply(release(1));
    }

    /// A socket on 127.0.0.1:`port` (0: any) that waits 500 ms at most for a packet.
    fn peer(port: u16) -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    }

    /// Relay call 1 on the ports from `gw` between `phone` and callee number `callee` at
    /// `to`, repacketised toward it to `ptime`.
    fn relay_to(
        r: &mut Relays,
        gw: u16,
        phone: &std::net::UdpSocket,
        to: &std::net::UdpSocket,
        ptime: Option<u16>,
        callee: u32,
    ) {
        let MediaAction::Relay { mut pairs, .. } = relay(1, gw) else {
            unreachable!()
        };
        let p = &mut pairs[0];
        p.a_remote = Some(phone.local_addr().unwrap());
        p.b_remote = Some(to.local_addr().unwrap());
        p.b_ptime = ptime;
        p.callee = callee;
        r.apply(MediaAction::Relay {
            call: 1,
            pairs,
            record: None,
            rtp_timeout: None,
        });
    }

    /// `ms` of PCMU, every sample `sample`.
    fn pcmu(seq: u8, ms: usize, sample: u8) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, seq, 0, 0, 1, 0x40, 0, 0, 0, 9];
        p.extend(std::iter::repeat_n(sample, ms * 8));
        p
    }

    /// A relay with call 1's ports from the returned base, a phone and two callees' sockets.
    fn failover_rig() -> (Relays, u16, [std::net::UdpSocket; 3]) {
        let r = Relays::new("127.0.0.1".parse().unwrap(), 1, None).unwrap();
        (r, free_quad(), [peer(0), peer(0), peer(0)])
    }

    /// Send `pkt` from `phone` to the gateway's port `gw`: the size of what `to` gets first
    /// (in `buf`).
    fn through(
        phone: &std::net::UdpSocket,
        gw: u16,
        pkt: &[u8],
        to: &std::net::UdpSocket,
        buf: &mut [u8],
    ) -> usize {
        phone.send_to(pkt, ("127.0.0.1", gw)).unwrap();
        to.recv_from(buf).expect("relayed").0
    }

    #[test]
    fn a_failover_to_a_peer_of_another_ptime_repacketises_to_its_ptime() {
        let (mut r, gw, [phone, first, next]) = failover_rig();
        let mut buf = [0u8; 2048];
        // The first callee's profile does not repacketise: 40 ms go as they came.
        relay_to(&mut r, gw, &phone, &first, None, 0);
        assert_eq!(
            through(&phone, gw, &pcmu(1, 40, 0xd5), &first, &mut buf),
            12 + 320
        );
        // It fails; the next callee's profile wants 20 ms packets: it gets two per packet.
        relay_to(&mut r, gw, &phone, &next, Some(20), 1);
        let n = through(&phone, gw, &pcmu(2, 40, 0xd5), &next, &mut buf);
        assert_eq!(n, 12 + 160, "a 20 ms packet");
        let (n, _) = next.recv_from(&mut buf).expect("the second 20 ms packet");
        assert_eq!(n, 12 + 160);
        r.apply(release(1));
    }

    #[test]
    fn audio_held_for_a_callee_that_failed_does_not_reach_the_next() {
        let (mut r, gw, [phone, first, next]) = failover_rig();
        let mut buf = [0u8; 2048];
        // Both callees' profiles want 20 ms: of 30 ms, 20 go and 10 wait for the next packet.
        relay_to(&mut r, gw, &phone, &first, Some(20), 0);
        assert_eq!(
            through(&phone, gw, &pcmu(1, 30, 0x11), &first, &mut buf),
            12 + 160
        );
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        // The first callee fails: the 10 ms held for it are not the next callee's, and the
        // sequence numbers toward the leg go on. (The phone's stream goes on too: its next
        // packet follows the first, timestamp and all.)
        relay_to(&mut r, gw, &phone, &next, Some(20), 1);
        let mut second = pcmu(2, 30, 0x22);
        second[4..8].copy_from_slice(&(0x140u32 + 240).to_be_bytes());
        let n = through(&phone, gw, &second, &next, &mut buf);
        assert_eq!(n, 12 + 160);
        assert!(
            buf[12..n].iter().all(|b| *b == 0x22),
            "only audio sent after the failover"
        );
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), seq.wrapping_add(1));
        r.apply(release(1));
    }
}
