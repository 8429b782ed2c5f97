//! The timers a transaction arms, and the slots they share.

/// The timers of RFC 3261 §17 Table 4 that a user agent arms, and RFC 6026's L and M.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
}

impl Timer {
    /// Which of a transaction's three timer slots this timer uses. A machine never has two
    /// timers of one slot armed at once: retransmission (A, E, G) runs beside the give-up
    /// timer (B, F, H); the wait-for-stragglers timers (D, I, J, K, L, M) come alone.
    pub fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G => 0,
            Timer::B | Timer::F | Timer::H => 1,
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::L | Timer::M => 2,
        }
    }
}
