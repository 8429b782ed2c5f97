//! `[cdr]`: how many CDRs may wait for the disk, and how many of refused calls are written.

use std::num::NonZeroU32;
use std::ops::Range;

use super::ConfigError;
use super::file::CdrSection;

/// `[cdr] refused_rate` when unset: a peer refused more often than this each second (a
/// number scan, a flood in its name) fills the CDR file no faster.
const DEFAULT_REFUSED_RATE: u32 = 100;

pub(super) struct Cdr {
    /// `path`, as written (relative to gateway.toml's folder).
    pub path: String,
    pub max_pending: usize,
    pub refused_rate: Option<NonZeroU32>,
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

    let refused_rate = match &s.refused_rate {
        Some(r) if *r.get_ref() <= 100_000 => {
            u32::try_from(*r.get_ref()).ok().and_then(NonZeroU32::new)
        }
        Some(r) => {
            errs.push(at(r.span(), "[cdr] refused_rate must be 0..=100000".into()));
            None
        }
        None => NonZeroU32::new(DEFAULT_REFUSED_RATE),
    };
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
    }
}
