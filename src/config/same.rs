//! Whether two configurations are the same, every setting compared: a reload that changes
//! nothing keeps the running one (each call holds the configuration it began with, so a
//! provisioning loop reloading every few seconds would otherwise have the calls up keep a
//! copy per reload).

use std::sync::Arc;

use super::Config;

impl Config {
    /// Every field equal (what is derived from them, the peer index, aside). The fields are
    /// named one by one, none skipped by `..`: a field added to [`Config`] does not compile
    /// here until it is compared, so no change to it can be taken for no change.
    pub fn same_as(&self, other: &Config) -> bool {
        let Config {
            listen,
            advertise,
            front,
            cdr_path,
            cdr_fail_closed,
            cdr_max_pending,
            cdr_refused_rate,
            cdr_refused_rate_total,
            max_message_bytes,
            protect,
            limits,
            drain,
            media_ip,
            media_ports,
            media_max_streams,
            media_threads,
            media_threads_auto,
            host_ips,
            recording_dir,
            recording_stereo,
            recording_jitter,
            recording_min_free,
            metrics,
            profiles,
            // Built from `profiles` at the first lookup.
            peers: _,
            routes,
            callback,
            warnings,
        } = self;
        *listen == other.listen
            && *advertise == other.advertise
            && *front == other.front
            && *cdr_path == other.cdr_path
            && *cdr_fail_closed == other.cdr_fail_closed
            && *cdr_max_pending == other.cdr_max_pending
            && *cdr_refused_rate == other.cdr_refused_rate
            && *cdr_refused_rate_total == other.cdr_refused_rate_total
            && *max_message_bytes == other.max_message_bytes
            && *protect == other.protect
            && *limits == other.limits
            && *drain == other.drain
            && *media_ip == other.media_ip
            && *media_ports == other.media_ports
            && *media_max_streams == other.media_max_streams
            && *media_threads == other.media_threads
            && *media_threads_auto == other.media_threads_auto
            && *host_ips == other.host_ips
            && *recording_dir == other.recording_dir
            && *recording_stereo == other.recording_stereo
            && *recording_jitter == other.recording_jitter
            && *recording_min_free == other.recording_min_free
            && *metrics == other.metrics
            && profiles.len() == other.profiles.len()
            && profiles.iter().all(|(name, p)| {
                other
                    .profiles
                    .get(name)
                    .is_some_and(|o| Arc::ptr_eq(p, o) || **p == **o)
            })
            && *routes == other.routes
            && *callback == other.callback
            && *warnings == other.warnings
    }
}
