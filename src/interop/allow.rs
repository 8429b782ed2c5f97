//! The gateway's `Allow` (RFC 3261 §20.5): what it takes from a peer, and what a 405 it
//! relays from the far leg says.

/// Methods the gateway handles; sent in Allow.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK";

/// [`ALLOW`] with REFER.
const ALLOW_WITH_REFER: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK, REFER";

/// Methods carried to the far leg as they are, which the far end may refuse; the others the
/// gateway answers on each leg itself (an in-dialog OPTIONS the far end refuses it answers
/// for its own leg, PRACK is each leg's own).
const CARRIED: [&str; 3] = ["INFO", "UPDATE", "REFER"];

/// Our `Allow` toward `peer`: what we accept from it, REFER when its `[transfer]` relays
/// it to the call's other leg (`other_is_trunk`: that leg's peer is a trunk, or not known).
pub fn allow_for(peer: &crate::config::Profile, other_is_trunk: bool) -> &'static str {
    if super::transfer::relays_to(peer, other_is_trunk) {
        ALLOW_WITH_REFER
    } else {
        ALLOW
    }
}

/// The `Allow` of a 405 relayed from the far leg (a refusal of `refused`, carrying the far
/// end's own `far` Allow lines): `ours` less the carried methods the far end refuses, the
/// refused one and, when it listed what it takes, those it left out. Our whole list said
/// the refused method was allowed (a 405 to an INFO listing INFO, RFC 3261 §21.4.6), and
/// the sender would try it again.
pub fn in_relayed_405(ours: &str, refused: &str, far: &[String]) -> String {
    let far_takes = |m: &str| {
        far.is_empty()
            || (far.iter().flat_map(|l| l.split(','))).any(|t| t.trim().eq_ignore_ascii_case(m))
    };
    (ours.split(',').map(str::trim))
        .filter(|m| !CARRIED.contains(m) || (*m != refused && far_takes(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_405_leaves_out_what_the_far_end_refuses() {
        let far = |s: &str| vec![s.to_string()];
        assert_eq!(
            in_relayed_405(ALLOW, "INFO", &[]),
            "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, PRACK"
        );
        // Its own Allow leaves UPDATE out too; what the gateway answers itself stays.
        assert_eq!(
            in_relayed_405(ALLOW_WITH_REFER, "INFO", &far("INVITE,ACK, bye,refer")),
            "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, REFER"
        );
        // A refused method the gateway answers itself (an in-dialog OPTIONS) stays listed.
        assert_eq!(in_relayed_405(ALLOW, "OPTIONS", &[]), ALLOW);
    }
}
