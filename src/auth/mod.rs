//! Trunk credentials: digest answers to a peer's 401/407 challenges and a registration
//! client per peer. Sans-IO like the rest of the core: no sockets, no clock (`now` comes in),
//! randomness from a generator the caller owns.
//!
//! - [`digest`]: challenge parsing and the RFC 7616 / RFC 2617 computation.
//! - [`credentials`]: the peer's secret (never printed) and [`AuthSession`], the per-dialog
//!   state that turns a challenged request into an authenticated retry.
//! - [`register`]: [`Registration`], one REGISTER client per peer with `[register] enabled`.

pub mod credentials;
pub mod digest;
pub mod register;

pub use credentials::{AuthFailure, AuthSession, Credentials, InDialog, Retry, Secret};
pub use digest::{Algorithm, ChallengeKind};
pub use register::{Handover, RegEvent, RegisterParams, RegisterPolicy, Registration, Transmit};
