//! The tokio shell: sockets, timers, signals and the CDR writer around the sans-IO core.
//!
//! One task owns the [`B2bua`] and the timer store. Transport tasks parse what they receive
//! and hand messages to it over a bounded channel (a flood fills the channel and is dropped
//! at the socket, never queued without bound); the core's actions are performed right here.

mod media;
mod tcp;
mod timers;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::call::{Action, B2bua};
use crate::cdr::CdrWriter;
use crate::config::Config;
use crate::sip::{ConnId, Message, Target, Transport};
use crate::txn::{TimerConfig, TxnId};

pub use timers::TimerStore;

/// How many received messages may wait for the core before the transports start dropping.
const INBOX: usize = 16_384;
/// After SIGTERM and the drain period, how long BYEs get to be answered.
const HANGUP_GRACE: Duration = Duration::from_secs(4);

/// What transport tasks tell the core task.
// `Message` is the large variant and the common one; see `Action`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Event {
    Message {
        msg: Message,
        source: Target,
    },
    SendFailed(TxnId),
    TcpUp {
        conn: ConnId,
        peer: SocketAddr,
        tx: mpsc::Sender<Bytes>,
    },
    TcpDown {
        conn: ConnId,
    },
}

/// Bind the listeners, then run until SIGTERM/SIGINT has drained the calls.
pub async fn run(config_path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let (tx, rx) = mpsc::channel(INBOX);
    let mut udp_socks = Vec::new();
    let mut tcp_bound = Vec::new();
    for l in &cfg.listen {
        match l.transport {
            Transport::Udp => {
                let sock =
                    udp::bind(l.addr).with_context(|| format!("cannot bind udp:{}", l.addr))?;
                let sock = Arc::new(sock);
                tokio::spawn(udp::reader(sock.clone(), cfg.max_message_bytes, tx.clone()));
                udp_socks.push(sock);
            }
            Transport::Tcp => {
                let listener = tokio::net::TcpListener::bind(l.addr)
                    .await
                    .with_context(|| format!("cannot bind tcp:{}", l.addr))?;
                tcp_bound.push(listener.local_addr()?);
                tokio::spawn(tcp::accept(listener, cfg.max_message_bytes, tx.clone()));
            }
        }
    }
    if let Some(m) = cfg.metrics_listen {
        crate::ops::metrics::install(m)
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {m}: {e}"))?;
    }
    let (wav, wav_thread) = crate::media::record::wav::WavWriters::start()
        .context("cannot start the recording writer")?;
    let cdr = CdrWriter::open(&cfg.cdr_path)
        .with_context(|| format!("cannot open CDR file {}", cfg.cdr_path.display()))?;
    info!(
        listen = ?cfg.listen.iter().map(|l| format!("{}:{}", l.transport, l.addr)).collect::<Vec<_>>(),
        profiles = cfg.profiles.len(),
        routes = cfg.routes.len(),
        cdr = %cfg.cdr_path.display(),
        "trunkgate running"
    );
    let core = B2bua::new(
        cfg.clone(),
        TimerConfig::default(),
        rand::random(),
        Instant::now(),
        SystemTime::now(),
    );
    let mut shell = Shell {
        core,
        timers: TimerStore::default(),
        udp: udp_socks,
        tcp: tcp::Registry::new(tx.clone(), cfg.max_message_bytes),
        cdr,
        config_path,
        actions: Vec::with_capacity(64),
        media: media::Relays::new(cfg.media_ip, Some(wav)),
    };
    let result = shell.run(rx).await;
    // Finalise every recording still open before the process exits.
    drop(shell);
    if wav_thread.join().is_err() {
        error!("the recording writer stopped abnormally");
    }
    result
}

struct Shell {
    core: B2bua,
    timers: TimerStore,
    udp: Vec<Arc<UdpSocket>>,
    tcp: tcp::Registry,
    cdr: CdrWriter,
    config_path: PathBuf,
    actions: Vec<Action>,
    media: media::Relays,
}

impl Shell {
    async fn run(&mut self, mut rx: mpsc::Receiver<Event>) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        // Set at SIGTERM: first when to hang up what is left, then when to stop regardless.
        let mut gauges = tokio::time::interval(Duration::from_secs(1));
        // Recordings are drained in 100 ms steps: bounded memory per call.
        let mut record_tick = tokio::time::interval(Duration::from_millis(100));
        let mut drain_until: Option<Instant> = None;
        let mut stop_at: Option<Instant> = None;
        loop {
            let next = self.timers.next_deadline();
            let wake = [next, drain_until, stop_at].into_iter().flatten().min();
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    let now = Instant::now();
                    self.on_event(now, ev);
                    // Take what else is queued before performing actions: fewer wakeups.
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(ev) => self.on_event(now, ev),
                            Err(_) => break,
                        }
                    }
                }
                _ = sleep_until(wake), if wake.is_some() => {}
                _ = hup.recv() => self.reload(),
                _ = record_tick.tick() => self.media.tick(Instant::now()),
                _ = gauges.tick() => {
                    let now = Instant::now();
                    for call in self.media.silent_calls(now) {
                        self.core.on_media_timeout(now, call);
                    }
                    self.perform();
                    crate::ops::metrics::active_calls(self.core.active_calls());
                    let st = self.core.stats();
                    debug!(
                        calls = st.calls,
                        dialogs = st.dialogs,
                        client_txns = st.client_txns,
                        server_txns = st.server_txns,
                        timers = self.timers.len(),
                        rtp_streams = self.media.streams(),
                        "core state"
                    );
                }
                _ = term.recv(), if drain_until.is_none() => {
                    drain_until = Some(self.start_drain());
                }
                _ = int.recv(), if drain_until.is_none() => {
                    drain_until = Some(self.start_drain());
                }
            }
            let now = Instant::now();
            while let Some(id) = self.timers.pop_due(now) {
                self.core.on_timer(now, id);
                self.perform();
            }
            self.perform();
            if let Some(d) = drain_until {
                if stop_at.is_none() && (self.core.active_calls() == 0 || now >= d) {
                    if self.core.active_calls() > 0 {
                        info!(
                            calls = self.core.active_calls(),
                            "drain period over: hanging up the remaining calls"
                        );
                        self.core.hangup_all(now);
                        self.perform();
                    }
                    stop_at = Some(now + HANGUP_GRACE);
                }
                if let Some(s) = stop_at
                    && (self.core.active_calls() == 0 || now >= s)
                {
                    break;
                }
            }
        }
        info!("trunkgate stopped");
        self.cdr.close();
        Ok(())
    }

    fn start_drain(&mut self) -> Instant {
        let calls = self.core.start_drain();
        let drain = self.core.config().drain;
        info!(
            calls,
            drain_s = drain.as_secs(),
            "shutting down: refusing new calls, waiting for calls to end"
        );
        Instant::now() + drain
    }

    fn reload(&mut self) {
        match Config::load(&self.config_path) {
            Ok(cfg) => {
                let old = self.core.config();
                if cfg.listen != old.listen || cfg.cdr_path != old.cdr_path {
                    warn!(
                        "[sip] listen and [cdr] path changes need a restart; the rest is reloaded"
                    );
                }
                info!(
                    profiles = cfg.profiles.len(),
                    routes = cfg.routes.len(),
                    "configuration reloaded"
                );
                self.core.set_config(Arc::new(cfg));
            }
            Err(errs) => {
                for e in &errs.0 {
                    error!("{e}");
                }
                error!("reload refused: the running configuration stays");
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Message { msg, source } => self.core.on_message(now, msg, source),
            Event::SendFailed(txn) => self.core.on_send_failed(now, txn),
            Event::TcpUp { conn, peer, tx } => {
                for failed in self.tcp.up(conn, peer, tx) {
                    self.core.on_send_failed(now, failed);
                }
            }
            Event::TcpDown { conn } => {
                for failed in self.tcp.down(conn) {
                    self.core.on_send_failed(now, failed);
                }
            }
        }
        self.perform();
    }

    /// Carry out what the core asked for.
    fn perform(&mut self) {
        self.core.drain_actions_into(&mut self.actions);
        let mut actions = std::mem::take(&mut self.actions);
        for a in actions.drain(..) {
            match a {
                Action::Send { target, wire, txn } => {
                    let bytes = wire;
                    match target.transport {
                        Transport::Udp => self.send_udp(target.addr, bytes),
                        Transport::Tcp => self.tcp.send(target, bytes, txn),
                    }
                }
                Action::SetTimer { id, at } => self.timers.set(id, at),
                Action::ClearTimer(id) => self.timers.clear(&id),
                Action::Cdr(rec) => self.cdr.write(*rec),
                Action::Media(m) => self.media.apply(m),
            }
        }
        self.actions = actions;
    }

    fn send_udp(&self, to: SocketAddr, bytes: Bytes) {
        let Some(sock) = self
            .udp
            .iter()
            .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == to.is_ipv4()))
            .or(self.udp.first())
        else {
            warn!(%to, "no UDP listener to send from");
            return;
        };
        match sock.try_send_to(&bytes, to) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let sock = sock.clone();
                tokio::spawn(async move {
                    if let Err(e) = sock.send_to(&bytes, to).await {
                        warn!(%to, error = %e, "UDP send failed");
                    }
                });
            }
            // ICMP errors from earlier sends surface here; UDP has no delivery to report.
            Err(e) => warn!(%to, error = %e, "UDP send failed"),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
