//! Whether an SDP holds the call, and the media timeout that follows: while every relayed
//! stream is held, the legs' hold timeouts; else their plain ones.

use std::time::Duration;

use crate::config::Profile;

/// Whether every stream `relayed` marks (there being one) is held by `held`: an SDP that
/// relays no stream holds none (its media timeout is the plain one).
pub(super) fn every_relayed(relayed: &[bool], held: impl Fn(usize) -> bool) -> bool {
    relayed.iter().any(|r| *r) && (0..relayed.len()).filter(|i| relayed[*i]).all(held)
}

/// The shorter of the two legs' media timeouts, plain and on hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct MediaTimeouts {
    plain: Option<Duration>,
    held: Option<Duration>,
}

impl MediaTimeouts {
    pub(super) fn of(self, on_hold: bool) -> Option<Duration> {
        match on_hold {
            true => self.held,
            false => self.plain,
        }
    }
}

/// The media timeouts of a call whose legs' profiles are `profiles` (the shorter wins; a
/// leg with no `rtp_timeout_s` sets none).
pub(super) fn media_timeouts(profiles: [Option<&Profile>; 2]) -> MediaTimeouts {
    let shortest = |on_hold: bool| {
        (profiles.iter().flatten())
            .filter_map(|p| match (p.rtp_timeout, on_hold) {
                (Some(t), false) => Some(t),
                (Some(_), true) => p.rtp_hold_timeout,
                (None, _) => None,
            })
            .min()
    };
    MediaTimeouts {
        plain: shortest(false),
        held: shortest(true),
    }
}
