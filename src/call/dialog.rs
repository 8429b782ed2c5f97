//! One leg's dialog (RFC 3261 §12): what we learnt of the peer, and how to build requests
//! within it.

use crate::sip::{Hdr, IdGen, LocalAddrs, Method, NewRequest, Request, Response, SipError, Target};

/// Dialog state of one leg. Its texts are boxed slices, not `String`s: they are set once
/// (or replaced whole), and a call holds two dialogs for as long as it lasts, so neither the
/// 8 bytes of capacity per text nor any spare capacity earns its keep.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: Box<str>,
    pub local_tag: Box<str>,
    /// Our address header (with our tag): From of requests we send on this leg.
    pub local_hdr: Box<str>,
    /// The peer's address header (with its tag once known): To of requests we send.
    pub remote_hdr: Box<str>,
    pub remote_tag: Option<Box<str>>,
    /// The peer's Contact: Request-URI of requests we send in the dialog.
    pub remote_target: Box<str>,
    /// Route set, in the order Route headers are written.
    pub route_set: Box<[Box<str>]>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// Where requests on this leg are sent: the peer's signalling address. Dialog requests go
    /// to the address the peer is known by (its profile or its source), which keeps NAT'd
    /// phones and trunks behind one signalling IP working whatever their Contact says.
    pub target: Target,
    /// The methods the peer said it accepts (its `Allow`), once it said; `None`: unknown,
    /// so anything may be tried (RFC 3261 §20.5).
    pub peer_allows: Option<MethodSet>,
    /// Methods the peer refused (405, 501) in this dialog: out of `peer_allows` whatever a
    /// later `Allow` of its says.
    pub peer_refused: MethodSet,
    /// The peer answered the INVITE that made the dialog with a 2xx: a callee's dialog is
    /// confirmed, with or without a tag (an RFC 2543 peer's remote tag is null, RFC 3261
    /// §12.1.2), and ends with BYE, not CANCEL.
    pub answered: bool,
}

/// The methods the gateway knows by name, one bit each.
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "INFO",
    "PRACK",
    "UPDATE",
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// A set of SIP methods (an `Allow` list) as bits: no allocation per method per leg. A
/// method the gateway does not know by name is never in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodSet(u16);

impl MethodSet {
    fn bit(method: &str) -> Option<u16> {
        METHODS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(method))
            .map(|i| 1 << i)
    }

    pub fn from_tokens<S: AsRef<str>>(tokens: &[S]) -> MethodSet {
        MethodSet(
            tokens
                .iter()
                .filter_map(|t| Self::bit(t.as_ref().trim()))
                .fold(0, |a, b| a | b),
        )
    }

    pub fn contains(self, method: &str) -> bool {
        Self::bit(method).is_some_and(|b| self.0 & b != 0)
    }

    pub fn remove(&mut self, method: &str) {
        if let Some(b) = Self::bit(method) {
            self.0 &= !b;
        }
    }

    /// This set with `method` (one the gateway knows by name).
    fn union(self, method: &str) -> MethodSet {
        MethodSet(self.0 | Self::bit(method).unwrap_or(0))
    }

    /// This set without the methods of `other`.
    pub fn without(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 & !other.0)
    }
}

/// The methods a message's `Allow` lists; `None` without an `Allow`.
pub fn allow_of(tokens: Vec<String>) -> Option<MethodSet> {
    (!tokens.is_empty()).then(|| MethodSet::from_tokens(&tokens))
}

impl Dialog {
    /// The peer answered `method` with 405 or 501: it takes it no more, whatever its
    /// `Allow` said. Without one, its `Allow` stays unknown for every other method: made
    /// up as "all but this", it would list UPDATE for a peer that never said it takes it.
    pub fn peer_refuses(&mut self, method: &str) {
        if let Some(a) = self.peer_allows.as_mut() {
            a.remove(method);
        }
        self.peer_refused = self.peer_refused.union(method);
    }

    /// Whether the peer may be sent `method` (unknown counts as yes; refused, no).
    pub fn peer_allows(&self, method: &Method) -> bool {
        !self.peer_refused.contains(method.as_str())
            && self.peer_allows.is_none_or(|a| a.contains(method.as_str()))
    }

    /// A new in-dialog request (BYE, re-INVITE, INFO, …) with the next local CSeq.
    pub fn request(
        &mut self,
        method: Method,
        local: &LocalAddrs,
        ids: &mut IdGen,
    ) -> Result<Request, SipError> {
        self.local_cseq = self.local_cseq.wrapping_add(1);
        let cseq = self.local_cseq;
        let branch = ids.branch();
        self.build(method, cseq, local, &branch)
    }

    /// The ACK for a 2xx to the INVITE that had CSeq `cseq` (RFC 3261 §13.2.2.4): a
    /// transaction of its own, with the INVITE's sequence number. Its branch is derived from
    /// the dialog and the CSeq rather than drawn at random, so the ACK built again for a late
    /// 2xx retransmission (once a settled call no longer keeps its bytes) is the same ACK.
    pub fn ack(&self, cseq: u32, local: &LocalAddrs) -> Result<Request, SipError> {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same in every run, so a restart changes nothing either.
        let mut h = std::hash::DefaultHasher::new();
        // The peer's tag too: a second fork's 2xx gets an ACK with a branch of its own.
        (&self.call_id, &self.local_tag, &self.remote_tag, cseq).hash(&mut h);
        let branch = format!("{}ack{:016x}", crate::sip::BRANCH_COOKIE, h.finish());
        self.build(Method::Ack, cseq, local, &branch)
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        local: &LocalAddrs,
        branch: &str,
    ) -> Result<Request, SipError> {
        // A strict router first (no `lr`, RFC 2543): it is the Request-URI, and the remote
        // target goes last in Route (RFC 3261 §12.2.1.1).
        let strict = (self.route_set.first())
            .map(|r| route_uri(r))
            .filter(|(_, loose)| !loose);
        // (Written only then: every in-dialog request, ACKs included, comes this way.)
        let target_route;
        let (uri, routes): (&str, Vec<&str>) = match strict {
            Some((first, _)) => {
                target_route = format!("<{}>", self.remote_target);
                let rest = self.route_set.iter().skip(1).map(|r| &**r);
                (first, rest.chain([target_route.as_str()]).collect())
            }
            None => (
                &self.remote_target,
                self.route_set.iter().map(|r| &**r).collect(),
            ),
        };
        let mut r = NewRequest {
            method: method.clone(),
            uri,
            via: &local.via(self.target.transport, branch),
            max_forwards: 70,
            routes: &routes,
            from: &self.local_hdr,
            to: &self.remote_hdr,
            call_id: &self.call_id,
            cseq,
        }
        .build()?;
        // The target refresh requests carry our Contact: RFC 3261 §12.2.1.1 and RFC 3311
        // (INVITE, UPDATE), RFC 3515 §2.4.1 (REFER: exactly one), RFC 6665 §8.2.1 (a
        // NOTIFY, SUBSCRIBE); strict peers answer 400 to one without.
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Refer | Method::Notify | Method::Subscribe
        ) {
            r.push_header(&Hdr::CONTACT, local.contact(self.target.transport))?;
        }
        r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
        Ok(r)
    }

    /// Learn the callee's tag, target and route set from a response that creates or confirms
    /// the dialog (RFC 3261 §12.1.2).
    pub fn learn_from_response(&mut self, resp: &Response) {
        let mut new_branch = false;
        self.answered |= resp.is_success();
        if let Some(tag) = resp.to_tag() {
            // Another fork's dialog numbers its requests afresh (RFC 3261 §12.2.2 compares
            // CSeq within one dialog): what the last fork sent says nothing of this one's.
            if self.remote_tag.as_deref() != Some(tag.as_str()) {
                self.remote_cseq = None;
                new_branch = true;
            }
            self.remote_tag = Some(tag.into());
            if let Some(to) = resp.header(&Hdr::TO) {
                self.remote_hdr = to.into();
            }
        }
        if let Some(c) = resp.contact_uri() {
            self.remote_target = c.into();
        }
        let allow = allow_of(resp.header_tokens(&Hdr::ALLOW));
        if new_branch {
            // (Another branch: what this one refuses is its own to say.)
            self.peer_refused = MethodSet::default();
        }
        if allow.is_some() || new_branch {
            self.peer_allows = allow.map(|a| a.without(self.peer_refused));
        }
        // A branch's route set is its own response's Record-Route, none if it has none
        // (RFC 3261 §12.1.2): not the route of the branch heard before it.
        let mut rr = resp.record_route();
        if !rr.is_empty() || resp.is_success() || new_branch {
            rr.reverse();
            self.route_set = rr.into_iter().map(String::into_boxed_str).collect();
        }
    }
}

/// The URI of a route set entry (`<sip:p.example;lr>`), and whether it names a loose router
/// (its `lr` parameter, RFC 3261 §19.1.1).
fn route_uri(entry: &str) -> (&str, bool) {
    let uri = (entry.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(entry.trim(), |(uri, _)| uri);
    // Parameters after the host: a user part may hold `;` of its own.
    let host_on = uri.rsplit_once('@').map_or(uri, |(_, host)| host);
    let loose = (host_on.split(';').skip(1))
        .any(|p| (p.split('=').next().unwrap_or("").trim()).eq_ignore_ascii_case("lr"));
    (uri, loose)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_entry_names_its_uri_and_whether_it_routes_loosely() {
        assert_eq!(
            route_uri("<sip:p1.example;lr>"),
            ("sip:p1.example;lr", true)
        );
        assert!(route_uri("<sip:p1.example;LR=on;transport=udp>").1);
        assert_eq!(
            route_uri("<sip:10.0.0.1:5060>"),
            ("sip:10.0.0.1:5060", false)
        );
        assert!(!route_uri("<sip:a;lr@p.example>").1, "a user part's");
        assert!(!route_uri("<sip:p.example;lrx>").1);
    }

    #[test]
    fn an_allow_list_is_a_set_of_known_methods() {
        let mut a = MethodSet::from_tokens(&["invite", " ACK", "UPDATE", "X-FOO"]);
        assert!(a.contains("INVITE") && a.contains("update") && a.contains("ACK"));
        assert!(!a.contains("INFO") && !a.contains("X-FOO"));
        a.remove("UPDATE");
        assert!(!a.contains("UPDATE"));
        assert_eq!(allow_of(Vec::new()), None);
    }
}
