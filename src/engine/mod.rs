//! The tokio shell: sockets, signals, the CDR writer and the media relay around the sans-IO
//! core. It holds no protocol state: it feeds the core what arrives, sleeps until the core's
//! next deadline (`poll_timeout`), and performs what the core asks (`poll_output`).
//!
//! One task owns the [`B2bua`]. Transport tasks check each source against the rate guard,
//! parse what they receive and hand messages to it over two bounded queues (`inbox`):
//! accepted work first, new work shed with 503 when it has waited too long.

mod asked;
mod bind;
mod byte_budget;
mod callback;
mod due;
mod fds;
mod held_cdrs;
mod housekeeping;
mod inbox;
mod lifecycle;
mod listen;
mod media;
mod overload;
mod perform;
mod read_errors;
mod relay_socket;
mod relay_thread;
mod reload;
mod source_guard;
mod tcp;
mod udp;
pub mod wav;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::call::{B2bua, Input};
use crate::cdr::CdrWriter;
use crate::config::Config;
use crate::ops::metrics;
use crate::sip::{ConnId, IdGen, Message, Target};
use crate::txn::TimerConfig;
use lifecycle::Lifecycle;
pub use lifecycle::{Hangup, Signals};

/// How often what the edge dropped is summed up in one log line (per reason, with counts).
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// At exit, how long the recording writer is waited for to close the files still open.
pub const WAV_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What transport tasks tell the core task.
// `Message` is the large variant and the common one: boxing it would cost an allocation
// per message to save a few bytes in a short queue.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Event {
    Message {
        msg: Message,
        source: Target,
        /// When it was received: the queue delay is what overload control watches.
        at: Instant,
        /// A new INVITE the UDP reader's overload control already let in.
        screened: bool,
        /// The bytes it keeps alive while queued: a datagram's whole buffer (its parsed body
        /// is a slice of it, and what follows the body is kept with it), else its size.
        held: usize,
    },
    /// A datagram that does not parse as SIP, or a stream message that did not.
    Unparseable {
        raw: Bytes,
        why: String,
        status: crate::sip::Unreadable,
        source: Target,
    },
    TcpUp {
        conn: ConnId,
        peer: SocketAddr,
        tx: tcp::Writer,
    },
    TcpDown {
        conn: ConnId,
    },
}

/// What `GET /health` answers: not ready from SIGTERM on, nor while CDRs cannot be written
/// and new calls are refused (`[cdr] fail_closed`, a full queue).
fn ready(
    draining: &Arc<std::sync::atomic::AtomicBool>,
    cdr_admits: impl Fn() -> bool + Send + Sync + 'static,
) -> crate::ops::scrape::Ready {
    let draining = Arc::clone(draining);
    Arc::new(move || {
        if draining.load(std::sync::atomic::Ordering::Acquire) {
            Err("draining: new calls are refused")
        } else if !cdr_admits() {
            Err("CDRs cannot be written: new calls are refused")
        } else {
            Ok(())
        }
    })
}

/// Bind the listeners, then run until SIGTERM/SIGINT has drained the calls. `signals` are
/// watched by the caller (SIGHUP before it reads the configuration: [`Hangup`]).
pub async fn run(config_path: PathBuf, cfg: Config, signals: Signals) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    // Our tags carry a check the readers verify (`sip::TagKey`): one key for both.
    let tags = crate::sip::TagKey::random();
    let (inbox, queues) = inbox::Inbox::new(cfg.clone(), Instant::now());
    let inbox = inbox.checking_tags(tags.clone());
    fds::ensure(&cfg)?;
    let conn_ids = tcp::ConnIds::default();
    let tcp_limits = tcp::Limits {
        max: cfg.max_message_bytes,
        message_timeout: cfg.protect.tcp_message_timeout,
    };
    let tcp_slots = tcp::Slots::new(&cfg.protect);
    let udp_socks = listen::sip(&cfg, &inbox, tcp_limits, &tcp_slots, &conn_ids)?;
    let cdr = CdrWriter::open_with(&cfg.cdr_path, crate::cdr::CdrOptions::from_config(&cfg))
        .with_context(|| format!("cannot open CDR file {}", cfg.cdr_path.display()))?;
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = cdr.gate();
    listen::metrics_endpoint(
        &cfg,
        &inbox,
        ready(&draining, move || gate.admits_new_calls()),
    )?;
    wav::check_recording_dir(&cfg).map_err(|e| anyhow::anyhow!(e))?;
    let (wav, wav_thread) =
        wav::WavWriters::start().context("cannot start the recording writer")?;
    wav.keep_free(cfg.recording_min_free);
    // The pid file `trunkgate reload` finds the process by (beside the CDR file).
    let control = match crate::ops::control::Control::start(&cfg, &config_path) {
        Ok(c) => Some(c),
        // Another gateway writes this CDR file: two writers would glue each other's lines
        // together after a short write, and share `.unwritten`. Not started.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(anyhow::anyhow!(e).context("not started"));
        }
        Err(e) => {
            warn!(error = %e, "cannot write the pid file: `trunkgate reload` will not find this process (SIGHUP still works)");
            None
        }
    };
    // `[callback] port = 0` opens no socket at all.
    let (callback, callback_rx) = match callback::Callback::start(&cfg, Instant::now()) {
        Ok(Some((cb, rx))) => (Some(cb), Some(rx)),
        Ok(None) => (None, None),
        Err(e) => {
            let at = cfg
                .callback
                .listen
                .map(|a| a.to_string())
                .unwrap_or_default();
            return Err(e)
                .with_context(|| format!("cannot bind the call-back service on udp:{at}"));
        }
    };
    crate::ops::heap::prepare_zones();
    let mut core = B2bua::new(
        cfg.clone(),
        TimerConfig::default(),
        IdGen::from_os(tags),
        Instant::now(),
        SystemTime::now(),
    );
    core.set_overload_tag(&inbox.overload.tag);
    let mut shell = Shell {
        core,
        udp: udp::Out::new(udp_socks)
            .advertising(cfg.advertise_ip())
            .counting(inbox.tally.clone()),
        tcp: tcp::Registry::new(inbox.clone(), tcp_limits, tcp_slots, conn_ids)
            .advertising(cfg.advertise_ip()),
        inbox,
        sip: metrics::SipCounters::default(),
        summary_at: Instant::now() + SUMMARY_EVERY,
        heap: crate::ops::heap::Collector::default(),
        cdr,
        held_cdrs: Default::default(),
        config_path,
        media: media::Relays::new(cfg.media_ip, cfg.media_threads, Some(wav))
            .context("cannot start the media threads")?,
        lifecycle: Lifecycle::Running,
        draining,
        cdr_ok: true,
        cdr_stalled: false,
        control,
        callback,
        last_stop_signal: None,
        peer_states: Default::default(),
        peers_shown: Vec::new(),
    };
    // Said once all is up (the call-back socket bound, the media threads started): before,
    // a call-back port taken gave "running" and then the refusal to start.
    info!(
        listen = ?cfg.listen.iter().map(|l| format!("{}:{}", l.transport, l.addr)).collect::<Vec<_>>(),
        profiles = cfg.profiles.len(),
        routes = cfg.routes.len(),
        cdr = %cfg.cdr_path.display(),
        "trunkgate running"
    );
    let result = shell.run(signals, queues, callback_rx).await;
    // Finalise every recording still open before the process exits.
    drop(shell);
    match crate::threads::join_within(wav_thread, WAV_CLOSE_WAIT) {
        crate::threads::Joined::Finished => {}
        crate::threads::Joined::Panicked => error!("the recording writer stopped abnormally"),
        crate::threads::Joined::StillRunning => error!(
            "the recording writer did not finish within {} s (a disk that does not answer, \
             or a long hold's silence or the last syncs still being written): recordings \
             still open may lack their last seconds and a correct header, finished ones \
             their sync to the disk",
            WAV_CLOSE_WAIT.as_secs()
        ),
    }
    result
}

struct Shell {
    core: B2bua,
    /// What goes out over UDP.
    udp: udp::Out,
    tcp: tcp::Registry,
    inbox: inbox::Inbox,
    /// Messages in and out (made after the exporter is installed).
    sip: metrics::SipCounters,
    /// When the edge's drop counts are next summed up in the log.
    summary_at: Instant,
    heap: crate::ops::heap::Collector,
    cdr: CdrWriter,
    /// Recorded calls' CDRs, until their recording is finished.
    held_cdrs: held_cdrs::HeldCdrs,
    config_path: PathBuf,
    media: media::Relays,
    lifecycle: Lifecycle,
    /// Set at SIGTERM, for `GET /health` (read on the scrape tasks).
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// What the core was last told about the CDR writer.
    cdr_ok: bool,
    /// The CDR writer was stuck at the last look (said once per episode).
    cdr_stalled: bool,
    /// The pid file and reload results for `trunkgate reload`.
    control: Option<crate::ops::control::Control>,
    /// The call-back service, unless `[callback] port = 0`.
    callback: Option<callback::Callback>,
    /// When the last SIGTERM/SIGINT came.
    last_stop_signal: Option<Instant>,
    /// The peers whose registration and ping states were last exported.
    peer_states: housekeeping::PeerStates,
    /// Peers whose active-call gauge was last set: a peer a reload removed is shown until
    /// its calls have ended (then 0), not frozen at its last count.
    peers_shown: Vec<crate::config::PeerName>,
}

impl Shell {
    async fn run(
        &mut self,
        signals: lifecycle::Signals,
        mut q: inbox::Queues,
        mut callback_rx: Option<mpsc::Receiver<callback::Datagram>>,
    ) -> anyhow::Result<()> {
        let lifecycle::Signals {
            mut hup,
            mut term,
            mut int,
        } = signals;
        let mut gauges = tokio::time::interval(Duration::from_secs(1));
        // After a stall, one pass (it sees the stall), not one for every second missed.
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut reloading = reload::Reloading::default();
        let recording_news = self.media.news_bell();
        loop {
            let callback_wake = self.callback.as_ref().and_then(|c| c.poll_timeout());
            let wake = [
                self.core.poll_timeout(),
                self.lifecycle.deadline(),
                callback_wake,
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                // In this order: signals, ticks and deadlines (rarely ready, and never to be
                // starved by a queue that is never empty under overload), then accepted work,
                // the call-back service, new work, strangers' requests.
                biased;
                _ = term.recv() => self.on_stop_signal(),
                _ = int.recv() => self.on_stop_signal(),
                _ = hup.recv() => self.reload(&mut reloading),
                loaded = reloading.loaded() => {
                    let now = self.clock();
                    self.reload_loaded(now, loaded, &mut reloading)
                }
                _ = sleep_until(wake), if wake.is_some() => {}
                _ = gauges.tick() => { let now = self.clock(); self.every_second(now) }
                // A recording finished whose call's CDR waits for it.
                _ = recording_news.notified(), if !self.held_cdrs.is_empty() => {
                    let now = self.clock();
                    self.take_recording_news(now);
                }
                ev = q.urgent.recv() => {
                    let Some(ev) = ev else { break };
                    q.took_urgent(&ev);
                    let now = self.clock();
                    self.on_event(now, ev);
                    self.take_queued(&mut q);
                }
                // The call-back service after accepted SIP work: a flood of datagrams on
                // its port (UDP sources can be spoofed) must not hold up calls in progress.
                // Each datagram is followed by what SIP work is queued, as every arm is, so
                // such a flood cannot hold up new calls either (before, up to the call-back
                // inbox's 256 went ahead of each new SIP request).
                dg = callback::recv(&mut callback_rx) => match dg {
                    Some(dg) => {
                        let now = self.clock();
                        self.on_datagram(now, dg);
                        self.take_queued(&mut q);
                    }
                    None => callback_rx = None,
                },
                ev = q.fresh.recv() => {
                    let Some(ev) = ev else { break };
                    q.took_fresh(&ev);
                    let now = self.clock();
                    self.on_event(now, ev);
                    self.take_queued(&mut q);
                }
                ev = q.strangers.recv() => {
                    let Some(ev) = ev else { break };
                    let now = self.clock();
                    self.on_event(now, ev);
                    self.take_queued(&mut q);
                }
            }
            let now = self.fire_due_timers(&mut q).await;
            if let Some(cb) = self.callback.as_mut() {
                cb.handle_timeout(now);
            }
            self.perform(now);
            if self.lifecycle_step(now) {
                break;
            }
        }
        self.flush_tcp().await;
        self.write_held_cdrs().await;
        info!("trunkgate stopped");
        self.cdr.close();
        // CDRs that never reached the file (each said in the log at error level) fail the
        // run: a supervisor or an operator's script sees it in the exit status.
        let missing = self.cdr.stats().dropped;
        if missing > 0 {
            anyhow::bail!(
                "{missing} CDRs did not reach {} in this run: see the log (error level) for each",
                self.cdr.path().display()
            );
        }
        Ok(())
    }

    fn on_event(&mut self, now: Instant, ev: Event) {
        self.note_cdr_gate(now);
        match ev {
            Event::Message {
                msg,
                source,
                at,
                screened,
                ..
            } => {
                self.sip.received(&msg);
                // Only connections the stranger opened: ours to a peer stay up. Known is what
                // the accept gate knows: a peer's, the front's, or a moved peer's old address
                // while its calls last (`close_unknown_connections` closes those after).
                let stranger = source.conn.filter(|c| {
                    self.tcp.is_inbound(*c) && !self.inbox.answers_from_peer(source.addr.ip())
                });
                // (Responses to requests of ours may follow: its reader's deadline ends it.)
                let request = matches!(msg, crate::sip::Message::Request(_));
                self.on_message(now, msg, source, at, screened);
                if let Some(conn) = stranger.filter(|_| request) {
                    // A stranger's connection gets its one answer (if any), then is closed.
                    self.perform(now);
                    self.tcp.close(conn);
                }
            }
            Event::Unparseable {
                raw,
                why,
                status,
                source,
            } => {
                if !self.inbox.drops_unparseable(source.transport.is_reliable()) {
                    let input = Input::Unparseable {
                        raw,
                        why,
                        status,
                        source,
                    };
                    self.core.handle_input(now, input);
                }
            }
            Event::TcpUp { conn, peer, tx } => {
                for failed in self.tcp.up(conn, peer, tx) {
                    self.core.handle_input(now, Input::SendFailed(failed));
                }
            }
            Event::TcpDown { conn } => {
                for input in self.tcp.down(conn).inputs() {
                    self.core.handle_input(now, input);
                }
            }
        }
        self.perform(now);
    }

    /// A message to the core, or, for new work that waited too long, its refusal.
    fn on_message(
        &mut self,
        now: Instant,
        msg: Message,
        source: Target,
        at: Instant,
        screened: bool,
    ) {
        let delay = now.saturating_duration_since(at);
        let reliable = source.transport.is_reliable();
        let ov = &self.inbox.overload;
        if self.inbox.drops_as_junk(&msg, delay, reliable) {
            return;
        }
        if !inbox::is_new_work(&msg) {
            return self.core.handle_input(now, Input::Message { msg, source });
        }
        if !self.inbox.measures_load(source.addr.ip()) {
            return self.core.handle_input(now, Input::Message { msg, source });
        }
        let verdict = if screened {
            ov.screened(now, delay)
        } else {
            let queue = if reliable {
                overload::Stage::CoreTcp
            } else {
                overload::Stage::CoreUdp
            };
            let from = (reliable, self.inbox.fair_slot(source.addr.ip()));
            ov.decide(now, (delay, queue), from)
        };
        match verdict {
            overload::Shed::Admit => self.core.handle_input(now, Input::Message { msg, source }),
            overload::Shed::Refuse => self
                .core
                .handle_input(now, Input::Overloaded { msg, source }),
            overload::Shed::Drop => {
                self.inbox.tally.count_dropped();
                metrics::refused("overload_drop");
            }
        }
    }

    /// One datagram for the call-back service.
    fn on_datagram(&mut self, now: Instant, dg: callback::Datagram) {
        self.note_cdr_gate(now);
        if let Some(cb) = self.callback.as_mut() {
            cb.on_datagram(now, &dg);
        }
        self.perform(now);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
