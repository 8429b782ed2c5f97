//! The TOML files as operators write them. Unknown keys are refused (`deny_unknown_fields`),
//! so a misspelt key is an error with its line, never a silently ignored setting.

use serde::Deserialize;
use toml::Spanned;

pub use super::limits::{GlobalLimitsSection, PeerLimitsSection, ProtectSection};

/// `gateway.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    pub sip: SipSection,
    #[serde(default)]
    pub cdr: CdrSection,
    #[serde(default)]
    pub protect: ProtectSection,
    #[serde(default)]
    pub limits: GlobalLimitsSection,
    #[serde(default)]
    pub shutdown: ShutdownSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub media: MediaSection,
    #[serde(default)]
    pub recording: RecordingSection,
    /// The profiles folder, relative to gateway.toml; unset: `profiles`.
    pub profiles: Option<Spanned<String>>,
    #[serde(default)]
    pub route: Vec<Spanned<RouteSection>>,
    #[serde(default)]
    pub callback: CallbackSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    pub listen: Spanned<Vec<Spanned<String>>>,
    pub advertise: Spanned<String>,
    /// `"udp:IP:PORT"` of a SIP front (a Kamailio dispatcher) this instance runs behind.
    pub front: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrSection {
    pub path: Option<Spanned<String>>,
    /// Refuse new calls while CDRs cannot be written.
    #[serde(default = "default_true")]
    pub fail_closed: bool,
    /// Records waiting to be written at which new calls are refused.
    pub max_pending: Option<Spanned<u64>>,
    /// CDRs of refused INVITEs written per second and peer (0: every one).
    pub refused_rate: Option<Spanned<u64>>,
    /// The same for all peers together (0: no such cap).
    pub refused_rate_total: Option<Spanned<u64>>,
}

impl Default for CdrSection {
    fn default() -> Self {
        CdrSection {
            path: None,
            fail_closed: true,
            max_pending: None,
            refused_rate: None,
            refused_rate_total: None,
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSection {
    /// Default 30 (`config::process::DEFAULT_DRAIN_S`).
    pub drain_s: Option<Spanned<u64>>,
}

/// `[media]` of gateway.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    pub advertise: Option<Spanned<String>>,
    pub ports: Option<Spanned<String>>,
    pub max_streams: Option<Spanned<u64>>,
    pub threads: Option<Spanned<u64>>,
}

/// `[recording]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingSection {
    pub dir: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub jitter_ms: Option<Spanned<u64>>,
    pub min_free_mb: Option<Spanned<u64>>,
}

/// `[media]` of a profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMediaSection {
    #[serde(default)]
    pub anchor: bool,
    #[serde(default)]
    pub record: bool,
    pub latch: Option<Spanned<String>>,
    pub rtp_timeout_s: Option<Spanned<u64>>,
    pub rtp_hold_timeout_s: Option<Spanned<u64>>,
    pub repacketize: Option<Spanned<bool>>,
    pub rebind_after_silence_ms: Option<Spanned<u64>>,
    pub max_streams: Option<Spanned<u64>>,
    pub networks: Option<Spanned<Vec<Spanned<String>>>>,
}

impl ProfileMediaSection {
    /// `repacketize = true`.
    pub fn repacketizes(&self) -> bool {
        self.repacketize.as_ref().is_some_and(|r| *r.get_ref())
    }

    /// Whether this profile's calls go through the relay: `anchor`, or a setting only the
    /// relay can carry out (recording, repacketising, keeping media to `networks`).
    pub fn anchors(&self) -> bool {
        self.anchor || self.record || self.repacketizes() || self.networks.is_some()
    }
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    #[serde(default = "default_metrics_listen")]
    pub listen: Spanned<String>,
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_connections: Option<Spanned<u64>>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: default_metrics_listen(),
            allow: None,
            max_connections: None,
        }
    }
}

fn default_metrics_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9464".to_string())
}

/// `[callback]`: the call-back service (defaults and bounds in `config/callback.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSection {
    pub port: Option<Spanned<u64>>,
    pub listen: Option<Spanned<String>>,
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub allow_any: Option<Spanned<bool>>,
    pub from_peer: Option<Spanned<String>>,
    pub caller: Option<Spanned<String>>,
    pub max_duration_s: Option<Spanned<u64>>,
    pub rate: Option<Spanned<u64>>,
    pub max_active: Option<Spanned<u64>>,
    /// Any TOML value: a key pasted here unquoted (`secret_file = 1234…`) would otherwise be
    /// quoted back by toml's own type error, in the log and the reload status file.
    pub secret_file: Option<Spanned<toml::Value>>,
}

/// `[[route]]`: first match wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    #[serde(default = "star")]
    pub from: Spanned<String>,
    #[serde(default = "empty")]
    pub prefix: Spanned<String>,
    pub to: Spanned<OneOrMany>,
    pub ring_timeout_s: Option<Spanned<u64>>,
}

fn empty() -> Spanned<String> {
    Spanned::new(0..0, String::new())
}

fn star() -> Spanned<String> {
    Spanned::new(0..0, "*".to_string())
}

/// `to = "peer"` or `to = ["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a name, or a list of names")]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `profiles/NAME.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub name: Spanned<String>,
    pub role: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(rename = "match", default)]
    pub match_: Vec<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub ring_timeout_s: Option<Spanned<u64>>,
    #[serde(default)]
    pub uri: UriSection,
    #[serde(default)]
    pub prack: PrackSection,
    #[serde(default)]
    pub sdp: SdpSection,
    #[serde(default)]
    pub causes: CausesSection,
    #[serde(default)]
    pub media: ProfileMediaSection,
    #[serde(default)]
    pub limits: PeerLimitsSection,
    pub auth: Option<AuthSection>,
    pub register: Option<RegisterSection>,
    #[serde(default)]
    pub session_timer: SessionTimerSection,
    #[serde(default)]
    pub sip: ProfileSipSection,
    #[serde(default)]
    pub transfer: TransferSection,
    #[serde(default)]
    pub headers: HeadersSection,
}

/// `[headers]`: the header policy toward this peer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersSection {
    #[serde(default)]
    pub pass: Vec<Spanned<String>>,
    #[serde(default)]
    pub strip: Vec<Spanned<String>>,
    pub user_agent: Option<Spanned<String>>,
    /// Whether this peer is in our trust domain for asserted identities (RFC 3325): unset,
    /// a trunk is and an internal peer is not.
    pub trust_identity: Option<bool>,
    /// Whether the identities this peer asserts (P-Asserted-Identity, Remote-Party-ID) are
    /// believed and passed on: unset, as `trust_identity`.
    pub trust_asserted: Option<bool>,
}

/// `[transfer]`: REFER from this peer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    pub mode: Option<Spanned<String>>,
    pub to_trunks: Option<Spanned<bool>>,
}

/// A profile's `[sip]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSipSection {
    pub allow: Option<Vec<Spanned<String>>>,
    pub invite_timeout_s: Option<Spanned<u64>>,
    pub probe_s: Option<Spanned<u64>>,
    pub ping_s: Option<Spanned<u64>>,
    pub ping_failures: Option<Spanned<u64>>,
}

/// `[session_timer]`: RFC 4028 session timers on this peer's leg.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionTimerSection {
    pub mode: Option<Spanned<String>>,
    pub expires_s: Option<Spanned<u64>>,
    pub min_se_s: Option<Spanned<u64>>,
}

/// `[auth]`: digest credentials for this peer's 401/407 challenges.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub username: Spanned<String>,
    /// Any TOML value, so that a mistyped password (`password = 1234`) is reported without
    /// its value: toml's own type error would quote it.
    pub password: Option<Spanned<toml::Value>>,
    /// Any TOML value too: a password written in the wrong key (`password_file = 1234`)
    /// must not be quoted by a type error either.
    pub password_file: Option<Spanned<toml::Value>>,
    pub realm: Option<Spanned<String>>,
    pub algorithm: Option<Spanned<OneOrMany>>,
    pub in_dialog: Option<Spanned<String>>,
}

// By hand: the password must never reach a log through `{:?}`.
impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "password_file",
                &self.password_file.as_ref().map(|_| "<not shown>"),
            )
            .field("realm", &self.realm)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// `[register]`: keep a registration with this peer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSection {
    /// Unset: warned of (a section that looks configured and does nothing).
    pub enabled: Option<bool>,
    pub expires_s: Option<Spanned<u64>>,
    pub user: Option<Spanned<String>>,
    pub contact_user: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
}

/// `[uri]`: the form of URIs and numbers toward this peer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UriSection {
    pub scheme: Option<Spanned<String>>,
    #[serde(default)]
    pub user_phone: bool,
    pub request_uri_params: Option<Spanned<String>>,
    pub number: Option<Spanned<String>>,
    pub country_code: Option<Spanned<String>>,
    pub international_prefix: Option<Spanned<String>>,
    pub national_prefix: Option<Spanned<String>>,
    pub short_code_digits: Option<Spanned<u64>>,
    pub number_params: Option<bool>,
    pub tgrp_in_user: Option<Spanned<bool>>,
}

/// `[prack]`: reliable provisional responses (RFC 3262) on this peer's leg.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrackSection {
    pub mode: Option<Spanned<String>>,
    pub on_405: Option<Spanned<String>>,
}

/// `[sdp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdpSection {
    pub ptime: Option<Spanned<u64>>,
}

/// `[causes]` and `[causes.map]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CausesSection {
    #[serde(default = "yes")]
    pub send_reason: bool,
    #[serde(default)]
    pub map: std::collections::BTreeMap<Spanned<String>, Spanned<u64>>,
}

impl Default for CausesSection {
    fn default() -> Self {
        CausesSection {
            send_reason: true,
            map: Default::default(),
        }
    }
}

fn yes() -> bool {
    true
}
