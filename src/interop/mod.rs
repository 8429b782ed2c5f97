//! Profile-driven interop: what the gateway changes in a message for the peer it goes to.

pub mod allow;
pub mod causes;
pub mod egress;
pub mod headers;
pub mod history;
pub mod isdn;
pub mod prack;
pub mod sender;
pub mod session_timer;
pub mod topology;
pub mod transfer;
pub mod uri;
