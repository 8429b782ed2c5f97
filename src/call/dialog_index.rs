//! Which call and leg a dialog belongs to, found by the Call-ID and our tag a request or
//! response carries. The index holds a 64-bit hash of the two, not the strings (the call's
//! dialog already has them): a held call costs the index a few bytes per leg. The hasher is
//! seeded at random per process and half of every key is our own random tag, so nobody can
//! aim for a collision; a hit is still checked against the call's dialog by the router
//! (`B2bua::dialog_of`), so a collision could only ever be a miss, never a wrong call.

use std::hash::BuildHasher;

use foldhash::HashMap;

use super::dialog::Dialog;
use super::{CallRef, Side};

#[derive(Debug, Default)]
pub struct DialogIndex {
    by_hash: HashMap<u64, (CallRef, Side)>,
    /// Calls whose caller's INVITE may still come again, by its Call-ID, From tag and CSeq
    /// number: a copy with another branch is a merged request (RFC 3261 §8.2.2.2).
    setups: HashMap<u64, CallRef>,
    hasher: foldhash::quality::RandomState,
}

/// What identifies a caller's INVITE across the paths it may take (RFC 3261 §8.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetupKey {
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
}

impl SetupKey {
    /// The key of an INVITE (None without a Call-ID, From tag or CSeq).
    pub fn of(req: &crate::sip::Request) -> Option<SetupKey> {
        Some(SetupKey {
            call_id: req.call_id()?,
            from_tag: req.from_tag()?,
            cseq: req.cseq()?.0,
        })
    }
}

impl DialogIndex {
    fn key(&self, call_id: &str, our_tag: &str) -> u64 {
        self.hasher.hash_one((call_id, our_tag))
    }

    pub fn insert(&mut self, dialog: &Dialog, at: (CallRef, Side)) {
        let k = self.key(&dialog.call_id, &dialog.local_tag);
        self.by_hash.insert(k, at);
    }

    pub fn remove(&mut self, dialog: &Dialog) {
        let k = self.key(&dialog.call_id, &dialog.local_tag);
        self.by_hash.remove(&k);
    }

    /// The call and leg indexed under this Call-ID and tag; unchecked (see the module).
    pub fn find(&self, call_id: &str, our_tag: &str) -> Option<(CallRef, Side)> {
        self.by_hash.get(&self.key(call_id, our_tag)).copied()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn setups(&self) -> usize {
        self.setups.len()
    }

    pub fn insert_setup(&mut self, key: &SetupKey, r: CallRef) {
        let k = self.hasher.hash_one(key);
        self.setups.insert(k, r);
    }

    /// Forget call `r`'s setup. Only its own: a retried INVITE of the same key may have
    /// set up a newer call since, whose entry stays (its copies are still 482s).
    pub fn remove_setup(&mut self, key: &SetupKey, r: CallRef) {
        let k = self.hasher.hash_one(key);
        if self.setups.get(&k) == Some(&r) {
            self.setups.remove(&k);
            crate::maps::shrink_if_sparse(&mut self.setups);
        }
    }

    /// The call set up by an INVITE with this key; unchecked (see the module).
    pub fn find_setup(&self, key: &SetupKey) -> Option<CallRef> {
        self.setups.get(&self.hasher.hash_one(key)).copied()
    }

    /// Give memory back after a burst of calls ended (`crate::maps`).
    /// Give the table back once empty, however small (see `maps::release_if_empty`).
    pub fn release_if_empty(&mut self) {
        crate::maps::release_if_empty(&mut self.by_hash);
        crate::maps::release_if_empty(&mut self.setups);
    }

    pub fn shrink_if_sparse(&mut self) {
        crate::maps::shrink_if_sparse(&mut self.by_hash);
    }
}
