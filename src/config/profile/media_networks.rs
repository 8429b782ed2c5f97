//! A profile's `[media] networks`: where the peer's media may be.

use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::ConfigError;
use crate::config::file::ProfileMediaSection;

/// `[media] networks` (None: anywhere). An empty list would refuse all media: a mistake,
/// not a policy.
pub(super) fn media_networks(
    media: &ProfileMediaSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<Arc<[IpNet]>> {
    let list = media.networks.as_ref()?;
    if list.get_ref().is_empty() {
        let m = "[media] networks is empty (leave it out to allow media anywhere)";
        errs.push(ConfigError::at(path, text, list.span().start, m));
        return None;
    }
    let nets = crate::config::net::parse_nets(list.get_ref(), "[media] networks", |n, msg| {
        errs.push(ConfigError::at(path, text, n.span().start, msg))
    });
    Some(Arc::from(nets))
}
