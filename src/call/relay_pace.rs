//! How many requests other than PRACK (INFO, NOTIFY, REFER, OPTIONS; and apart,
//! re-INVITEs and UPDATEs) each call relays in a second. The relay slots bound how many wait for their answers at
//! once, not how many go: a far peer that answers at once let a phone relay a flood of
//! INFOs (or UPDATEs, each sent as the last one's 200 came) through the gateway, under its
//! source's rate (thousands a second) and in the gateway's name, to a carrier that then
//! blocks the trunk. A count per call for the current second (kept only for the calls
//! that relayed in it), cleared as the next begins. (PRACKs are answered on their own leg.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::CallRef;

/// Such requests one call relays in a second at most: DTMF by INFO at a fast dialler's
/// pace, a transfer's NOTIFYs and a hold's re-INVITEs fit many times over.
pub const MAX_PER_SECOND: u16 = 20;

/// The counts of the current second.
#[derive(Debug, Default)]
pub struct RelayPace {
    since: Option<Instant>,
    counts: HashMap<CallRef, u16>,
}

impl RelayPace {
    /// Whether call `r` may relay one more such request at `now` (counted if so).
    pub fn take(&mut self, r: CallRef, now: Instant) -> bool {
        if self
            .since
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1))
        {
            self.counts.clear();
            crate::maps::shrink_if_sparse(&mut self.counts);
            self.since = Some(now);
        }
        let n = self.counts.entry(r).or_insert(0);
        if *n >= MAX_PER_SECOND {
            return false;
        }
        *n += 1;
        true
    }
}
