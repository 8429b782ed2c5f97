//! What the gateway believes of the peer a message came from ([`Sender`]), and the privacy
//! its party asked for, which stands for the dialog.

use super::uri::DialPlan;
use crate::config::{Profile, Role};
use crate::sip::{Hdr, SipError};

/// What the gateway believes of the peer a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// A trunk: trusted with the number parameters that route or bill a call (see
    /// [`super::egress::identity_header`]).
    pub trunk: bool,
    /// Believed (`[headers] trust_asserted`): the identities it asserts (P-Asserted-Identity,
    /// Remote-Party-ID) or prefers (P-Preferred-Identity) are passed on, and the numbers
    /// that say who forwarded the call (Diversion, History-Info). Anyone else's are not (RFC
    /// 3325 §5, §6): a carrier bills a forwarded call, and lets it show the caller's number,
    /// by the forwarding number those name, which a phone could otherwise make up.
    pub asserts: bool,
    /// How its callers dial (its `[uri] country_code` and prefixes): the numbers it sends
    /// are read so before the peer they go to gets them in its form. `None`: read with
    /// the receiving peer's prefixes.
    pub plan: Option<DialPlan>,
    /// Its party asked its identity withheld earlier in the dialog (`Privacy: id`): a
    /// message of its without `Privacy` is judged so too.
    pub private: bool,
}

impl Sender {
    /// The peer of `profile` (none: one the gateway knows nothing of, trusted with nothing).
    pub fn of(profile: Option<&Profile>) -> Sender {
        Sender {
            trunk: profile.is_some_and(|p| p.role == Role::Trunk),
            asserts: profile.is_some_and(|p| p.headers.trust_asserted),
            plan: profile.and_then(|p| p.uri.dial_plan()),
            private: false,
        }
    }

    /// The `Privacy` a message of its with these `lines` stands under: its own, else the
    /// one its party asked earlier in the dialog.
    pub fn privacy(self, lines: Vec<String>) -> Vec<String> {
        if lines.is_empty() && self.private {
            vec!["id".into()]
        } else {
            lines
        }
    }

    /// Whether its identity header `h` may be passed on at all: not one that claims who
    /// a party is ([`super::headers::ASSERTED`]), or who forwarded the call, from a peer
    /// that is not believed.
    pub(super) fn vouched(self, h: &Hdr) -> bool {
        self.asserts
            || !(super::headers::ASSERTED.contains(h)
                || *h == Hdr::HISTORY_INFO
                || *h == Hdr::named("Diversion"))
    }
}

/// `out` without a `Privacy` of its own, carrying an identity while its sender's party
/// asks it withheld (`privacy`: what [`Sender::privacy`] made of its message's lines, which
/// the earlier request's stand for when it has none): the identity goes to a trusted peer
/// with `Privacy: id` (RFC 3325 §7), or it would show it. So too when the message's own
/// `Privacy` asked for `id` but was not copied (a control character in it): before, the
/// identity then went without, failing open.
pub(super) fn standing_privacy(
    out: &mut impl crate::sip::Body,
    privacy: &[String],
) -> Result<(), SipError> {
    let header = Hdr::named("Privacy");
    let carries = (super::headers::ASSERTED.iter()).any(|h| out.header_value(h).is_some());
    if super::headers::asks_id_privacy(privacy) && carries && out.header_value(&header).is_none() {
        out.insert_header_before_length(&header, "id".into())?;
    }
    Ok(())
}
