//! What a call did once, as bits of one byte (`Call` stays in its allocation size class).

use super::Side;

/// Things a call did once, as bits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Marks(u8);

impl Marks {
    /// Its CDR was written (or, for a refusal over `[cdr] refused_rate`, left out on
    /// purpose): a fault once the call ended writes it if not (`router/fault.rs`).
    const CDR_DONE: u8 = 1;

    pub fn cdr_done(self) -> bool {
        self.0 & Self::CDR_DONE != 0
    }

    pub fn set_cdr_done(&mut self) {
        self.0 |= Self::CDR_DONE;
    }

    /// The bit of `side`'s session expiry given its one grace after firing late (a stall).
    fn grace_bit(side: Side) -> u8 {
        match side {
            Side::A => 2,
            Side::B => 4,
        }
    }

    /// Give `side`'s session expiry its one grace: false when given already.
    pub fn take_session_grace(&mut self, side: Side) -> bool {
        let given = self.0 & Self::grace_bit(side) != 0;
        self.0 |= Self::grace_bit(side);
        !given
    }

    /// The bit of a BYE sent on `side`'s dialog.
    fn bye_bit(side: Side) -> u8 {
        match side {
            Side::A => 8,
            Side::B => 16,
        }
    }

    /// Whether the gateway sent a BYE on `side` (a fault once the call ended sends one to
    /// a leg it has not, `router/fault.rs`).
    pub fn bye_sent(self, side: Side) -> bool {
        self.0 & Self::bye_bit(side) != 0
    }

    pub fn set_bye_sent(&mut self, side: Side) {
        self.0 |= Self::bye_bit(side);
    }

    /// The bit of `side`'s party having asked its identity withheld (`Privacy: id`).
    fn private_bit(side: Side) -> u8 {
        match side {
            Side::A => 32,
            Side::B => 64,
        }
    }

    /// Whether `side`'s party asked its identity withheld in the last `Privacy` it sent:
    /// its messages without one are judged by it (`Call::note_privacy`).
    pub fn id_private(self, side: Side) -> bool {
        self.0 & Self::private_bit(side) != 0
    }

    pub fn set_id_private(&mut self, side: Side, private: bool) {
        if private {
            self.0 |= Self::private_bit(side);
        } else {
            self.0 &= !Self::private_bit(side);
        }
    }

    /// `side`'s session expiry is armed anew: it may have a grace again.
    pub fn renew_session_grace(&mut self, side: Side) {
        self.0 &= !Self::grace_bit(side);
    }
}
