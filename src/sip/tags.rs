//! Our own tags (RFC 3261 §19.3) carry a check the edge can verify without any state: every
//! request inside one of our dialogs names, in its To, the tag we gave that dialog, with the
//! dialog's Call-ID. A request whose To tag is not one of ours for that Call-ID is in no
//! dialog of ours, whoever sent it: it gets no place among the accepted work that is always
//! served first, however many a flood sends in a peer's name.
//!
//! A tag is 16 random hex digits, then the first 32 bits of HMAC-SHA256 over its kind, them
//! and the Call-ID, keyed per process: forging one for another Call-ID takes about 2^31
//! tries, each costing the sender a packet. A peer that knows a real tag can send into that
//! dialog only. Refusals (answers that make no dialog) carry tags of another kind: what
//! names one may be only the ACK the refusal asks for, never a request in a dialog, so no
//! answer the gateway gives a stranger hands out a tag the edge takes for a dialog's.
//!
//! Our Via branches carry such a check too (over their random part): every answer to a
//! request we sent names its branch in its top Via, so a response whose branch is not one
//! of ours answers nothing of ours, and the edge drops it unread.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use sha2::Sha256;

/// Hex digits of a tag's random part, and of its check.
const RANDOM: usize = 16;
const CHECK: usize = 8;
/// Hex digits of a branch's random part: 64 bits, as a tag's (RFC 3261 §8.1.1.7 asks a
/// branch unique across space and time), then its check.
pub(crate) const BRANCH_RANDOM: usize = 16;

/// What a tag is for, in its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// One of our dialogs.
    Dialog,
    /// A refusal, or another answer that makes no dialog.
    Refusal,
    /// A Via branch of a request we send: the answers to it name it (checked over its
    /// random part alone).
    Branch,
}

/// The key tags are checked with; cloned into the edge's readers.
#[derive(Clone)]
pub struct TagKey(Arc<Hmac<Sha256>>);

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(<not shown>)")
    }
}

impl TagKey {
    /// A key from the operating system's entropy.
    pub fn random() -> TagKey {
        TagKey::from_bytes(rand::rngs::StdRng::from_os_rng().random::<[u8; 64]>())
    }

    /// A key from `seed`: for tests and `trunkgate explain`, whose runs are reproducible.
    pub fn from_seed(seed: u64) -> TagKey {
        TagKey::from_bytes(rand::rngs::StdRng::seed_from_u64(seed).random::<[u8; 64]>())
    }

    /// A key of SHA-256's block size, HMAC's own key length.
    fn from_bytes(key: [u8; 64]) -> TagKey {
        TagKey(Arc::new(<Hmac<Sha256> as hmac::digest::KeyInit>::new(
            &key.into(),
        )))
    }

    /// The check of a tag of `kind` whose random part is `random`, for `call_id`, as
    /// lower-case hex digits (on the stack: the edge checks every response and in-dialog
    /// request).
    fn check(&self, kind: TagKind, random: &[u8], call_id: &str) -> [u8; CHECK] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = (*self.0).clone();
        mac.update(match kind {
            TagKind::Dialog => b"d",
            TagKind::Refusal => b"r",
            TagKind::Branch => b"b",
        });
        mac.update(random);
        mac.update(b"\0");
        mac.update(call_id.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut hex = [0u8; CHECK];
        for (pair, b) in hex.chunks_exact_mut(2).zip(out.iter()) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
        hex
    }

    /// `check` as text (what goes on the wire: always ASCII hex).
    fn check_text(&self, kind: TagKind, random: &[u8], call_id: &str) -> String {
        String::from_utf8_lossy(&self.check(kind, random, call_id)).into_owned()
    }

    /// A tag of ours of `kind` for `call_id`, its random part `random` (16 hex digits).
    pub(super) fn tag(&self, kind: TagKind, random: &str, call_id: &str) -> String {
        let check = self.check_text(kind, random.as_bytes(), call_id);
        format!("{random}{check}")
    }

    /// A Via branch of ours: the magic cookie, `random` ([`BRANCH_RANDOM`] hex digits) and its
    /// check.
    pub fn branch(&self, random: &str) -> String {
        let check = self.check_text(TagKind::Branch, random.as_bytes(), "");
        format!("{}{random}{check}", super::BRANCH_COOKIE)
    }

    /// Whether `branch` is one this process gave a request it sent: every answer to one of
    /// our requests names it in its top Via. Branches compare exactly (RFC 3261 §17.1.3).
    pub fn our_branch(&self, branch: &[u8]) -> bool {
        branch
            .strip_prefix(super::BRANCH_COOKIE.as_bytes())
            .is_some_and(|b| {
                b.len() == BRANCH_RANDOM + CHECK
                    && b[BRANCH_RANDOM..] == self.check(TagKind::Branch, &b[..BRANCH_RANDOM], "")
            })
    }

    /// Whether `tag` is one of our dialogs' tags for `call_id` (tags compare exactly, RFC
    /// 3261 §19.3).
    pub fn ours(&self, tag: &str, call_id: &str) -> bool {
        self.is(TagKind::Dialog, tag, call_id)
    }

    /// Whether `tag` is one of ours of `kind` for `call_id`.
    pub fn is(&self, kind: TagKind, tag: &str, call_id: &str) -> bool {
        let t = tag.as_bytes();
        t.len() == RANDOM + CHECK && t[RANDOM..] == self.check(kind, &t[..RANDOM], call_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_ours_for_its_call_id_only() {
        let k = TagKey::from_seed(7);
        let t = k.tag(TagKind::Dialog, "0123456789abcdef", "a@b");
        assert_eq!(t.len(), 24);
        assert!(k.ours(&t, "a@b"));
        assert!(!k.ours(&t, "a@c"), "another Call-ID");
        let refusal = k.tag(TagKind::Refusal, "0123456789abcdef", "a@b");
        assert!(!k.ours(&refusal, "a@b"), "a refusal's is no dialog's");
        assert!(k.is(TagKind::Refusal, &refusal, "a@b"));
        assert!(!k.is(TagKind::Refusal, &t, "a@b"));
        assert!(
            !TagKey::from_seed(8).ours(&t, "a@b"),
            "another process's key"
        );
        let mut forged = t.clone();
        forged.replace_range(0..1, "f");
        assert!(!k.ours(&forged, "a@b"));
        for junk in [
            "",
            "x",
            "0123456789abcdef",
            &format!("{t}0"),
            "é23456789abcdef01234567",
        ] {
            assert!(!k.ours(junk, "a@b"), "{junk:?}");
        }
    }
}
