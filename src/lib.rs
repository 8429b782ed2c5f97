//! trunkgate: a carrier-facing SIP back-to-back user agent.
//!
//! The protocol core (`sip`, `txn`, `call`, `interop`) performs no I/O and reads no clock: it
//! takes messages, timer firings and an `Instant`, and returns actions. `engine` is the tokio
//! shell that owns sockets and timers; `config` and `cdr` sit beside them.

// Nothing a peer or an operator sends may panic the gateway: production code handles every
// error; only tests unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

pub mod auth;
pub mod call;
pub mod callback;
pub mod cdr;
pub mod config;
pub mod engine;
pub mod hex;
pub mod interop;
pub mod maps;
pub mod media;
pub mod ops;
pub mod sdp;
pub mod sip;
pub mod threads;
pub mod txn;
pub mod zone;
