//! `gateway.toml` and `profiles/*.toml`: parsing, validation with `file:line:col` errors, and
//! the immutable snapshot the rest of the gateway reads (`Arc<Config>`).
//!
//! Relative paths in `gateway.toml` (`profiles`, `[cdr] path`) are relative to the directory
//! holding `gateway.toml`, so the gateway behaves the same whatever directory it starts in.

mod auth;
mod callback;
mod cdr;
mod error;
mod families;
mod file;
mod front;
mod limits;
mod lookup;
mod media;
pub mod net;
mod peer_index;
mod places;
pub mod prefix_table;
mod process;
mod profile;
pub(crate) mod read;
mod routes;
mod same;
mod session_timer;
mod sip;
mod toml_read;
pub use process::MetricsConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

pub use auth::local_port;
pub use callback::CallbackConfig;
pub use error::{ConfigError, ConfigErrors};
use families::family_warnings;
use file::GatewayFile;
pub use limits::{CallLimits, PeerLimits, Protect, UnknownSources, own_tcp_reserve};
pub use media::MAX_MEDIA_THREADS;
pub use profile::{DEFAULT_PROBE, PING_RANGE, PROBE_RANGE, Ping};
use profile::{ProfileSource, load_profiles, profile_errors_beside};
pub use routes::{Route, RouteFrom};
pub use sip::parse_transport_addr;
use toml_read::toml_error;

use crate::interop::causes::CausePolicy;
use crate::interop::prack::PrackPolicy;
use crate::interop::uri::UriPolicy;
use crate::media::Latch;
use crate::sip::{Target, Transport};

/// Ring timeout when neither the route nor the profile sets one.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest `ring_timeout_s` (a day): a deadline past it is no ring timeout, and a huge one
/// would overflow the clock.
const MAX_RING_TIMEOUT_S: u64 = 86_400;

/// A route's or profile's `ring_timeout_s`, checked.
pub(crate) fn ring_timeout_s(s: u64) -> Result<Duration, &'static str> {
    if (1..=MAX_RING_TIMEOUT_S).contains(&s) {
        Ok(Duration::from_secs(s))
    } else {
        Err("ring_timeout_s must be 1..=86400")
    }
}

/// A peer's name: the profile file stem. Shared: every call that counts against a peer, or
/// routes to it, holds the configuration's one copy of its name, not a copy of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerName(pub std::sync::Arc<str>);

impl PeerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which side of the gateway a peer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A carrier trunk.
    Trunk,
    /// A phone or PBX of our own.
    Internal,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trunk => "trunk",
            Role::Internal => "internal",
        }
    }
}

/// One peer's interop profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: PeerName,
    pub role: Role,
    /// Where calls to this peer are sent.
    pub address: Target,
    /// Source networks that identify inbound traffic from this peer.
    pub matches: Vec<IpNet>,
    /// Host part of SIP URIs built toward this peer.
    pub domain: String,
    pub ring_timeout: Option<Duration>,
    /// `[uri]`: the form of URIs and numbers toward this peer.
    pub uri: UriPolicy,
    /// `[prack]`: 100rel on this peer's leg.
    pub prack: PrackPolicy,
    /// `[sdp] ptime`: written into every SDP sent to this peer (None: leave as is).
    pub ptime: Option<u16>,
    /// `[causes]`.
    pub causes: CausePolicy,
    /// `[media] anchor`: relay this peer's RTP through the gateway.
    pub anchor: bool,
    /// `[media] record`: record calls that touch this peer (implies anchoring).
    pub record: bool,
    /// `[media] latch`.
    pub latch: Latch,
    /// `[media] rtp_timeout_s`: end the call after this long without RTP (None: off).
    pub rtp_timeout: Option<Duration>,
    /// `[media] rtp_hold_timeout_s`: the media timeout while the call is on hold (None: no
    /// limit while held). Only applies when `rtp_timeout` is set.
    pub rtp_hold_timeout: Option<Duration>,
    /// `[media] repacketize`: re-chunk G.711 sent to this peer to its `[sdp] ptime`.
    pub repacketize: bool,
    /// `[media] rebind_after_silence_ms`: how long this peer's latched RTP source must be
    /// silent before its stream may continue from another address (a NAT rebinding).
    pub rebind_after_silence: Duration,
    /// `[media] max_streams`: streams an SDP offer from this peer may ask the gateway to
    /// relay (None: the gateway's `[media] max_streams`).
    pub max_streams: Option<usize>,
    /// `[media] networks`: where this peer's media may be (None: anywhere). The relay sends
    /// nothing to an SDP address outside them and takes no packet from outside them.
    pub media_networks: Option<Arc<[IpNet]>>,
    /// `[limits]`: this peer's share of the gateway.
    pub limits: PeerLimits,
    /// `[auth]`: digest credentials for this peer's challenges (its `Debug` hides the secret).
    pub auth: Option<Arc<crate::auth::Credentials>>,
    /// `[register] enabled = true`: the registration the gateway keeps with this peer.
    pub register: Option<crate::auth::RegisterPolicy>,
    /// `[sip] allow`: the methods this peer takes, whatever its own `Allow` says (None: trust
    /// its `Allow`).
    pub allow: Option<Vec<String>>,
    /// `[headers]`: which headers from the other leg reach this peer, and our User-Agent.
    pub headers: crate::interop::headers::HeaderPolicy,
    /// `[sip] invite_timeout_s`: an INVITE to this peer that has had no response at all
    /// (not even 100 Trying) this long is given up for the route's next peer (None: Timer
    /// B, 32 s).
    pub invite_timeout: Option<Duration>,
    /// `[sip] probe_s`: an answered call's leg toward this peer that runs no session timer
    /// is sent an in-dialog OPTIONS this often, and the call released when the peer no
    /// longer has it (`call/probe.rs`: 481, 408 or no answer at once; three doubtful
    /// outcomes in a row). None: never.
    pub probe: Option<Duration>,
    /// `[sip] ping_s`, `ping_failures`: the peer is sent an OPTIONS this often, outside any
    /// call, and no call while it answers none (`call/peer_health.rs`). None: never.
    pub ping: Option<Ping>,
    /// `[transfer] mode`: what a REFER from this peer does.
    pub transfer: crate::interop::transfer::TransferMode,
    /// `[transfer] to_trunks`: a REFER from this peer may go to a trunk (`role = "trunk"`),
    /// which may place the transfer's call itself, around the gateway.
    pub transfer_to_trunks: bool,
    /// `[session_timer]`: RFC 4028 on this peer's leg.
    pub session_timer: crate::interop::session_timer::SessionTimerPolicy,
}

/// A `[sip] listen` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The validated configuration. Immutable: a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    /// Host written into Via, Contact and the URIs the gateway builds.
    pub advertise: String,
    /// `[sip] front`: the SIP front this instance runs behind (see "Scaling out" in the
    /// README). Every request toward a peer goes to it, and only from it is the
    /// `X-Trunkgate-Source` header believed.
    pub front: Option<Target>,
    pub cdr_path: PathBuf,
    /// `[cdr] fail_closed`: refuse new calls while CDRs cannot be written.
    pub cdr_fail_closed: bool,
    /// `[cdr] max_pending`: waiting CDRs at which new calls are refused.
    pub cdr_max_pending: usize,
    /// `[cdr] refused_rate`: CDRs of refused INVITEs written per second for each peer (the
    /// rest are counted); None writes every one.
    pub cdr_refused_rate: Option<std::num::NonZeroU32>,
    /// `[cdr] refused_rate_total`: the same for all peers together; None: no such cap.
    pub cdr_refused_rate_total: Option<std::num::NonZeroU32>,
    pub max_message_bytes: usize,
    /// `[protect]`: what strangers and floods get.
    pub protect: Protect,
    /// `[limits]`: the whole gateway's.
    pub limits: CallLimits,
    pub drain: Duration,
    /// `[media] advertise`: the address written into anchored SDP, where relay sockets bind.
    pub media_ip: IpAddr,
    /// `[media] ports`: the RTP/RTCP port range.
    pub media_ports: (u16, u16),
    /// `[media] max_streams`: media sections per SDP that get relay ports (active, over a
    /// transport the relay carries); more: 488.
    pub media_max_streams: usize,
    /// `[media] threads`: relay threads (0 in the file: one per core).
    pub media_threads: usize,
    /// `[media] threads` was 0 or unset: `media_threads` is the core count at load time
    /// (which a CPU quota or affinity may change under a running process).
    pub media_threads_auto: bool,
    /// This host's interface addresses, loopback aside ([`net::host_ips`], read by
    /// [`Config::load`]; empty from [`Config::from_texts`]): the relay sends no RTP there
    /// before a leg's own packets come from there, nor takes an IPv6 one as a leg's source
    /// unless its signalling comes from this host (shared with each relayed stream).
    pub host_ips: std::sync::Arc<[IpAddr]>,
    /// `[recording] dir`.
    pub recording_dir: PathBuf,
    /// `[recording] format = "stereo"` (else mixed).
    pub recording_stereo: bool,
    /// `[recording] jitter_ms`.
    pub recording_jitter: Duration,
    /// `[recording] min_free_mb`, in bytes (0: none kept free).
    pub recording_min_free: u64,
    /// `[metrics]`: the `/metrics` address (None when disabled), who may scrape it.
    pub metrics: process::MetricsConfig,
    pub profiles: HashMap<PeerName, Arc<Profile>>,
    /// `profiles`' sources and addresses, indexed at the first lookup
    /// ([`Config::peer_for_source`]); edit `profiles` only before asking.
    pub peers: peer_index::PeerLookup,
    pub routes: Vec<Route>,
    /// `[callback]`.
    pub callback: CallbackConfig,
    /// Problems that do not stop the gateway (messages start with `warning:`): `check`
    /// prints them, `run` and reload log them.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// Read and validate `gateway.toml` and every profile. All problems are reported at
    /// once: of each file, every syntax error, or every misspelt key and its first wrong
    /// type (`toml_read`); of the files that read, every value and range problem.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = match read::read_text(path) {
            Ok(t) => t,
            Err(e) => return Err(ConfigErrors(vec![ConfigError::file(path, e)])),
        };
        let mut cfg = Config::from_source(path, &text, ProfileSource::Folder)?;
        match net::host_ips() {
            Ok(ips) => {
                if let Some(w) = families::relay_not_here(&cfg, &ips) {
                    cfg.warnings.push(ConfigError::file(path, w));
                }
                cfg.host_ips = ips.into();
            }
            Err(e) => cfg.warnings.push(ConfigError::file(
                path,
                format!(
                    "warning: cannot list this host's addresses ({e}): the relay may send RTP \
                     to an address of this host other than [media] advertise and the listeners'"
                ),
            )),
        }
        Ok(cfg)
    }

    /// [`Config::load`] from texts in memory: `gateway` as if read from `path`, and the
    /// profiles, each with the path its errors name (only a `password_file` is still read
    /// from disk). For tools and fuzzing; the gateway itself uses `load`.
    pub fn from_texts(
        path: &Path,
        gateway: &str,
        profiles: &[(PathBuf, String)],
    ) -> Result<Config, ConfigErrors> {
        Config::from_source(path, gateway, ProfileSource::Texts(profiles))
    }

    fn from_source(
        path: &Path,
        text: &str,
        profile_source: ProfileSource,
    ) -> Result<Config, ConfigErrors> {
        let mut errs = Vec::new();
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let file: GatewayFile = match toml_read::from_toml(text) {
            Ok(f) => f,
            Err(es) => {
                let found = es
                    .iter()
                    .map(|e| toml_error::<GatewayFile>(path, text, e))
                    .collect();
                return Err(profile_errors_beside(found, text, &base, profile_source));
            }
        };
        let at = |span: std::ops::Range<usize>, msg: String| {
            ConfigError::at(path, text, span.start, msg)
        };
        let sip::Sip {
            listen,
            front,
            advertise,
        } = sip::sip(&file.sip, &at, &mut errs);
        let at_offset = |offset: usize, msg: String| ConfigError::at(path, text, offset, msg);
        let protect = limits::protect(&file.protect, at_offset, &mut errs);
        let global_limits = limits::global_limits(&file.limits, at_offset, &mut errs);
        let max_message_bytes = protect.max_message_bytes;

        let cdr::Cdr {
            path: cdr_path,
            max_pending: cdr_max_pending,
            refused_rate: cdr_refused_rate,
            refused_rate_total: cdr_refused_rate_total,
        } = cdr::cdr(&file.cdr, &at, &mut errs);

        let media::Media {
            ip: media_ip,
            ports: media_ports,
            max_streams: media_max_streams,
            threads: media_threads,
            threads_auto: media_threads_auto,
        } = media::media(&file.media, &advertise, &at, &mut errs);
        let media::Recording {
            dir: recording_dir,
            stereo: recording_stereo,
            jitter: recording_jitter,
            min_free: recording_min_free,
        } = media::recording(&file.recording, &base, &at, &mut errs);
        let mut warnings = Vec::new();
        let metrics = process::metrics(&file.metrics, &at, &mut errs, &mut warnings);

        let profiles_name = file.profiles.as_ref().map_or("profiles", |p| p.get_ref());
        let profiles_dir = base.join(profiles_name);
        // A folder that cannot be read (or an empty name, gateway.toml's own folder) is
        // reported where it is named (`profiles = ...`, or gateway.toml itself for the
        // default), once: the routes and the call-back's peer are then not reported unknown
        // one by one.
        let mut no_folder = false;
        let sources = match read::names_a_folder(profiles_name)
            .map_err(|why| format!("profiles {why}"))
            .and_then(|()| {
                (profile_source.read(&profiles_dir, &mut errs, &mut warnings)).map_err(|e| {
                    let dir = profiles_dir.display();
                    format!("cannot read the profiles folder {dir}: {e}")
                })
            }) {
            Ok(s) => s,
            Err(msg) => {
                no_folder = true;
                errs.push(match &file.profiles {
                    Some(p) => at(p.span(), msg),
                    None => ConfigError::file(path, format!("{msg} (set `profiles`)")),
                });
                Vec::new()
            }
        };
        let profile::Loaded {
            profiles,
            places,
            broken,
        } = load_profiles(sources, &mut errs, &mut warnings);
        // Anchored SDP must name an address the peers can reach; a host name in `[sip]
        // advertise` gives none, and loopback would leave every anchored call silent.
        if file.media.advertise.is_none()
            && sip::advertise_ip(&advertise).is_none()
            && let Some(p) = profiles.values().find(|p| p.anchor || p.record)
        {
            errs.push(at(
                file.sip.advertise.span(),
                format!(
                    "[media] advertise must be set: [sip] advertise is not an IP address, \
                     and profile {:?} anchors media",
                    p.name.0
                ),
            ));
        }
        // (Every loaded profile has its places; a file-level error should one not.)
        let places_of = |p: &Profile| {
            places.get(&p.name).cloned().unwrap_or_else(|| {
                profile::Places::unknown(profiles_dir.join(format!("{}.toml", p.name.0)))
            })
        };
        for p in profiles.values() {
            // Behind a front, peers are told the front's address (its Record-Route), not
            // ours: what `[sip] advertise` is says nothing to them.
            let told = front.is_none().then_some(advertise.as_str());
            let at = places_of(p);
            family_warnings(p, &at, told, media_ip, &listen, &mut warnings);
            families::listener_errors(p, &at, &listen, &advertise, (&mut errs, &mut warnings));
        }
        let past = limits::tcp_trunks_past_reserve(&protect, profiles.values().map(|p| p.address));
        warnings.extend(past.map(|w| ConfigError::file(path, w)));
        if let Some(f) = front {
            if let Some(w) = families::front_cannot_reach(&advertise, f.addr.ip()) {
                warnings.push(at(file.sip.advertise.span(), w));
            }
            front::checks(
                f,
                &profiles,
                &protect,
                &places_of,
                path,
                &mut errs,
                &mut warnings,
            );
        }
        // A peer whose profile file has errors is already reported; routes naming it are not
        // a second problem. Else the file an unknown peer's profile would be, as written.
        let missing = |name: &PeerName| {
            let known = no_folder || profiles.contains_key(name) || broken.contains(name.as_str());
            (!known).then(|| format!("{profiles_name}/{name}.toml"))
        };
        let routes = routes::routes(file.route, path, &missing, &at, &mut errs, &mut warnings);
        if let Some(w) = (front.is_some())
            .then(|| lookup::longest_ring(&routes, &profiles))
            .and_then(front::rings_past_front)
        {
            warnings.push(ConfigError::file(path, w));
        }
        let callback = callback::load(
            &file.callback,
            &file.sip,
            &callback::Ctx {
                path,
                text,
                missing_peer: &missing,
            },
            &mut errs,
            &mut warnings,
        );

        let drain = process::drain(&file.shutdown, &at, &mut errs, &mut warnings);
        // In the files' order, not the profile map's (which differs from load to load: a
        // reload that changes nothing must find the same warnings, `Config::same_as`).
        warnings.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        if !errs.is_empty() {
            errs.extend(warnings); // after the errors: one may say why (a `.TOML` not read)
            return Err(ConfigErrors(errs));
        }
        let mut cfg = Config {
            listen,
            advertise,
            front,
            cdr_path: base.join(&cdr_path),
            max_message_bytes,
            protect,
            limits: global_limits,
            cdr_fail_closed: file.cdr.fail_closed,
            cdr_max_pending,
            cdr_refused_rate,
            cdr_refused_rate_total,
            drain,
            metrics,
            media_ip,
            media_ports,
            media_max_streams,
            media_threads,
            media_threads_auto,
            host_ips: Default::default(),
            recording_dir,
            recording_stereo,
            recording_jitter,
            recording_min_free,
            profiles,
            peers: Default::default(),
            routes,
            callback,
            warnings,
        };
        cfg.link_dial_plans();
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests;
