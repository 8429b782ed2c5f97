//! `[[route]]`: which peers a call from a peer, to a dialled prefix, goes to.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::file::RouteSection;
use super::{ConfigError, PeerName, ring_timeout_s};

/// Which inbound peer a route applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFrom {
    Any,
    Peer(PeerName),
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub from: RouteFrom,
    /// Dialled-number prefix, visual separators removed; empty matches every number.
    pub prefix: String,
    /// Peers tried in order.
    pub to: Vec<PeerName>,
    pub ring_timeout: Option<Duration>,
}

impl Route {
    /// Whether the route takes calls from `from` (`None`: a call the gateway places
    /// itself, which only `from = "*"` routes take).
    pub fn takes(&self, from: Option<&PeerName>) -> bool {
        match &self.from {
            RouteFrom::Any => true,
            RouteFrom::Peer(p) => from == Some(p),
        }
    }
}

/// Every `[[route]]`, in order; `missing` names the file a peer without a profile would have
/// (one with errors has one: it is reported already).
pub(super) fn routes(
    file_routes: Vec<Spanned<RouteSection>>,
    path: &Path,
    missing: &dyn Fn(&PeerName) -> Option<String>,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for r in file_routes {
        let span = r.span();
        let r = r.into_inner();
        let from = if r.from.get_ref() == "*" {
            RouteFrom::Any
        } else {
            let name = PeerName(r.from.get_ref().as_str().into());
            if let Some(file) = missing(&name) {
                errs.push(at(
                    r.from.span(),
                    format!("route from unknown peer {:?} (no {file})", name.0),
                ));
            }
            RouteFrom::Peer(name)
        };
        let prefix = crate::sip::strip_visual_separators(r.prefix.get_ref());
        // A `+` past the first character matches no number: the route would be dead.
        let digits = prefix.strip_prefix('+').unwrap_or(&prefix);
        if !digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
        {
            errs.push(at(
                r.prefix.span(),
                format!(
                    "route prefix {:?} must be digits, * or #, optionally after +",
                    r.prefix.get_ref()
                ),
            ));
        }
        let to_span = r.to.span();
        let to: Vec<PeerName> =
            r.to.into_inner()
                .into_vec()
                .into_iter()
                .map(|n| PeerName(n.into()))
                .collect();
        if to.is_empty() {
            errs.push(at(
                to_span.clone(),
                "route must name at least one peer in `to`".into(),
            ));
        }
        for p in &to {
            if let Some(file) = missing(p) {
                errs.push(at(
                    to_span.clone(),
                    format!("route to unknown peer {:?} (no {file})", p.0),
                ));
            }
        }
        let ring_timeout = match r.ring_timeout_s {
            Some(t) => ring_timeout_s(*t.get_ref())
                .map_err(|m| errs.push(at(t.span(), m.into())))
                .ok(),
            None => None,
        };
        // The first route that takes a call wins: one after a route taking every call it
        // would (the same callers or every one, a prefix its own starts with) is dead.
        let shadowing = routes.iter().position(|earlier| {
            (earlier.from == RouteFrom::Any || earlier.from == from)
                && prefix.starts_with(&earlier.prefix)
        });
        if let Some(i) = shadowing {
            warnings.push(at(
                span,
                format!(
                    "warning: this route is never taken: [[route]] number {} above takes every \
                     call it would (routes are tried in order); put it before that one",
                    i + 1
                ),
            ));
        }
        routes.push(Route {
            from,
            prefix,
            to,
            ring_timeout,
        });
    }
    if routes.is_empty() {
        errs.push(ConfigError::file(
            path,
            "no [[route]]: every call would be refused with 404",
        ));
    }
    routes
}
