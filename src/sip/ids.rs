//! Tags, branches and Call-IDs. They are what a forged BYE, CANCEL or re-INVITE needs, so
//! they come from a cryptographically secure generator (ChaCha12): seeded in tests so a run
//! is reproducible, seeded from the OS in the engine so no amount of observed traffic lets
//! anyone predict the next one.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Hdr;
use super::tags::{TagKey, TagKind};

#[derive(Debug)]
pub struct IdGen {
    rng: StdRng,
    /// What our tags are made and checked with ([`TagKey`]).
    tags: TagKey,
    /// What stateless answers' tags are hashed with ([`IdGen::stateless_tag`]).
    stateless: foldhash::fast::FixedState,
}

impl IdGen {
    pub fn new(seed: u64) -> Self {
        IdGen {
            rng: StdRng::seed_from_u64(seed),
            tags: TagKey::from_seed(seed),
            stateless: foldhash::fast::FixedState::with_seed(seed),
        }
    }

    /// Seeded from the operating system's entropy; tags made with `tags`, which the edge
    /// checks them with.
    pub fn from_os(tags: TagKey) -> Self {
        let mut rng = StdRng::from_os_rng();
        IdGen {
            stateless: foldhash::fast::FixedState::with_seed(rng.random()),
            rng,
            tags,
        }
    }

    /// The key this generator's tags are made with.
    pub fn tag_key(&self) -> &TagKey {
        &self.tags
    }

    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.rng.random_range(0..16)] as char)
            .collect()
    }

    /// The generator itself, for what needs random bytes of its own (digest cnonces).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A random number (RSeq starting points and the like).
    pub fn number(&mut self) -> u32 {
        self.rng.random()
    }

    /// Our From/To tag for a dialog (or response) of `call_id` (RFC 3261 §19.3 asks for at
    /// least 32 bits of randomness; this has 64, and a check the edge verifies: [`TagKey`]).
    pub fn tag(&mut self, call_id: &str) -> String {
        let random = self.hex(16);
        self.tags.tag(TagKind::Dialog, &random, call_id)
    }

    /// A To tag for an answer to `call_id` that makes no dialog but has a transaction (a
    /// refusal, an answer to an OPTIONS): its check says so ([`TagKind::Refusal`]), so that
    /// it is no tag the edge takes for a dialog's, while the ACK a refused INVITE's
    /// transaction waits for is still known for ours.
    pub fn refusal_tag(&mut self, call_id: &str) -> String {
        let random = self.hex(16);
        self.tags.tag(TagKind::Refusal, &random, call_id)
    }

    /// A To tag for a stateless answer to `req` (no transaction: nothing asks for its ACK,
    /// nothing resends it): the same for a retransmission of `req` (RFC 3261 §8.2.7), a
    /// hash (seeded per process) of the header lines that name the request (Call-ID, From
    /// with its tag, the top Via with its branch, CSeq with its method), read as they came
    /// (the parsed ones cost a flood more than the answer). Its 16 hex digits are shorter
    /// than any tag whose check the edge verifies, so what the gateway answers anyone
    /// without state hands out no tag its edge lets ahead.
    pub fn stateless_tag(&self, req: &super::Request) -> String {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.stateless.build_hasher();
        for name in [&Hdr::CALL_ID, &Hdr::FROM, &Hdr::VIA, &Hdr::CSEQ] {
            req.header(name).hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }

    /// `n` random hex digits (a recording file's token).
    pub fn hex_token(&mut self, n: usize) -> String {
        self.hex(n)
    }

    /// A Via branch with the RFC 3261 magic cookie, and a check the edge verifies on the
    /// answers ([`TagKey::our_branch`]).
    pub fn branch(&mut self) -> String {
        let random = self.hex(super::tags::BRANCH_RANDOM);
        self.tags.branch(&random)
    }

    /// A fresh Call-ID. Carries our advertised host only, never a peer's.
    pub fn call_id(&mut self, host: &str) -> String {
        format!("{}@{}", self.hex(24), host)
    }
}
