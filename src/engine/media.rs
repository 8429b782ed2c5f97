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

use super::relay_thread::{
    A_RTCP, A_RTP, Activity, B_RTCP, B_RTP, Direction, RelayThread, StreamIo,
};
use super::wav::{SharedRecorder, WavWriters};
use crate::media::record::Recorder;
use crate::media::relay::{Dir, StreamRoute};
use crate::media::{MediaAction, RelayPair};

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
    /// It pushes into the call's recorder.
    recorded: bool,
}

/// An anchored call's streams, all on one relay thread.
struct Placed {
    thread: usize,
    streams: Vec<Stream>,
}

/// Every relay thread is told to stop first, then all are waited for within one wait: one
/// after the other, each stuck thread added its own second to the gateway's stop.
impl Drop for Relays {
    fn drop(&mut self) {
        for t in &mut self.threads {
            t.tell_to_stop();
        }
        let until = std::time::Instant::now() + super::relay_thread::JOIN_WAIT;
        for t in &mut self.threads {
            t.join_by(until);
        }
    }
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
    /// writer thread drains it); `None`: the writer refused it (stalled), so the call goes
    /// unrecorded, is not opened again mid-call and has nothing to close.
    recordings: HashMap<u64, Option<SharedRecorder>>,
    wav: Option<WavWriters>,
    watches: HashMap<u64, Watch>,
    /// Calls whose relay could not open, not yet reported.
    failed: Vec<u64>,
    /// Pairs a socket not ours holds (a relay could not bind them): the core withholds them
    /// until they bind again.
    held: binding::Held,
    /// Streams released, until their relay thread has dropped them (their sockets with
    /// them: our `dead` is then the only reference left): the core may hand their ports
    /// out again at once, and a bind that races the close waits for it (`bind_after_close`).
    closing: Vec<([u16; 2], Arc<AtomicBool>)>,
    /// How long such a bind waits ([`CLOSE_WAIT`]; a test on a loaded machine waits longer).
    close_wait: std::time::Duration,
    /// The next stream's id.
    next_stream: u64,
    /// When [`Relays::silent_calls`] last ran (every second): a longer gap is a stall of
    /// the process, which the media clocks are credited with.
    last_pass: Option<std::time::Instant>,
}

/// A gap between two passes of [`Relays::silent_calls`] longer than this is a stall of the
/// whole process (a VM paused for a snapshot or a migration, a host that gave it no CPU):
/// no packet was read during it, whatever the peers sent.
const STALL: std::time::Duration = std::time::Duration::from_secs(3);

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
            held: binding::Held::default(),
            closing: Vec::new(),
            close_wait: CLOSE_WAIT,
            next_stream: 0,
            last_pass: None,
        })
    }

    /// A relay thread that stopped (a failed poll, a panic outside a packet's handling)
    /// gets a new thread in its place: its streams are reported dead (their calls end,
    /// `failed_calls`), and the calls placed on it from now on are relayed again. Without
    /// this, a gateway with one relay thread carried no more audio, and one with several
    /// had less room for it. A thread that cannot start is tried again at the next pass.
    pub(super) fn replace_stopped_threads(&mut self) {
        for (i, t) in self.threads.iter_mut().enumerate() {
            if t.runs() {
                continue;
            }
            match RelayThread::start(i) {
                Ok(new) => {
                    crate::ops::metrics::relay_failures("thread").increment(1);
                    tracing::error!(
                        thread = i,
                        "a relay thread stopped: its calls end; a new thread relays the next calls"
                    );
                    // The old thread has ended: dropping it joins at once.
                    *t = new;
                }
                Err(e) => {
                    tracing::error!(thread = i, error = %e, "a relay thread stopped and no new one could start");
                }
            }
        }
    }

    /// The RTP ports of pairs found held by a socket not ours since the last call, each
    /// once (the core withholds them), and of withheld ones that bind again (every minute).
    pub(super) fn held_ports(&mut self, now: std::time::Instant) -> (Vec<u16>, Vec<u16>) {
        let free = self.held.free_again(self.ip, now);
        (self.held.take_new(), free)
    }

    /// `[recording] min_free_mb` (at start and each reload).
    pub(super) fn keep_recordings_free(&self, bytes: u64) {
        if let Some(wav) = &self.wav {
            wav.keep_free(bytes);
        }
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
    ///
    /// After a stall of the process every media clock is moved on by the time lost: else
    /// every anchored call whose `rtp_timeout_s` is shorter than the stall would be ended at
    /// once, its audio flowing. A call whose media did die ends one timeout later.
    pub(super) fn silent_calls(&mut self, now: std::time::Instant) -> Vec<u64> {
        let gap = (self.last_pass.replace(now)).map(|at| now.saturating_duration_since(at));
        if let Some(gap) = gap.filter(|g| *g > STALL) {
            // A pass a second is what was due; the rest of the gap was lost.
            let lost = gap - std::time::Duration::from_secs(1);
            warn!(
                stalled_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
                "the gateway was stalled (no CPU for it): media timeouts moved on by as long"
            );
            for w in self.watches.values() {
                let mut last = crate::threads::lock(&w.last);
                *last = last.checked_add(lost).unwrap_or(now).min(now);
            }
        }
        let mut expired = Vec::new();
        for (call, w) in &self.watches {
            let Some(timeout) = w.timeout else { continue };
            let mut last = crate::threads::lock(&w.last);
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
                // offer/answer (this action) that changes the call's media counts as
                // activity, so ringing without early media never ends an answered call early
                // (audit H3); one that changes nothing (a refresh, however its peer numbers
                // its SDP) does not, or a call whose media died would never be released.
                let now = std::time::Instant::now();
                let watch = self.watches.entry(call).or_insert_with(|| Watch::new(now));
                let same = watch.timeout == rtp_timeout && watch.pairs == pairs;
                watch.timeout = rtp_timeout;
                watch.pairs.clone_from(&pairs);
                if !same {
                    *crate::threads::lock(&watch.last) = now;
                }
                let activity = Some(watch.last.clone());
                let answered = watch.answered;
                if let (Some(spec), Some(wav)) = (record, &self.wav)
                    && !self.recordings.contains_key(&call)
                {
                    let rec: SharedRecorder = Arc::new(Mutex::new(Recorder::new(spec.jitter)));
                    let opened = wav.open(call, spec.path, spec.stereo, rec.clone());
                    if opened && answered {
                        wav.answered(call);
                    }
                    self.recordings.insert(call, opened.then_some(rec));
                }
                let recorder = self.recordings.get(&call).cloned().flatten();
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
                // A stream that cannot open ends a call with nothing relayed yet (no audio at
                // all); one added to a call already relaying (video, by a re-INVITE) leaves
                // the call up on the streams it has, and is tried again at its next update.
                let relaying = !streams.is_empty();
                unrecord_gone(streams, &pairs);
                for p in pairs {
                    // Only the first G.711 audio stream is recorded (the voice of a call
                    // whose SDP lists video first, too: the recorder decodes G.711 alone,
                    // and a video stream recorded gave a silent file); one that becomes
                    // G.711 by a re-INVITE is, when the call had none (before, a call that
                    // began with another codec was never recorded).
                    let records =
                        recorder.is_some() && p.is_voice() && !streams.iter().any(|s| s.recorded);
                    match streams
                        .iter_mut()
                        .find(|s| s.a_port == p.a_port && s.b_port == p.b_port)
                    {
                        Some(s) => {
                            update(s, &p);
                            if records {
                                let mut r = crate::threads::lock(&s.route);
                                r.record();
                                s.recorded = true;
                            }
                        }
                        None => {
                            let rec = (recorder.clone(), records);
                            self.next_stream += 1;
                            let id = self.next_stream;
                            match open(
                                thread,
                                id,
                                self.ip,
                                &p,
                                rec,
                                activity.clone(),
                                (&self.closing, self.close_wait),
                            ) {
                                Ok(s) => {
                                    streams.push(s);
                                    self.loads[placed.thread] += 1;
                                }
                                Err(e) => {
                                    warn!(call, a_port = p.a_port, b_port = p.b_port, error = %e, "cannot open RTP relay");
                                    crate::ops::metrics::relay_failures("bind").increment(1);
                                    if e.kind() == std::io::ErrorKind::AddrInUse {
                                        self.held.note(&self.closing, self.ip, &p);
                                    }
                                    if relaying {
                                        warn!(call, "the call goes on without that stream");
                                    } else if !self.failed.contains(&call) {
                                        self.failed.push(call);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            MediaAction::Answered { call, record } => self.answered(call, record),
            MediaAction::Release {
                call,
                keep_recording,
            } => {
                self.watches.remove(&call);
                if let Some(placed) = self.calls.remove(&call) {
                    let load = &mut self.loads[placed.thread];
                    *load = load.saturating_sub(placed.streams.len());
                    let thread = &self.threads[placed.thread];
                    self.closing.retain(|(_, io)| Arc::strong_count(io) > 1);
                    for s in placed.streams {
                        thread.close(s.id);
                        // Bounded even if a relay thread never takes its commands again.
                        if self.closing.len() >= MAX_CLOSING {
                            self.closing.remove(0);
                        }
                        self.closing.push(([s.a_port, s.b_port], s.dead));
                    }
                }
                if let Some(Some(_)) = self.recordings.remove(&call)
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
        self.recordings.values().filter(|r| r.is_some()).count()
    }

    /// Streams being relayed.
    pub(super) fn streams(&self) -> usize {
        self.loads.iter().sum()
    }
}

/// The recorded stream whose ports now carry no G.711 audio in use (the audio turned off, and
/// its ports given to a video stream a re-INVITE added) is recorded no more, so the call's
/// next G.711 audio stream is: the recording follows the voice, not a pair of ports.
fn unrecord_gone(streams: &mut [Stream], pairs: &[RelayPair]) {
    for s in streams.iter_mut().filter(|s| s.recorded) {
        let voice =
            (pairs.iter()).any(|p| (p.a_port, p.b_port) == (s.a_port, s.b_port) && p.is_voice());
        if !voice {
            crate::threads::lock(&s.route).unrecord();
            s.recorded = false;
        }
    }
}

fn update(s: &Stream, p: &RelayPair) {
    crate::threads::lock(&s.route).update(p, std::time::Instant::now());
}

/// Released streams remembered at most until their relay thread drops them (a thread
/// that is stuck must not make the list grow for ever; the pool holds fewer pairs).
const MAX_CLOSING: usize = 32_768;

fn open(
    thread: &RelayThread,
    id: u64,
    ip: IpAddr,
    p: &RelayPair,
    (recorder, recorded): (Option<SharedRecorder>, bool),
    activity: Option<Activity>,
    closing: Closing<'_>,
) -> std::io::Result<Stream> {
    let sockets = [
        bind_after_close(ip, p.a_port, closing)?,
        bind_after_close(ip, p.a_port + 1, closing)?,
        bind_after_close(ip, p.b_port, closing)?,
        bind_after_close(ip, p.b_port + 1, closing)?,
    ];
    let mut route = StreamRoute::new(p, std::time::Instant::now());
    if recorded {
        route.record();
    }
    let cname = format!("trunkgate@{ip}");
    // RTCP across a repacketised stream is put in terms of the packets each leg got
    // (`media::rtcp_translate`); what a stream the gateway does not read sends (SRTCP,
    // once a re-INVITE made the stream SRTP) passes as it came.
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
            taken: false,
            left: [false; 4],
            holding: false,
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
        recorded,
    })
}

mod answered;
mod binding;
mod recordings;
mod watch;
use binding::{CLOSE_WAIT, Closing, bind_after_close};
pub(super) use recordings::Finishing;
use watch::Watch;
#[cfg(test)]
mod tests;
