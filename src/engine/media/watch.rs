//! A call's media clock and what the relay last heard of its streams and answer.

use std::sync::{Arc, Mutex};

use super::super::relay_thread::Activity;
use crate::media::RelayPair;

/// A call's media activity: one clock for every stream and direction (RTP and RTCP) of the
/// call, and its `rtp_timeout_s` when it has one.
pub(super) struct Watch {
    pub(super) last: Activity,
    pub(super) timeout: Option<std::time::Duration>,
    /// The streams the call was last told of: an update that changes none of them (a
    /// refresh, an SDP whose version a peer bumps each time) is no media activity.
    pub(super) pairs: Vec<RelayPair>,
    /// The call was answered: a recording opened from now on (a late offer's, whose first
    /// streams come with the 2xx) is one of an answered call from the start.
    pub(super) answered: bool,
}

impl Watch {
    pub(super) fn new(now: std::time::Instant) -> Watch {
        Watch {
            last: Arc::new(Mutex::new(now)),
            timeout: None,
            pairs: Vec::new(),
            answered: false,
        }
    }
}
