//! Which headers cross from one leg to the other: an allow-list. The gateway builds every
//! per-leg header itself (`topology::PER_LEG_HEADERS`) and rewrites the identity headers
//! (`topology::REHOSTED_HEADERS`); of the rest only the end-to-end headers below are copied,
//! plus what the receiving peer's `[headers] pass` adds, minus its `strip`. Anything else (a
//! PBX's `X-` headers, a vendor's diagnostics) stays on the leg it came from.

use std::sync::LazyLock;

use super::topology::PER_LEG_HEADERS;
use crate::sip::Hdr;

/// Headers that describe the call or the body rather than a hop, copied by default.
pub static END_TO_END: LazyLock<Vec<Hdr>> = LazyLock::new(|| {
    [
        // The call as the caller described it.
        "Subject",
        "Priority",
        "Organization",
        "Date",
        "Expires",
        "Timestamp",
        "Privacy",
        "Resource-Priority",
        "Accept-Resource-Priority",
        "User-to-User",
        "Session-ID",
        "P-Early-Media",
        "Reason",
        // When to try again (a 486's or 480's advice to the caller; never a 503's, which
        // speaks of the far leg's server: `egress::relayed_response`).
        "Retry-After",
        // What the sender takes, and the body it sent.
        "Accept",
        "Accept-Language",
        "Accept-Encoding",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "MIME-Version",
        // INFO packages (RFC 6086) and the transfer's subscription (RFC 3515, 4488). Not
        // `Allow-Events`: the packages a party takes SUBSCRIBEs for, which the gateway
        // refuses (405); passed on, a PBX acting on `talk` or `dialog` met only refusals.
        "Recv-Info",
        "Info-Package",
        "Event",
        "Subscription-State",
        "Refer-Sub",
        // Where the caller is (RFC 6442): the location body goes on as it came, and these
        // point at it (`cid:`) or name where to fetch it, and say whether the network may
        // route by it. Without them an emergency call's location reached the carrier inert.
        "Geolocation",
        "Geolocation-Routing",
        "Geolocation-Error",
    ]
    .into_iter()
    .map(Hdr::named)
    .collect()
});

/// A profile's `[headers]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderPolicy {
    /// Copied to this peer besides [`END_TO_END`].
    pub pass: Vec<Hdr>,
    /// Never copied to this peer (wins over `pass` and the defaults; identity headers too).
    pub strip: Vec<Hdr>,
    /// `User-Agent` of our requests and `Server` of our responses toward this peer (None:
    /// neither header is sent).
    pub user_agent: Option<String>,
    /// This peer is in our trust domain (RFC 3325 §2.3): it gets asserted identities even
    /// when their owner asked for privacy (`Privacy: id`), and withholds them itself.
    pub trust_identity: bool,
    /// The identities this peer asserts (P-Asserted-Identity, Remote-Party-ID) are believed
    /// and passed on (RFC 3325 §5); anyone else's are left out: a phone could claim any
    /// number, and a trunk would take it as asserted by us. Apart from `trust_identity`: a
    /// PBX that authenticates its phones asserts their identities truly, yet shows every
    /// identity it gets on their screens.
    pub trust_asserted: bool,
}

impl HeaderPolicy {
    /// Whether a header named `h` from the other leg is copied to this peer.
    pub fn copies(&self, h: &Hdr) -> bool {
        !self.strip.contains(h)
            && !PER_LEG_HEADERS.contains(h)
            && (END_TO_END.contains(h) || self.pass.contains(h))
    }

    /// Whether the identity header `h` (rewritten for this peer) reaches it at all, in a
    /// message whose `Privacy` lines are `privacy`: not when stripped, nor when it asserts
    /// an identity whose owner asked for privacy and this peer is outside the trust domain
    /// (RFC 3325 §7, RFC 3323 §4.2: `Privacy: id`), a STIR/SHAKEN `Identity` alike (RFC
    /// 8224: its token names the caller's number, readable); History-Info not when it asks
    /// for all of the history to be withheld (`history` or `header`, RFC 7044 §10.1.3).
    pub fn keeps_identity(&self, h: &Hdr, privacy: &[String]) -> bool {
        let withheld = if *h == Hdr::HISTORY_INFO {
            super::history::asks_all_withheld(privacy)
        } else {
            (ASSERTED.contains(h) || *h == Hdr::named("Identity")) && asks_id_privacy(privacy)
        };
        !self.strip.contains(h) && (self.in_trust_domain() || !withheld)
    }

    /// Whether this peer gets a P-Asserted-Identity its owner asked withheld (`Privacy: id`):
    /// it is in the trust domain and takes the header ([`HeaderPolicy::keeps_identity`]).
    pub fn keeps_private_identity(&self) -> bool {
        !self.strip.contains(&Hdr::P_ASSERTED_IDENTITY) && self.in_trust_domain()
    }

    /// In the trust domain for asserted identities. A trusted peer whose `strip` takes
    /// `Privacy` off would get an identity without the request to withhold it, and show it:
    /// outside the trust domain for it.
    fn in_trust_domain(&self) -> bool {
        self.trust_identity && !self.strip.contains(&Hdr::named("Privacy"))
    }
}

/// The headers that assert (or claim) who a party is: `Privacy: id` withholds them from
/// peers outside the trust domain (RFC 3325 §7), and a peer that is not believed cannot
/// send them on (§5, §6: the next proxy may assert a preferred identity on our word).
pub static ASSERTED: std::sync::LazyLock<[Hdr; 3]> = std::sync::LazyLock::new(|| {
    [
        Hdr::P_ASSERTED_IDENTITY,
        Hdr::P_PREFERRED_IDENTITY,
        Hdr::named("Remote-Party-ID"),
    ]
});

/// Whether `Privacy` lines ask for the identity to be withheld: an `id` value (RFC 3325
/// §9.3) among the `;`- or `,`-separated ones, in any case.
pub fn asks_id_privacy(privacy: &[String]) -> bool {
    asks_privacy_of(privacy, &["id"])
}

/// Whether a caller whose `Privacy` is `privacy` is anonymous to a peer of this policy: it
/// asked to be private (`id`, or `user`: RFC 3323 §4.2) and the peer is outside the trust
/// domain, which would show its From as it shows a P-Asserted-Identity.
pub fn hides_caller(policy: &HeaderPolicy, privacy: &[String]) -> bool {
    asks_privacy_of(privacy, &["id", "user"]) && !policy.keeps_private_identity()
}

/// Whether a message under `privacy` goes to a peer of this policy without what its sender
/// wrote of itself ([`is_user_info`]): it asked for user-level privacy (`Privacy: user`, RFC
/// 3323 §5.1) and the peer is outside the trust domain.
pub fn hides_user_info(policy: &HeaderPolicy, privacy: &[String]) -> bool {
    asks_privacy_of(privacy, &["user"]) && !policy.keeps_private_identity()
}

/// Whether `h` is what a party writes of itself: `Subject`, `Organization`.
pub fn is_user_info(h: &Hdr) -> bool {
    *h == Hdr::named("Subject") || *h == Hdr::named("Organization")
}

/// Whether `Privacy` lines hold one of `values` among their `;`- or `,`-separated ones, in
/// any case.
pub(super) fn asks_privacy_of(privacy: &[String], values: &[&str]) -> bool {
    (privacy.iter())
        .flat_map(|l| l.split([';', ',']))
        .map(str::trim)
        .any(|v| values.iter().any(|w| v.eq_ignore_ascii_case(w)))
}

/// Why a header name cannot be in `[headers] pass`.
pub fn pass_refusal(h: &Hdr) -> Option<&'static str> {
    PER_LEG_HEADERS
        .contains(h)
        .then_some("the gateway writes it for each leg itself (or never copies it)")
}

/// Why a header name cannot be in `[headers] strip`: `Content-Encoding` says how the body
/// is encoded, and the body goes on as it came (a peer would read a compressed body as
/// plain: an INVITE's SDP, a SIP-I part).
pub fn strip_refusal(h: &Hdr) -> Option<&'static str> {
    (*h == Hdr::named("Content-Encoding")).then_some(
        "the body goes on as it came, and without it a peer would read an encoded body as plain",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_end_to_end_headers_and_passed_ones_cross() {
        let p = HeaderPolicy::default();
        assert!(p.copies(&Hdr::named("Subject")));
        assert!(p.copies(&Hdr::named("subject")));
        assert!(!p.copies(&Hdr::named("X-Custom")));
        assert!(!p.copies(&Hdr::VIA));
        assert!(!p.copies(&Hdr::named("User-Agent")));
        let p = HeaderPolicy {
            pass: vec![Hdr::named("X-Custom")],
            strip: vec![Hdr::named("Subject"), Hdr::P_ASSERTED_IDENTITY],
            user_agent: None,
            trust_identity: true,
            trust_asserted: true,
        };
        assert!(p.copies(&Hdr::named("x-custom")));
        assert!(!p.copies(&Hdr::named("Subject")));
        assert!(!p.keeps_identity(&Hdr::P_ASSERTED_IDENTITY, &[]));
        assert!(p.keeps_identity(&Hdr::named("Diversion"), &[]));
    }

    /// `Privacy: id` withholds the asserted identities from a peer outside the trust domain
    /// (RFC 3325 §7), whatever the case or the other values beside it; a trusted peer gets
    /// them, and Diversion is no asserted identity.
    #[test]
    fn privacy_id_withholds_asserted_identities_from_untrusted_peers() {
        let untrusted = HeaderPolicy::default();
        let trusted = HeaderPolicy {
            trust_identity: true,
            ..HeaderPolicy::default()
        };
        let private = ["header; ID".to_string()];
        for h in [
            Hdr::P_ASSERTED_IDENTITY,
            Hdr::P_PREFERRED_IDENTITY,
            Hdr::named("Remote-Party-ID"),
        ] {
            assert!(!untrusted.keeps_identity(&h, &private), "{h:?}");
            assert!(trusted.keeps_identity(&h, &private), "{h:?}");
            assert!(untrusted.keeps_identity(&h, &["none".to_string()]), "{h:?}");
            assert!(untrusted.keeps_identity(&h, &[]), "{h:?}");
        }
        assert!(untrusted.keeps_identity(&Hdr::named("Diversion"), &private));
        assert!(!untrusted.keeps_identity(&Hdr::P_ASSERTED_IDENTITY, &["user,id".to_string()]));
    }

    #[test]
    fn per_leg_headers_cannot_be_passed() {
        assert!(pass_refusal(&Hdr::VIA).is_some());
        assert!(pass_refusal(&Hdr::named("Record-Route")).is_some());
        assert!(pass_refusal(&Hdr::named("X-Custom")).is_none());
    }
}
