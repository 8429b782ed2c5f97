//! Operations: metrics names and their exporter. (Rate limits and health join here.)

pub mod metrics;
