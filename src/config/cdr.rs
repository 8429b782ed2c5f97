//! `[cdr]`: how many CDRs may wait for the disk, and how many of refused calls are written.

use std::num::NonZeroU32;
use std::ops::Range;

use super::ConfigError;
use super::file::CdrSection;

/// `[cdr] refused_rate` when unset: a peer refused more often than this each second (a
/// number scan, a flood in its name) fills the CDR file no faster.
const DEFAULT_REFUSED_RATE: u32 = 100;
/// `[cdr] refused_rate_total` when unset: all peers together. Each peer's rate alone let a
/// flood forged in many peers' names (their addresses are easy to learn) write a CDR for
/// every refusal the core could make, thousands a second.
const DEFAULT_REFUSED_RATE_TOTAL: u32 = 1000;

pub(super) struct Cdr {
    /// `path`, as written (relative to gateway.toml's folder).
    pub path: String,
    pub max_pending: usize,
    pub refused_rate: Option<NonZeroU32>,
    pub refused_rate_total: Option<NonZeroU32>,
}

pub(super) fn cdr(
    s: &CdrSection,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Cdr {
    let max_pending = match &s.max_pending {
        Some(m) if (1..=1_000_000).contains(m.get_ref()) => *m.get_ref() as usize,
        Some(m) => {
            errs.push(at(m.span(), "[cdr] max_pending must be 1..=1000000".into()));
            10_000
        }
        None => 10_000,
    };

    let mut rate = |key: &str, set: &Option<toml::Spanned<u64>>, default: u32, top: u64| match set {
        Some(r) if *r.get_ref() <= top => {
            u32::try_from(*r.get_ref()).ok().and_then(NonZeroU32::new)
        }
        Some(r) => {
            errs.push(at(r.span(), format!("[cdr] {key} must be 0..={top}")));
            None
        }
        None => NonZeroU32::new(default),
    };
    let refused_rate = rate(
        "refused_rate",
        &s.refused_rate,
        DEFAULT_REFUSED_RATE,
        100_000,
    );
    let refused_rate_total = rate(
        "refused_rate_total",
        &s.refused_rate_total,
        DEFAULT_REFUSED_RATE_TOTAL,
        1_000_000,
    );
    let path = match &s.path {
        Some(p) => {
            if let Err(why) = super::read::names_a_file(p.get_ref()) {
                errs.push(at(p.span(), format!("[cdr] path {why}")));
            }
            p.get_ref().clone()
        }
        None => "var/cdr.jsonl".into(),
    };
    Cdr {
        path,
        max_pending,
        refused_rate,
        refused_rate_total,
    }
}
