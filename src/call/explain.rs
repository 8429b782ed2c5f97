//! `trunkgate explain`: the dry run of what leaves toward a peer, built by the same code the
//! live call path uses.

use bytes::Bytes;
use thiserror::Error;

use super::admission::numbers;
use super::outbound::outbound_invite;
use crate::config::{Config, PeerName};
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
    #[error("unknown peer {0:?}: there is no profiles/{0}.toml")]
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
        .ok_or_else(|| ExplainError::UnknownPeer(peer.0.clone()))?;
    let msg = parse_datagram(normalise(text), usize::MAX / 2).map_err(ExplainError::Parse)?;
    let req = match msg {
        Message::Request(r) if r.method() == crate::sip::Method::Invite && r.to_tag().is_none() => {
            r
        }
        other => return Err(ExplainError::NotInitialInvite(other.summary())),
    };
    let (number, caller) = numbers(&req);
    let number = number.ok_or_else(|| ExplainError::NoNumber(req.uri()))?;
    let local = cfg.local_addrs();
    let mut ids = IdGen::new(0);
    let (_, out) = outbound_invite(&local, &mut ids, &req, &number, &caller, profile)
        .map_err(ExplainError::Build)?;

    let mut notes = vec![format!("Request-URI: {} -> {}", req.uri(), out.uri())];
    for (h, name) in [(Hdr::FROM, "From"), (Hdr::TO, "To")] {
        notes.push(format!(
            "{name}: {} -> {}",
            req.header(&h).unwrap_or_default(),
            out.header(&h).unwrap_or_default()
        ));
    }
    notes.push("Via, Contact, Call-ID, CSeq and tags: the gateway's own (a new dialog; nothing of the caller's side is shown)".into());
    if let (Some(Ok(a)), Some(b)) = (req.max_forwards(), out.header(&Hdr::MAX_FORWARDS)) {
        notes.push(format!("Max-Forwards: {a} -> {b}"));
    }
    for h in REHOSTED_HEADERS.iter() {
        for (a, b) in req.header_lines(h).iter().zip(out.header_lines(h)) {
            if *a != b {
                notes.push(format!(
                    "{}: {a} -> {b} (numbers in the peer's form, hosts hidden)",
                    h.as_str()
                ));
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
        if req.has_header(h) && !out.has_header(h) && !rebuilt.contains(h) {
            notes.push(format!(
                "{}: removed (belongs to the caller's hop or dialog)",
                h.as_str()
            ));
        }
    }
    notes.push(match profile.prack.mode {
        PrackMode::Supported => "100rel: offered (Supported: 100rel); reliable 18x from this peer are PRACKed by the gateway".into(),
        PrackMode::Required => "100rel: required (Require: 100rel); a 420 from this peer ends the attempt".into(),
        PrackMode::Disabled => "100rel: not offered (no Supported/Require 100rel); a reliable 18x it sends anyway is PRACKed".into(),
    });
    if let Some(ptime) = profile.ptime {
        let ct = req.header(&Hdr::CONTENT_TYPE);
        let is_sdp = crate::sdp::is_sdp(ct.as_deref());
        match crate::sdp::set_ptime(req.body(), ptime).filter(|_| is_sdp) {
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
                notes.push(format!(
                    "SDP: {} -> a=ptime:{ptime} (other SDP lines unchanged)",
                    before.join(", ")
                ));
            }
            None => notes.push(format!("SDP: no audio SDP to set a=ptime:{ptime} in")),
        }
    }
    notes.push(format!("sent to {} ({})", profile.address, profile.name));
    Ok(Explained {
        message: String::from_utf8_lossy(&out.to_bytes()).into_owned(),
        notes,
    })
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
