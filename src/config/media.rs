//! `[media]` and `[recording]`: the relay's address, ports and threads, and how calls are
//! recorded.

use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::file::{MediaSection, RecordingSection};

pub(super) struct Media {
    pub ip: IpAddr,
    pub ports: (u16, u16),
    pub max_streams: usize,
    pub threads: usize,
    /// `threads` was 0 or unset (one per core, counted at each load).
    pub threads_auto: bool,
}

/// A `[media] max_streams` (the gateway's or a profile's) as a count, or the error to
/// report.
pub(super) fn checked_max_streams(n: u64) -> Result<usize, String> {
    let limit = crate::sdp::MAX_STREAMS_LIMIT;
    usize::try_from(n)
        .ok()
        .filter(|v| (1..=limit).contains(v))
        .ok_or_else(|| format!("[media] max_streams must be 1..={limit}"))
}

/// `[media]`; `advertise` is `[sip] advertise`, the relay's address when `[media]` names
/// none.
pub(super) fn media(
    s: &MediaSection,
    advertise: &str,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Media {
    let ip = match &s.advertise {
        Some(a) => match super::sip::advertise_ip(a.get_ref().trim()).ok_or(()) {
            Ok(ip) => match super::sip::reachable(ip) {
                Ok(()) => ip,
                Err(why) => {
                    errs.push(at(a.span(), format!("[media] advertise {ip} {why}")));
                    ip
                }
            },
            Err(_) => {
                errs.push(at(
                    a.span(),
                    format!("[media] advertise {:?} must be an IP address", a.get_ref()),
                ));
                IpAddr::from([127, 0, 0, 1])
            }
        },
        None => super::sip::advertise_ip(advertise).unwrap_or(IpAddr::from([127, 0, 0, 1])),
    };
    let ports = match &s.ports {
        Some(p) => match parse_port_range(p.get_ref()) {
            Some(r) => r,
            None => {
                errs.push(at(p.span(), format!("[media] ports {:?} must be \"FIRST-LAST\" from 1024 with at least two even/odd pairs (a stream takes one per leg), e.g. \"20000-20999\"", p.get_ref())));
                (20000, 20999)
            }
        },
        None => (20000, 20999),
    };
    let max_streams = match &s.max_streams {
        Some(n) => checked_max_streams(*n.get_ref()).unwrap_or_else(|m| {
            errs.push(at(n.span(), m));
            crate::sdp::DEFAULT_MAX_STREAMS
        }),
        None => crate::sdp::DEFAULT_MAX_STREAMS,
    };
    let threads = match &s.threads {
        Some(n) if *n.get_ref() == 0 => auto_threads(),
        Some(n) if *n.get_ref() <= MAX_MEDIA_THREADS as u64 => *n.get_ref() as usize,
        Some(n) => {
            errs.push(at(
                n.span(),
                format!("[media] threads must be 0 (one per core) to {MAX_MEDIA_THREADS}"),
            ));
            1
        }
        None => auto_threads(),
    };
    Media {
        ip,
        ports,
        max_streams,
        threads,
        threads_auto: s.threads.as_ref().is_none_or(|n| *n.get_ref() == 0),
    }
}

pub(super) struct Recording {
    pub dir: PathBuf,
    pub stereo: bool,
    pub jitter: Duration,
    pub min_free: u64,
}

/// `[recording] min_free_mb` by default: recordings stop with 512 MiB left on their file
/// system, ahead of the CDR file that shares it by default (a stereo recording is about
/// 115 MB an hour).
const DEFAULT_MIN_FREE_MB: u64 = 512;
/// The most `[recording] min_free_mb` may be (1 TiB).
const MAX_MIN_FREE_MB: u64 = 1 << 20;

/// `[recording]`; a relative `dir` is under `base`, the directory of gateway.toml.
pub(super) fn recording(
    s: &RecordingSection,
    base: &Path,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Recording {
    let stereo = match &s.format {
        Some(f) => match f.get_ref().as_str() {
            "stereo" => true,
            "mixed" => false,
            other => {
                errs.push(at(
                    f.span(),
                    format!("[recording] format {other:?} must be \"stereo\" or \"mixed\""),
                ));
                true
            }
        },
        None => true,
    };
    let jitter = match &s.jitter_ms {
        Some(j) if (10..=1000).contains(j.get_ref()) => Duration::from_millis(*j.get_ref()),
        Some(j) => {
            errs.push(at(
                j.span(),
                "[recording] jitter_ms must be 10..=1000".into(),
            ));
            Duration::from_millis(60)
        }
        None => Duration::from_millis(60),
    };
    let min_free_mb = match &s.min_free_mb {
        Some(m) if *m.get_ref() <= MAX_MIN_FREE_MB => *m.get_ref(),
        Some(m) => {
            errs.push(at(
                m.span(),
                format!("[recording] min_free_mb must be 0..={MAX_MIN_FREE_MB}"),
            ));
            DEFAULT_MIN_FREE_MB
        }
        None => DEFAULT_MIN_FREE_MB,
    };
    if let Some(d) = &s.dir
        && let Err(why) = super::read::names_a_folder(d.get_ref())
    {
        errs.push(at(d.span(), format!("[recording] dir {why}")));
    }
    let dir = base.join(s.dir.as_ref().map_or("var/recordings", |d| d.get_ref()));
    Recording {
        dir,
        stereo,
        jitter,
        min_free: min_free_mb << 20,
    }
}

/// `"20000-20999"`: a range holding at least one even RTP port and its odd RTCP port.
fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    // At least two pairs (an even port and the odd one after it): a stream takes one for
    // each leg (`20000-20003` is two).
    let even = u32::from(a) + u32::from(a) % 2;
    (a >= 1024 && even + 3 <= u32::from(b)).then_some((a, b))
}

/// The most relay threads `[media] threads` accepts.
pub const MAX_MEDIA_THREADS: usize = 64;

/// Relay threads when `[media] threads` is 0 or absent: one per core. The signalling thread
/// is not given a core of its own: it sleeps most of the time and the scheduler serves it
/// when it wakes, while a relay thread that is preempted holds every packet of its calls
/// until it runs again, so more of them, each with fewer calls, queue less. On 2 cores at
/// 1,000 relayed calls, two relay threads gave p99 added latency 1.8 ms against 25.5 ms for
/// one, with SIP setup no slower at that load. At light load, where each packet would wake
/// its thread, calls fill one thread before the next is used (`media::placement`).
fn auto_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_MEDIA_THREADS)
}
