//! The call-back service in the shell: its UDP socket (bind, read datagrams into a bounded
//! channel for the core task, send what the service asks for) and [`Callback`], which runs
//! the sans-IO `callback::Service` beside the core. Parsing and state are the service's,
//! which also has the final word on the allow-list; the reader applies the same list first
//! so a stranger's flood cannot fill the channel and crowd out the application servers.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use tracing::{debug, info, warn};

use crate::call::CallbackReport;
use crate::callback::metrics::DROPPED;
use crate::callback::protocol::MAX_DATAGRAM;
use crate::callback::{Command, Output as ServiceOutput, Service};
use crate::config::{CallbackConfig, Config};

/// Datagrams waiting for the core at most; more are dropped at the socket. A REQUEST costs
/// the AS nothing to resend, and an unbounded queue would let a flood grow memory.
pub const INBOX: usize = 256;

/// Bytes read of a datagram: a message of `MAX_DATAGRAM` bytes with the longest signature,
/// and one more. Longer ones are cut: enough for the service to see that they are too long
/// (a signed one cut fails its check), and no more memory than that per queued datagram.
const READ_MAX: usize = MAX_DATAGRAM + crate::callback::signature::MAX_SUFFIX + 1;

/// One received datagram, at most [`READ_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub src: SocketAddr,
    pub bytes: Bytes,
}

/// The bound socket; sends go out from it so the AS sees answers from the address it used.
#[derive(Debug, Clone)]
pub struct CallbackSocket {
    sock: Arc<UdpSocket>,
    /// `[callback] allow` / `allow_any`, shared with the reader; replaced on reload.
    allow: Arc<RwLock<CallbackConfig>>,
    /// Datagrams dropped because the inbox was full.
    dropped: Arc<AtomicU64>,
}

impl CallbackSocket {
    /// Bind `cfg.listen` and start the reader task. `None` (`[callback] port = 0`) opens no
    /// socket at all and returns `Ok(None)`. Must be called inside the tokio runtime.
    pub fn start(
        cfg: &CallbackConfig,
    ) -> std::io::Result<Option<(CallbackSocket, mpsc::Receiver<Datagram>)>> {
        Self::start_with_inbox(cfg, INBOX)
    }

    fn start_with_inbox(
        cfg: &CallbackConfig,
        inbox: usize,
    ) -> std::io::Result<Option<(CallbackSocket, mpsc::Receiver<Datagram>)>> {
        let Some(addr) = cfg.listen else {
            return Ok(None);
        };
        let std_sock = super::bind::udp(addr)?;
        // Each datagram's destination on IPv6: on `[::]` that alone tells an IPv6 packet
        // posing as an allowed IPv4 server (`::ffff:127.0.0.1`) from a real IPv4 one.
        if addr.is_ipv6()
            && let Err(e) = nix::sys::socket::setsockopt(
                &std_sock,
                nix::sys::socket::sockopt::Ipv6RecvPacketInfo,
                &true,
            )
        {
            // Without it a mapped source cannot be told apart on `[::]`: refused (below).
            warn!(error = %e, "no IPv6 packet info on the call-back socket");
        }
        let sock = Arc::new(UdpSocket::from_std(std_sock)?);
        let allow = Arc::new(RwLock::new(cfg.clone()));
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel(inbox.max(1));
        tokio::spawn(reader(sock.clone(), allow.clone(), tx, dropped.clone()));
        Ok(Some((
            CallbackSocket {
                sock,
                allow,
                dropped,
            },
            rx,
        )))
    }

    /// A reloaded `[callback]`: the reader filters with its allow-list from now on. (A
    /// changed `listen` or `port` needs a restart.)
    pub fn set_allow(&self, cfg: &CallbackConfig) {
        *self
            .allow
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cfg.clone();
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Datagrams dropped since the last call (for the shell's periodic summary).
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Send one datagram without waiting. A full socket buffer drops it: the service
    /// resends RESPONSEs until acknowledged, and the AS resends what got no answer.
    pub fn send(&self, to: SocketAddr, bytes: &[u8]) {
        if let Err(e) = self.sock.try_send_to(bytes, to) {
            // ICMP errors from earlier sends surface here too; UDP has no delivery to report.
            debug!(%to, error = %e, "call-back datagram not sent");
            metrics::counter!(DROPPED, "reason" => "send_failed").increment(1);
        }
    }
}

/// The service as the shell runs it: its socket and its state. The shell hands it datagrams
/// and the call layer's reports, and passes its commands to the core.
pub struct Callback {
    sock: CallbackSocket,
    service: Service,
    /// Where the newest `ts` dated ahead is kept for the next process (signed datagrams
    /// only), and the file's path.
    floor: Option<floor::Floor>,
    floor_path: std::path::PathBuf,
    /// Panics caught in the service (defects), and until when its timer is not run after
    /// one panicked: a timer that panics each time it is due would otherwise be due for ever
    /// and keep the core task from its queues.
    faults: u64,
    timer_rest: Option<Instant>,
    /// A fault for the test that a timer that panics rests.
    #[cfg(test)]
    panic_on_timer: bool,
}

/// How long the service's timer rests after its handling panicked.
const TIMER_REST: std::time::Duration = std::time::Duration::from_secs(1);

impl Callback {
    /// Bind `[callback]` and start the service; `Ok(None)` when `port = 0` (no socket).
    pub fn start(
        cfg: &Arc<Config>,
        now: Instant,
    ) -> std::io::Result<Option<(Callback, mpsc::Receiver<Datagram>)>> {
        let Some((sock, rx)) = CallbackSocket::start(&cfg.callback)? else {
            return Ok(None);
        };
        let at = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
        info!(listen = %at, allow = ?cfg.callback.allow, "call-back service listening");
        if cfg.callback.keys.is_some() {
            info!("call-back datagrams must be signed ([callback] secret_file)");
        } else if cfg.callback.open_to_anyone() {
            warn!(
                "[callback] allow_any = true (or an allow of every address): anyone who can reach the call-back port can place calls at your cost"
            );
        }
        let wall = std::time::SystemTime::now();
        let mut service = Service::new(cfg.clone(), now, wall);
        let floor_path = floor::path_of(cfg);
        let now_s = wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(ts) = floor::read(&floor_path, now_s) {
            service.refuse_up_to(ts);
        }
        let mut cb = Callback {
            sock,
            service,
            floor: None,
            floor_path,
            faults: 0,
            timer_rest: None,
            #[cfg(test)]
            panic_on_timer: false,
        };
        cb.keep_floor(cfg);
        Ok(Some((cb, rx)))
    }

    /// With signed datagrams, keep the newest `ts` dated ahead for the next process.
    fn keep_floor(&mut self, cfg: &Config) {
        if cfg.callback.keys.is_none() || self.floor.is_some() {
            return;
        }
        match floor::Floor::start(self.floor_path.clone()) {
            Ok(f) => self.floor = Some(f),
            Err(e) => warn!(error = %e, "cannot start the call-back ts keeper"),
        }
    }

    /// Run `f` on the service. The core task runs it, beside every call: a panic in it (a
    /// defect) costs the datagram, report or timer that set it off, and is counted
    /// (`trunkgate_faults_total{place="callback"}`), where unwound it would end the process
    /// and every call with it, CDRs unwritten. `None`: it panicked.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Service) -> T) -> Option<T> {
        let service = &mut self.service;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(service))) {
            Ok(t) => Some(t),
            Err(_) => {
                self.faults = self.faults.saturating_add(1);
                crate::ops::metrics::fault("callback");
                if self.faults.is_power_of_two() {
                    tracing::error!(
                        faults = self.faults,
                        "the call-back service panicked (a defect): what set it off was dropped, the rest goes on"
                    );
                }
                None
            }
        }
    }

    pub fn on_datagram(&mut self, now: Instant, dg: &Datagram) {
        let ahead = self.guarded(|s| {
            // A fault for the test that a panic here costs one datagram, not the process.
            #[cfg(test)]
            if dg.bytes.starts_with(b"PANIC-TEST") {
                panic!("a test fault");
            }
            s.handle_datagram(now, std::time::SystemTime::now(), dg.src, &dg.bytes);
            s.take_ahead()
        });
        if let (Some(Some(ts)), Some(f)) = (ahead, &self.floor) {
            f.store(ts);
        }
    }

    /// The call layer's news of a call-back.
    pub fn report(&mut self, now: Instant, report: CallbackReport) {
        self.guarded(|s| match report {
            CallbackReport::Progress { id, state } => s.on_progress(now, &id, state),
            CallbackReport::Ended { id, end } => s.on_ended(now, &id, end),
        });
    }

    /// Send what the service wants sent; returns its commands for the call layer.
    pub fn flush(&mut self) -> Vec<Command> {
        let mut commands = Vec::new();
        while let Some(Some(o)) = self.guarded(Service::poll_output) {
            match o {
                ServiceOutput::Transmit { to, bytes } => self.sock.send(to, &bytes),
                ServiceOutput::Command(c) => commands.push(c),
            }
        }
        commands
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = self.service.poll_timeout()?;
        Some(self.timer_rest.map_or(due, |rest| due.max(rest)))
    }

    /// Once a second: the wall clock, so that one set right soon after start is seen even
    /// while no datagram comes.
    pub fn every_second(&mut self, now: Instant) {
        self.guarded(|s| s.observe_clock(now, std::time::SystemTime::now()));
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.timer_rest = None;
            #[cfg(test)]
            let fail = self.panic_on_timer;
            #[cfg(not(test))]
            let fail = false;
            let ran = self.guarded(|s| {
                assert!(!fail, "a test fault");
                s.handle_timeout(now)
            });
            if ran.is_none() {
                self.timer_rest = Some(now + TIMER_REST);
            }
        }
    }

    /// A reloaded configuration (the allow-list applies at the socket from now on).
    pub fn reconfigure(&mut self, cfg: Arc<Config>) {
        self.sock.set_allow(&cfg.callback);
        self.keep_floor(&cfg);
        self.service.set_config(cfg);
    }

    /// Shutting down: new REQUESTs are refused.
    pub fn drain(&mut self) {
        self.service.start_drain();
    }

    /// Whether a RESPONSE still waits for the AS's ACK.
    pub fn awaiting_acks(&self) -> bool {
        self.service.awaiting_acks()
    }

    /// Call-backs in progress (`trunkgate_callback_active`).
    pub fn active(&self) -> usize {
        self.service.active()
    }

    /// Datagrams the socket dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.sock.take_dropped()
    }
}

/// The next call-back datagram; never, without the service.
pub async fn recv(rx: &mut Option<mpsc::Receiver<Datagram>>) -> Option<Datagram> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the reader passes datagrams from `ip` on. (Only a whole configuration is ever
/// written: one a panic left poisoned is still one.)
fn allowed(allow: &RwLock<CallbackConfig>, ip: IpAddr) -> bool {
    allow
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .allows(ip)
}

/// Why the reader drops a datagram that must be signed and is not (`Err`), or its MAC
/// (`None`: no secret is set): checked as it is read, so a forged datagram (UDP sources can
/// be spoofed, and `allow_any` leaves the key as the only gate) costs one MAC check and is
/// never queued for the service, which the core runs in turn with SIP work. The service
/// checks again, and keeps what it needs against replay.
fn signature(cfg: &RwLock<CallbackConfig>, bytes: &[u8]) -> Result<Option<[u8; 32]>, &'static str> {
    let cfg = cfg
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(keys) = cfg.keys.as_ref() else {
        return Ok(None);
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::callback::signature::verify(bytes, crate::callback::signature::Signer::As, keys, now_s)
        .map(|v| Some(v.mac))
        .map_err(|e| e.reason())
}

/// Read datagrams until the channel closes (the core task ended).
async fn reader(
    sock: Arc<UdpSocket>,
    allow: Arc<RwLock<CallbackConfig>>,
    tx: mpsc::Sender<Datagram>,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; READ_MAX];
    let local = sock
        .local_addr()
        .map_or(std::net::Ipv6Addr::UNSPECIFIED.into(), |a| a.ip());
    let mut errors = super::read_errors::ReadErrors::default();
    let mut empty_at = std::time::Instant::now();
    let mut repeats = crate::callback::repeats::Repeats::default();
    loop {
        let (n, src, _, dst) = match super::udp::recv_stamped(&sock, &mut buf, &mut empty_at).await
        {
            Ok(x) => x,
            Err(e) => {
                // Linux reports ICMP port-unreachable for earlier sends here; keep serving.
                debug!(error = %e, "call-back receive error");
                errors.pause_after(&e, "callback").await;
                continue;
            }
        };
        errors.ok();
        // An IPv6 packet posing as an allowed IPv4 server places calls at our cost.
        if super::bind::posing_as_ipv4(src.ip(), local, dst) || !allowed(&allow, src.ip()) {
            metrics::counter!(DROPPED, "reason" => "not_allowed").increment(1);
            continue;
        }
        let data = buf.get(..n).unwrap_or(&buf);
        // A panic in the check (a defect) drops the datagram, not the reader: unwound, it
        // would leave the port deaf for the rest of the process.
        let signed = std::panic::catch_unwind(|| signature(&allow, data)).unwrap_or_else(|_| {
            crate::ops::metrics::fault("callback");
            Err("panicked")
        });
        let mac = match signed {
            Ok(mac) => mac,
            Err(why) => {
                metrics::counter!(DROPPED, "reason" => why).increment(1);
                continue;
            }
        };
        // A signed datagram's copies (a capture sent in a loop) pass on a resend schedule.
        if let Some(mac) = mac
            && !repeats.pass(std::time::Instant::now(), &mac)
        {
            metrics::counter!(DROPPED, "reason" => "resent_too_soon").increment(1);
            continue;
        }
        let bytes = Bytes::copy_from_slice(data);
        match tx.try_send(Datagram { src, bytes }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Summed up in the shell's 10 s log line, not logged one by one.
                dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(DROPPED, "reason" => "inbox_full").increment(1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

mod floor;

#[cfg(test)]
mod tests;
