//! `trunkgate explain`: the dry run of what leaves toward a peer, built by the same code the
//! live call path uses.

use bytes::Bytes;
use thiserror::Error;

use super::admission::numbers_in;
use super::outbound::outbound_invite;
use crate::config::{Config, PeerName};
use crate::interop::egress::Sender;
use crate::interop::prack::PrackMode;
use crate::interop::topology::{PER_LEG_HEADERS, REHOSTED_HEADERS};
use crate::sip::{Hdr, IdGen, Message, SipError, parse_datagram};

/// The message as it would leave, and what was changed on the way.
#[derive(Debug)]
pub struct Explained {
    pub message: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Error)]
pub enum ExplainError {
    #[error(
        "unknown peer {0:?}: no profile of the configuration is named so ({0}.toml in its profiles folder)"
    )]
    UnknownPeer(String),
    #[error("cannot read the message: {0}")]
    Parse(SipError),
    #[error("explain takes an initial INVITE (a request without a To tag); this is {0}")]
    NotInitialInvite(String),
    #[error("the Request-URI {0} carries no number to dial")]
    NoNumber(String),
    #[error("cannot build the outbound INVITE: {0}")]
    Build(SipError),
}

/// Show how the initial INVITE in `text` would be sent to `peer`.
pub fn explain_invite(
    cfg: &Config,
    peer: &PeerName,
    text: &str,
) -> Result<Explained, ExplainError> {
    let profile = cfg
        .profile(peer)
        .ok_or_else(|| ExplainError::UnknownPeer(peer.to_string()))?;
    let msg = parse_datagram(normalise(text), usize::MAX / 2).map_err(ExplainError::Parse)?;
    let req = match msg {
        Message::Request(r) if r.method() == crate::sip::Method::Invite && r.to_tag().is_none() => {
            r
        }
        other => return Err(ExplainError::NotInitialInvite(other.summary())),
    };
    let (number, caller) = numbers_in(cfg, None, &req);
    let number = number.ok_or_else(|| ExplainError::NoNumber(req.uri()))?;
    let local = cfg.local_addrs();
    let mut ids = IdGen::new(0);
    // Shown as a trunk's call carries it: with the number parameters a trunk is trusted
    // with (a call from another peer carries only `ext` and `isub`; a note says so), and
    // its asserted identity (a peer outside the trust domain has its own left out); its
    // numbers read with the peer's own prefixes (the sender's dialling plan is not known).
    const TRUNK: Sender = Sender {
        trunk: true,
        asserts: true,
        plan: None,
        private: false,
    };
    let (_, mut out) = outbound_invite(&local, &mut ids, &req, &number, &caller, profile, TRUNK)
        .map_err(ExplainError::Build)?;
    // A late offer (no SDP) from a caller that does not do 100rel: as the call sends it.
    let late_offer = !super::anchor::carries_sdp(&out);
    let caller_rel = super::reliable::offers_100rel(&req);
    if late_offer && !caller_rel {
        super::third_party::without_100rel(&mut out, &[Hdr::SUPPORTED, Hdr::REQUIRE])
            .map_err(ExplainError::Build)?;
    }
    let anchored = anchor_for_explain(cfg, profile, &mut out);

    let mut notes = vec![format!("Request-URI: {} -> {}", req.uri(), out.uri())];
    for (h, name) in [(Hdr::FROM, "From"), (Hdr::TO, "To")] {
        notes.push(format!(
            "{name}: {} -> {}",
            req.header(&h).unwrap_or_default(),
            out.header(&h).unwrap_or_default()
        ));
    }
    let trunk_only = |uri: Option<String>| {
        uri.and_then(|u| crate::sip::dialled_number(&u))
            .is_some_and(|n| n.trusted_params(true) != n.trusted_params(false))
    };
    if trunk_only(Some(req.uri())) || trunk_only(req.from_uri()) {
        notes.push("number parameters (rn, npdi, cic, cpc, oli): carried as shown when the caller's peer is a trunk; from any other peer only ext and isub are".into());
    }
    if crate::interop::headers::ASSERTED
        .iter()
        .chain([&Hdr::named("Diversion"), &Hdr::HISTORY_INFO])
        .any(|h| out.header(h).is_some())
    {
        notes.push("P-Asserted-Identity, P-Preferred-Identity, Remote-Party-ID, Diversion, History-Info: carried as shown when the caller's peer is believed ([headers] trust_asserted); from any other peer left out".into());
    }
    notes.push("Via, Contact, Call-ID, CSeq and tags: the gateway's own (a new dialog; nothing of the caller's side is shown)".into());
    if let (Some(Ok(a)), Some(b)) = (req.max_forwards(), out.header(&Hdr::MAX_FORWARDS)) {
        notes.push(format!("Max-Forwards: {a} -> {b}"));
    }
    for h in REHOSTED_HEADERS.iter() {
        let (a, b) = (req.header_lines(h), out.header_lines(h));
        if a.is_empty() {
            continue;
        }
        if b.is_empty() {
            notes.push(format!(
                "{}: not passed (the sender asked for privacy and this peer is outside the trust domain, it could not be read to hide its hosts, or [headers] strip)",
                h.as_str()
            ));
        } else if *h == Hdr::HISTORY_INFO {
            // Its entries, however many lines they came in, go as one line.
            let (a, b) = (a.join(", "), b.join(", "));
            if a != b {
                notes.push(format!(
                    "History-Info: {a} -> {b} (each entry's number in the peer's form, hosts hidden, its index, cause and Reason kept)"
                ));
            }
        } else {
            for (a, b) in a.iter().zip(b) {
                if *a != b {
                    notes.push(format!(
                        "{}: {a} -> {b} (numbers in the peer's form, hosts hidden)",
                        h.as_str()
                    ));
                }
            }
        }
    }
    let rebuilt = [
        Hdr::VIA,
        Hdr::CONTACT,
        Hdr::FROM,
        Hdr::TO,
        Hdr::CALL_ID,
        Hdr::CSEQ,
        Hdr::MAX_FORWARDS,
        Hdr::CONTENT_LENGTH,
        Hdr::CONTENT_TYPE,
        Hdr::ALLOW,
        Hdr::SUPPORTED,
    ];
    for h in PER_LEG_HEADERS.iter() {
        if req.has_header(h)
            && !out.has_header(h)
            && !rebuilt.contains(h)
            && !REHOSTED_HEADERS.contains(h)
        {
            notes.push(format!(
                "{}: removed (belongs to the caller's hop or dialog)",
                h.as_str()
            ));
        }
    }
    notes.push(match profile.prack.mode {
        PrackMode::Supported if late_offer && !caller_rel => "100rel: not offered to this INVITE: it has no SDP (a late offer) and offers no 100rel, so nobody could answer an offer in a reliable 18x; one this peer sends anyway is PRACKed at once".into(),
        PrackMode::Supported if late_offer => "100rel: offered (Supported: 100rel), unless the caller's profile disables 100rel: this INVITE has no SDP (a late offer), and an offer in a reliable 18x needs the caller's answer in its PRACK; reliable 18x from this peer are PRACKed by the gateway".into(),
        PrackMode::Supported => "100rel: offered (Supported: 100rel); reliable 18x from this peer are PRACKed by the gateway".into(),
        PrackMode::Required if late_offer && !caller_rel => "100rel: not required of this INVITE, though the profile says required: it has no SDP (a late offer) and offers no 100rel, so nobody could answer an offer in a reliable 18x; a peer that insists answers 421, which ends the attempt".into(),
        PrackMode::Required => "100rel: required (Require: 100rel); a 420 from this peer ends the attempt".into(),
        PrackMode::Disabled => "100rel: not offered (no Supported/Require 100rel); a reliable 18x it sends anyway is PRACKed".into(),
    });
    if let Some(ptime) = profile.ptime {
        // The SDP, or a multipart body's SDP part (SIP-I): where `interop::egress::body_for`
        // sets it on the wire.
        let ct = req.header(&Hdr::CONTENT_TYPE);
        let body: &[u8] = req.body();
        let sdp = match crate::sdp::locate(ct.as_deref(), body) {
            Ok(Some(part)) => Some(part.of(body)),
            _ => None,
        };
        match sdp.and_then(|sdp| crate::sdp::set_ptime(sdp, ptime)) {
            Some(edit) => {
                let before: Vec<String> = edit
                    .before
                    .iter()
                    .map(|b| {
                        b.clone()
                            .map(|v| format!("a=ptime:{v}"))
                            .unwrap_or_else(|| "no a=ptime".into())
                    })
                    .collect();
                let rest = if profile.anchor {
                    "addresses and ports: see below"
                } else {
                    "other SDP lines unchanged"
                };
                // As written: a section's a=maxptime may have capped it.
                let after: Vec<String> = crate::sdp::lines(&edit.body)
                    .filter_map(|l| {
                        let v = l.value(b"a=ptime:")?;
                        Some(format!("a=ptime:{}", String::from_utf8_lossy(v).trim()))
                    })
                    .collect();
                notes.push(format!(
                    "SDP: {} -> {} ({rest})",
                    before.join(", "),
                    after.join(", ")
                ));
            }
            None => notes.push(format!("SDP: no audio SDP to set a=ptime:{ptime} in")),
        }
    }
    if let Some(note) = anchored {
        notes.push(note);
    }
    notes.push(format!("sent to {} ({})", profile.address, profile.name));
    Ok(Explained {
        message: String::from_utf8_lossy(&out.to_bytes()).into_owned(),
        notes,
    })
}

/// The SDP of an INVITE toward an anchoring peer as the call would send it: the gateway's
/// media address in `c=`/`o=`, and ports from `[media] ports` (the real ones are handed out
/// at call time). Returns the note saying so, or why the SDP would be refused.
fn anchor_for_explain(
    cfg: &Config,
    profile: &crate::config::Profile,
    out: &mut crate::sip::Request,
) -> Option<String> {
    if !profile.anchor {
        return None;
    }
    let ct = out.header(&Hdr::CONTENT_TYPE);
    let mb = match crate::sdp::MediaBody::read(ct.as_deref(), out.body(), cfg.media_max_streams) {
        Ok(Some(mb)) => mb,
        Ok(None) => return None,
        Err(e) => {
            return Some(format!(
                "SDP: cannot be anchored ({e}): the call would get 488"
            ));
        }
    };
    let ports: Vec<Option<u16>> = mb
        .streams
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.is_relayed()
                .then(|| cfg.media_ports.0.saturating_add(2 * i as u16))
        })
        .collect();
    let body = out.body().clone();
    let anchored = mb
        .anchored(&body, cfg.media_ip, &ports, None)
        .ok()
        .and_then(|b| out.set_body(b, ct.as_deref()).ok());
    match anchored {
        Some(()) => Some(format!(
            "SDP: anchored ([media] anchor): c=/o= name the gateway ({}), and m= ports are allocated at call time from [media] ports ({}-{}; shown from the first)",
            cfg.media_ip, cfg.media_ports.0, cfg.media_ports.1
        )),
        None => Some("SDP: cannot be anchored: the call would get 488".into()),
    }
}

/// Operators paste messages with bare LF line ends and stale Content-Length: fix both.
fn normalise(text: &str) -> Bytes {
    let text = text.replace("\r\n", "\n");
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h.to_string(), b.to_string()),
        None => (text.trim_end().to_string(), String::new()),
    };
    let mut out = String::new();
    for line in head.lines() {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    let body = body.replace('\n', "\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> (Config, String) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let cfg = Config::load(&root.join("gateway.toml")).unwrap_or_else(|e| panic!("{e}"));
        let invite =
            std::fs::read_to_string(root.join("profiles/examples/pbx-invite.txt")).unwrap();
        (cfg, invite)
    }

    #[test]
    fn toward_an_anchoring_peer_the_sdp_is_shown_as_the_call_sends_it() {
        let (cfg, invite) = shipped();
        let e = explain_invite(&cfg, &PeerName("carrier-a".into()), &invite).unwrap();
        let sdp = e.message.split("\r\n\r\n").nth(1).unwrap();
        assert!(!sdp.contains("127.0.0.2"), "the PBX's address: {sdp}");
        assert!(sdp.contains(&format!("c=IN IP4 {}", cfg.media_ip)), "{sdp}");
        assert!(
            sdp.contains(&format!("m=audio {} ", cfg.media_ports.0)),
            "{sdp}"
        );
        assert!(
            e.notes.iter().any(|n| n.contains("allocated at call time")),
            "{:?}",
            e.notes
        );
        // The PBX's asserted identity is shown, with the rule that carries it.
        assert!(
            e.message.contains("\r\nP-Asserted-Identity: "),
            "{}",
            e.message
        );
        assert!(
            e.notes.iter().any(|n| n.contains("trust_asserted")),
            "{:?}",
            e.notes
        );
    }

    /// The ptime note shows what the SDP says after the edit: a section's a=maxptime below
    /// the profile's ptime caps it (before, the note named the profile's value).
    #[test]
    fn the_ptime_note_shows_the_ptime_written() {
        let (cfg, invite) = shipped();
        let peer = PeerName("carrier-a".into());
        assert_eq!(cfg.profiles[&peer].ptime, Some(20));
        let capped = invite.replacen("m=audio", "a=maxptime:10\nm=audio", 1);
        let e = explain_invite(&cfg, &peer, &capped).unwrap();
        let note = e.notes.iter().find(|n| n.starts_with("SDP: ")).unwrap();
        assert!(note.contains("-> a=ptime:10 ("), "{note}");
        let e = explain_invite(&cfg, &peer, &invite).unwrap();
        let note = e.notes.iter().find(|n| n.starts_with("SDP: ")).unwrap();
        assert!(note.contains("-> a=ptime:20 ("), "{note}");
        // A SIP-I INVITE's SDP part gets its ptime on the wire too, and the note says so
        // (before: "no audio SDP to set a=ptime in").
        let (head, sdp) = invite.split_once("\n\n").unwrap();
        let head: String = head
            .lines()
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("content-type:") {
                    "Content-Type: multipart/mixed;boundary=b\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let sip_i = format!(
            "{head}\n--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\n\
             Content-Type: application/isup;version=itu-t92+\r\n\r\nAB\r\n--b--\r\n"
        );
        let e = explain_invite(&cfg, &peer, &sip_i).unwrap();
        let note = e.notes.iter().find(|n| n.starts_with("SDP: ")).unwrap();
        assert!(note.contains("-> a=ptime:20 ("), "{note}");
    }

    #[test]
    fn a_late_offer_without_100rel_is_shown_without_offering_100rel() {
        let (cfg, invite) = shipped();
        let peer = PeerName("carrier-a".into());
        assert_eq!(cfg.profiles[&peer].prack.mode, PrackMode::Supported);
        let (head, _) = invite.split_once("\n\n").unwrap();
        let without_rel: String = head
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("supported:"))
            .filter(|l| !l.to_ascii_lowercase().starts_with("content-type:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let late = format!("{without_rel}\n");
        let e = explain_invite(&cfg, &peer, &late).unwrap();
        let (head, _) = e.message.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("100rel"), "{head}");
        assert!(
            e.notes
                .iter()
                .any(|n| n.contains("not offered to this INVITE")),
            "{:?}",
            e.notes
        );
        // With SDP, the same INVITE is offered 100rel as the profile says.
        let early = invite
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("supported:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let e = explain_invite(&cfg, &peer, &early).unwrap();
        let supported = e
            .message
            .lines()
            .find(|l| l.starts_with("Supported:"))
            .unwrap_or_default();
        assert!(supported.contains("100rel"), "{}", e.message);
    }

    #[test]
    fn toward_a_peer_that_does_not_anchor_the_sdp_keeps_its_addresses() {
        let (cfg, invite) = shipped();
        let e = explain_invite(&cfg, &PeerName("carrier-b".into()), &invite).unwrap();
        assert!(!cfg.profiles[&PeerName("carrier-b".into())].anchor);
        let sdp = e.message.split("\r\n\r\n").nth(1).unwrap();
        assert!(sdp.contains("127.0.0.2"), "{sdp}");
        assert!(
            !e.notes.iter().any(|n| n.contains("anchored")),
            "{:?}",
            e.notes
        );
    }
}
