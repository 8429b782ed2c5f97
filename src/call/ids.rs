use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Makes tags, branches and Call-IDs. Seeded, so a test run is reproducible; the engine seeds
/// it from the OS so identifiers are unguessable across restarts.
#[derive(Debug)]
pub struct IdGen {
    rng: SmallRng,
}

impl IdGen {
    pub fn new(seed: u64) -> Self {
        IdGen {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.rng.random_range(0..16)] as char)
            .collect()
    }

    /// A random number (RSeq starting points and the like).
    pub fn number(&mut self) -> u32 {
        self.rng.random()
    }

    /// A From/To tag (RFC 3261 §19.3: at least 32 bits of randomness).
    pub fn tag(&mut self) -> String {
        self.hex(12)
    }

    /// A Via branch with the RFC 3261 magic cookie.
    pub fn branch(&mut self) -> String {
        format!("{}{}", crate::sip::BRANCH_COOKIE, self.hex(16))
    }

    /// A fresh Call-ID. Carries our advertised host only, never a peer's.
    pub fn call_id(&mut self, host: &str) -> String {
        format!("{}@{}", self.hex(20), host)
    }
}
