//! Reliable provisional responses (RFC 3262) per leg: what the profile allows, and the
//! option tags that express it.

/// `[prack] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrackMode {
    /// Offer 100rel; use it when the peer wants it.
    Supported,
    /// Never offer 100rel, never send PRACK unless the peer forces reliable 18x on us.
    Disabled,
    /// Insist on reliable provisionals with this peer.
    Required,
}

/// `[prack] on_405`: what a PRACK failure does to the call: any 4xx-6xx answer to our PRACK
/// (405, 501, ...; a 401/407 only when `[auth]` cannot answer it; a 481 only from the only
/// branch heard), or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On405 {
    /// Stop PRACKing this peer for the call and keep waiting for its final response.
    Continue,
    /// End the call (`call_tag = "prack_rejected"`).
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrackPolicy {
    pub mode: PrackMode,
    pub on_405: On405,
}

impl Default for PrackPolicy {
    fn default() -> Self {
        PrackPolicy {
            mode: PrackMode::Supported,
            on_405: On405::Continue,
        }
    }
}
