//! SDP, edited line by line: the gateway changes only the lines a profile or anchoring asks
//! it to and forwards every other byte as it came.
//!
//! One splitter ([`lines`]) serves reading and rewriting, so both see the same lines whatever
//! mix of CRLF and bare LF a peer sends, and every line keeps its own line end. The SDP is
//! handled as bytes: the lines the gateway reads or rewrites (`v=`, `o=`, `c=`, `m=`,
//! `a=rtcp`, ICE attributes) are ASCII by definition, and any other line (an `s=` in
//! Latin-1 under `a=charset`, say) passes byte for byte.
//!
//! Reading is ours, not a crate's: it needs only the lines above, must agree exactly with the
//! rewriter on what a line is, and must refuse what it cannot read (see [`SdpError`]) so
//! that an anchored call refuses the SDP instead of forwarding it unanchored.

mod agreed;
mod anchor;
mod multipart;
mod origin;
mod sections;
mod terms;
mod warning;

pub use agreed::agreed;
pub use anchor::{
    DEFAULT_MAX_STREAMS, Endpoint, MAX_SECTIONS, MAX_STREAMS_LIMIT, Transport, anchor_streams,
    carries_sdp, limit_streams, read, refuse_all, refuse_all_answering, refused_sections,
    refusing_answer,
};
pub use multipart::{SdpPart, is_multipart, locate, sdp_of, with_sdp_part};
pub use origin::{Origin, present_again, same_but_origin};
pub use sections::{fit_sections, offered_sections};
pub use terms::{Terms, terms};
pub use warning::SdpWarning;

use bytes::Bytes;

/// Why an SDP body (or the SIP body meant to carry one) cannot be read or anchored. The call
/// layer refuses such an offer toward an anchored leg (488) rather than forwarding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP does not start with v=0")]
    NoVersion,
    #[error("SDP line {line}: {what}")]
    Syntax { line: usize, what: &'static str },
    #[error("SDP has no m= line")]
    NoMedia,
    #[error("SDP has {found} media sections to relay; at most {max} are accepted")]
    TooManyStreams { found: usize, max: usize },
    #[error("SDP has {found} media sections; at most {max} are accepted, port-0 ones included")]
    TooManySections { found: usize, max: usize },
    #[error("multipart body: {0}")]
    Multipart(&'static str),
    #[error("a body without a readable Content-Type (RFC 3261 §20.15)")]
    Untyped,
    /// An ICE offer whose candidates are still to come (RFC 8840 §4.2: `c=` 0.0.0.0, port
    /// 9): the relay would wait for a peer that only ICE can find, and the call would have
    /// no audio; refused, it may come again without trickle.
    #[error("SDP media section {stream}: ICE without candidates yet (trickle) cannot be anchored")]
    IceWithoutCandidates { stream: usize },
}

/// The SDP of a SIP body, read and checked, ready to be anchored: the two steps the call
/// layer needs, whatever the body's form (plain SDP or a multipart part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaBody {
    /// Where the SDP lies in the body.
    pub part: SdpPart,
    /// Its media streams in order, port-0 ones included (`Endpoint::is_rejected`).
    pub streams: Vec<Endpoint>,
    /// How many media sections of it [`MediaBody::anchored`] keeps.
    sections: usize,
    /// The sections its offer had past its own, as refused ones: what
    /// [`MediaBody::anchored`] adds back (an answer that left some out).
    pad: Vec<Box<[u8]>>,
}

impl MediaBody {
    /// Find and read the SDP of a body (Content-Type `content_type`) and check it against
    /// `max_streams` active streams. `Ok(None)`: the body carries no SDP (forward it as is).
    /// An error: the SDP cannot be anchored (refuse it with 488 toward an anchored leg).
    pub fn read(
        content_type: Option<&str>,
        body: &[u8],
        max_streams: usize,
    ) -> Result<Option<MediaBody>, SdpError> {
        let Some(part) = locate(content_type, body)? else {
            return Ok(None);
        };
        let streams = read(part.of(body))?;
        limit_streams(&streams, max_streams)?;
        Ok(Some(MediaBody {
            part,
            streams,
            sections: usize::MAX,
            pad: Vec::new(),
        }))
    }

    /// Each of its media sections as an answer refuses it (see [`refused_sections`]).
    pub fn refused_sections(&self, body: &[u8]) -> Vec<Box<[u8]>> {
        refused_sections(self.part.of(body))
    }

    /// [`MediaBody::read`] as the answer to an offer of the media sections `offered` (each
    /// as refused, [`refused_sections`]): an answer has as many as its offer (RFC 3264 §6),
    /// so a peer's extra ones are neither anchored nor forwarded (the offerer would have to
    /// make sense of streams it never offered), and the ones it left out are added back
    /// refused. No `max_streams` holds it: it relays no stream its offer did not, and the
    /// offer was held to its sender's (an answer to a peer allowed more streams than the
    /// gateway's default was refused whole, so was one to one stream with four extra).
    pub fn read_answer(
        content_type: Option<&str>,
        body: &[u8],
        offered: &[Box<[u8]>],
    ) -> Result<Option<MediaBody>, SdpError> {
        let Some(part) = locate(content_type, body)? else {
            return Ok(None);
        };
        let mut streams = read(part.of(body))?;
        // Past MAX_SECTIONS is refused as before: the answer is read whole first.
        limit_streams(&streams, usize::MAX)?;
        streams.truncate(offered.len());
        let pad = offered.get(streams.len()..).unwrap_or_default().to_vec();
        Ok(Some(MediaBody {
            part,
            streams,
            sections: offered.len(),
            pad,
        }))
    }

    /// The same body (the one given to `read`) with its SDP anchored (see
    /// [`anchor_streams`]): `ports[i]` for stream `i`, `None` (or port 0 in the SDP) refuses
    /// it; its `o=` numbered for the peer `shown` describes ([`Origin`]), when given. Every
    /// byte outside the SDP is kept.
    pub fn anchored(
        &self,
        body: &[u8],
        ip: std::net::IpAddr,
        ports: &[Option<u16>],
        shown: Option<&mut Option<Origin>>,
    ) -> Result<Bytes, SdpError> {
        let sdp = anchor::anchor_sections(self.part.of(body), ip, ports, self.sections)?;
        let sdp = anchor::padded(sdp, ip, &self.pad);
        let sdp = origin::shown_as(sdp, shown);
        Ok(self.part.splice(body, &sdp))
    }
}

/// One SDP line as sent: its text (without the line end) and its line end (`"\r\n"`,
/// `"\n"`, or empty for a last line without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub text: &'a [u8],
    pub eol: &'a [u8],
}

impl<'a> Line<'a> {
    /// The value after `prefix` (e.g. `b"m="`), if the line starts with it.
    pub fn value(&self, prefix: &[u8]) -> Option<&'a [u8]> {
        self.text.strip_prefix(prefix)
    }
}

/// The lines of an SDP body, each with its own line end: splits at every LF; the CRs before
/// it (however many: `\r\r\n`, or a last line cut before its LF) belong to the line end,
/// so no value read from a line ends in one. Joining `text` + `eol` of every line gives the
/// body back exactly.
pub fn lines(body: &[u8]) -> impl Iterator<Item = Line<'_>> {
    body.split_inclusive(|&b| b == b'\n').map(|raw| {
        let mut text_len = raw.strip_suffix(b"\n").map_or(raw.len(), <[u8]>::len);
        while text_len > 0 && raw[text_len - 1] == b'\r' {
            text_len -= 1;
        }
        let (text, eol) = raw.split_at(text_len);
        Line { text, eol }
    })
}

/// A Content-Type's type and subtype as written (compare them ignoring case), read as RFC
/// 3261 §20.15 and §25.1 write it: `type SWS "/" SWS subtype`, then `;` parameters, so
/// `application / sdp` (or folded over two lines) is SDP, as the far end's parser reads
/// it. `None` when it is not `token/token`: such a body's type cannot be known, so nothing
/// in it may pass as "not SDP".
pub fn media_type(content_type: &str) -> Option<(&str, &str)> {
    let head = content_type.split(';').next()?;
    let (t, s) = head.split_once('/')?;
    let space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let (t, s) = (t.trim_matches(space), s.trim_matches(space));
    (crate::sip::is_token(t) && crate::sip::is_token(s)).then_some((t, s))
}

/// Whether a Content-Type names an SDP body (`application/sdp`, any case, any parameters).
pub fn is_sdp(content_type: Option<&str>) -> bool {
    content_type.and_then(media_type).is_some_and(|(t, s)| {
        t.eq_ignore_ascii_case("application") && s.eq_ignore_ascii_case("sdp")
    })
}

/// What a ptime rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtimeEdit {
    pub body: Bytes,
    /// The ptime values found before the edit (per audio section; None where absent).
    pub before: Vec<Option<String>>,
    pub changed: bool,
}

/// Set `a=ptime:N` in every audio media section: replace an existing `a=ptime` line, or add
/// one at the end of the section (with the line end of the line before it). Session-level
/// `a=ptime` lines are rewritten too; other media sections (video, T.38) are left alone. A
/// section whose `a=maxptime` (its own, or the session's) is below N gets its maxptime
/// instead: its author cannot take longer packets, and a ptime over it would contradict it
/// (RFC 8866 §6). Returns `None` when the body has no audio section (nothing to do).
pub fn set_ptime(body: &[u8], ptime: u16) -> Option<PtimeEdit> {
    /// The shortest `[sdp] ptime` a profile may set.
    const MIN_PTIME: u16 = 5;
    // Each section's maxptime: [0] the session's, then one per `m=` line.
    let mut maxptime: Vec<Option<u16>> = vec![None];
    for line in lines(body) {
        if line.text.starts_with(b"m=") {
            maxptime.push(None);
        } else if let Some(v) = line.value(b"a=maxptime:")
            && let Some(last) = maxptime.last_mut()
        {
            *last = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
    }
    let line_for = |section: usize| {
        // Below the shortest ptime we set, a maxptime is nonsense (a packet a millisecond
        // would be refused by every relay's rate cap, ours included): the session's, if
        // any, holds instead.
        let sane = |m: &Option<u16>| m.filter(|&m| m >= MIN_PTIME);
        let cap = (maxptime.get(section).and_then(sane)).or(sane(&maxptime[0]));
        format!("a=ptime:{}", cap.map_or(ptime, |m| ptime.min(m)))
    };
    let mut out: Vec<u8> = Vec::with_capacity(body.len() + 16);
    let mut before = Vec::new();
    let mut section = 0usize;
    let mut in_audio = false;
    let mut seen_in_section = false;
    let mut any_audio = false;
    // Where the current section's last non-empty line ends in `out`, and its line end.
    let mut section_end = 0usize;
    let mut section_eol: &[u8] = b"\r\n";
    let close = |out: &mut Vec<u8>,
                 in_audio: bool,
                 seen: bool,
                 before: &mut Vec<Option<String>>,
                 at: usize,
                 eol: &[u8],
                 new_line: &str| {
        if in_audio && !seen {
            // After the section's last line, before trailing empty lines; a last line that
            // had no line end (no LF, whatever CRs it ends in) gets one first.
            let mut insert = Vec::with_capacity(new_line.len() + 4);
            let eol: &[u8] = if eol.ends_with(b"\n") { eol } else { b"\r\n" };
            if out.get(..at).is_some_and(|o| !o.ends_with(b"\n")) {
                insert.extend_from_slice(eol);
                insert.extend_from_slice(new_line.as_bytes());
            } else {
                insert.extend_from_slice(new_line.as_bytes());
                insert.extend_from_slice(eol);
            }
            out.splice(at..at, insert);
            before.push(None);
        }
    };
    for line in lines(body) {
        if line.text.starts_with(b"m=") {
            close(
                &mut out,
                in_audio,
                seen_in_section,
                &mut before,
                section_end,
                section_eol,
                &line_for(section),
            );
            section += 1;
            in_audio = line.text.starts_with(b"m=audio ");
            any_audio |= in_audio;
            seen_in_section = false;
            out.extend_from_slice(line.text);
        } else if let Some(v) = line.value(b"a=ptime:")
            && (in_audio || section == 0)
        {
            if in_audio {
                before.push(Some(String::from_utf8_lossy(v).trim().to_string()));
                seen_in_section = true;
            }
            out.extend_from_slice(line_for(section).as_bytes());
        } else {
            out.extend_from_slice(line.text);
        }
        out.extend_from_slice(line.eol);
        if !line.text.is_empty() {
            section_end = out.len();
            section_eol = line.eol;
        }
    }
    close(
        &mut out,
        in_audio,
        seen_in_section,
        &mut before,
        section_end,
        section_eol,
        &line_for(section),
    );
    if !any_audio {
        return None;
    }
    let changed = out != body;
    Some(PtimeEdit {
        body: Bytes::from(out),
        before,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:30\r\na=sendrecv\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn replaces_existing_ptime_and_touches_nothing_else() {
        let e = set_ptime(OFFER.as_bytes(), 20).unwrap();
        let want = OFFER.replace("a=ptime:30", "a=ptime:20");
        assert_eq!(std::str::from_utf8(&e.body).unwrap(), want);
        assert_eq!(e.before, vec![Some("30".to_string())]);
        assert!(e.changed);
    }

    /// A ptime over the section's maxptime would contradict it: the maxptime is used. Video
    /// and T.38 sections keep their own ptime.
    #[test]
    fn ptime_keeps_within_maxptime_and_to_audio() {
        let offer = OFFER
            .replace("a=ptime:30\r\n", "a=ptime:30\r\na=maxptime:20\r\n")
            .replace("H264/90000\r\n", "H264/90000\r\na=ptime:33\r\n");
        let e = set_ptime(offer.as_bytes(), 40).unwrap();
        let body = std::str::from_utf8(&e.body).unwrap();
        assert!(body.contains("a=ptime:20\r\na=maxptime:20\r\n"), "{body}");
        assert!(body.contains("H264/90000\r\na=ptime:33\r\n"), "{body}");
        // A session-level maxptime holds for sections without their own.
        let offer = OFFER
            .replace("t=0 0\r\n", "t=0 0\r\na=maxptime:30\r\n")
            .replace("a=ptime:30\r\n", "");
        let e = set_ptime(offer.as_bytes(), 60).unwrap();
        let body = std::str::from_utf8(&e.body).unwrap();
        assert!(body.contains("a=sendrecv\r\na=ptime:30\r\n"), "{body}");
        // Under the maxptime, the ptime asked for.
        let e = set_ptime(offer.as_bytes(), 20).unwrap();
        assert!(
            std::str::from_utf8(&e.body)
                .unwrap()
                .contains("a=ptime:20\r\n")
        );
        // A maxptime below any ptime we would set is not followed; the session's holds.
        let offer = OFFER.replace("a=ptime:30\r\n", "a=ptime:30\r\na=maxptime:1\r\n");
        let e = set_ptime(offer.as_bytes(), 20).unwrap();
        let body = std::str::from_utf8(&e.body).unwrap();
        assert!(body.contains("a=ptime:20\r\na=maxptime:1\r\n"), "{body}");
        let offer = offer.replace("t=0 0\r\n", "t=0 0\r\na=maxptime:10\r\n");
        let e = set_ptime(offer.as_bytes(), 20).unwrap();
        let body = std::str::from_utf8(&e.body).unwrap();
        assert!(body.contains("a=ptime:10\r\na=maxptime:1\r\n"), "{body}");
    }

    #[test]
    fn inserts_at_the_end_of_each_audio_section() {
        let offer = OFFER.replace("a=ptime:30\r\n", "");
        let e = set_ptime(offer.as_bytes(), 20).unwrap();
        let body = std::str::from_utf8(&e.body).unwrap();
        assert!(
            body.contains("a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=ptime:20\r\nm=video"),
            "{body}"
        );
        assert!(!body["m=video".len()..].contains("a=ptime:20\r\na=rtpmap:96"));
        // Last section audio: insertion keeps the final CRLF.
        let audio_last = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n";
        let e = set_ptime(audio_last.as_bytes(), 40).unwrap();
        assert_eq!(
            std::str::from_utf8(&e.body).unwrap(),
            format!("{audio_last}a=ptime:40\r\n")
        );
    }

    #[test]
    fn same_ptime_is_no_change_and_no_audio_is_none() {
        let offer = OFFER.replace("a=ptime:30", "a=ptime:20");
        assert!(!set_ptime(offer.as_bytes(), 20).unwrap().changed);
        assert!(set_ptime(b"v=0\r\nm=video 1 RTP/AVP 96\r\n", 20).is_none());
        assert!(set_ptime(&[0xff, 0xfe], 20).is_none());
    }

    #[test]
    fn a_ptime_after_a_last_line_ending_in_crs_is_a_line_of_its_own() {
        // (Found by the fuzzer's corpus once CRs before a missing LF became a line end.)
        let body = b"\nm=audio \r\r";
        let edit = set_ptime(body, 119).unwrap();
        assert_eq!(&edit.body[..], b"\nm=audio \r\r\r\na=ptime:119");
        assert_eq!(set_ptime(&edit.body, 119).unwrap().body, edit.body);
    }

    #[test]
    fn lines_keep_their_own_line_ends_and_join_back_exactly() {
        let body = b"v=0\r\no=- 1 1 IN IP4 h\ns=\xe9t\xe9\r\n\r\nt=0 0";
        let got: Vec<(&[u8], &[u8])> = lines(body).map(|l| (l.text, l.eol)).collect();
        assert_eq!(
            got,
            vec![
                (&b"v=0"[..], &b"\r\n"[..]),
                (b"o=- 1 1 IN IP4 h", b"\n"),
                (b"s=\xe9t\xe9", b"\r\n"),
                (b"", b"\r\n"),
                (b"t=0 0", b""),
            ]
        );
        let joined: Vec<u8> = lines(body).flat_map(|l| [l.text, l.eol].concat()).collect();
        assert_eq!(joined, body);
        assert_eq!(lines(b"").count(), 0);
    }

    #[test]
    fn mixed_line_ends_each_keep_theirs_and_latin1_passes() {
        // The audio section's lines end in bare LF, the rest in CRLF; s= is Latin-1.
        let offer = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=caf\xe9\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\na=ptime:30\nm=audio 2 RTP/AVP 8\na=sendrecv\n";
        let e = set_ptime(offer, 20).unwrap();
        assert_eq!(
            &e.body[..],
            &b"v=0\r\no=- 1 1 IN IP4 h\r\ns=caf\xe9\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\na=ptime:20\nm=audio 2 RTP/AVP 8\na=sendrecv\na=ptime:20\n"[..]
        );
        assert_eq!(e.before, vec![Some("30".to_string()), None]);
        // A last line with no line end gets one before the inserted line.
        let e = set_ptime(b"v=0\r\nm=audio 1 RTP/AVP 0", 20).unwrap();
        assert_eq!(&e.body[..], b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=ptime:20");
    }

    #[test]
    fn a_media_body_is_found_read_limited_and_anchored_in_place() {
        let ip: std::net::IpAddr = "203.0.113.5".parse().unwrap();
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nm=video 0 RTP/AVP 96\r\n";
        let body = format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b1\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b1--\r\n"
        );
        let ct = Some("multipart/mixed; boundary=b1");
        let m = MediaBody::read(ct, body.as_bytes(), DEFAULT_MAX_STREAMS)
            .unwrap()
            .unwrap();
        assert!(m.part.multipart);
        assert_eq!(m.streams.len(), 2);
        assert!(m.streams[1].is_rejected());
        let out = m
            .anchored(body.as_bytes(), ip, &[Some(20000), None], None)
            .unwrap();
        let want = body
            .replace("192.0.2.7", "203.0.113.5")
            .replace("m=audio 4000", "m=audio 20000");
        assert_eq!(std::str::from_utf8(&out).unwrap(), want);
        // Read as the answer to a one-stream offer: the video section is left out, the
        // other part kept.
        let one = refused_sections(b"m=audio 4000 RTP/AVP 0\r\n");
        let answer = MediaBody::read_answer(ct, body.as_bytes(), &one)
            .unwrap()
            .unwrap();
        assert_eq!(answer.streams.len(), 1);
        let out = answer
            .anchored(body.as_bytes(), ip, &[Some(20000), Some(20002)], None)
            .unwrap();
        let want = want.replace("m=video 0 RTP/AVP 96\r\n", "");
        assert_eq!(std::str::from_utf8(&out).unwrap(), want);
        // Plain SDP, no SDP, too many streams, unreadable SDP.
        let plain = MediaBody::read(Some("application/sdp"), sdp.as_bytes(), 1)
            .unwrap()
            .unwrap();
        assert!(!plain.part.multipart);
        assert_eq!(MediaBody::read(Some("text/plain"), b"hi", 4), Ok(None));
        assert_eq!(
            MediaBody::read(Some("application/sdp"), sdp.as_bytes(), 0),
            Err(SdpError::TooManyStreams { found: 1, max: 0 })
        );
        assert_eq!(
            MediaBody::read(Some("application/sdp"), b"m=audio 1 RTP/AVP 0", 4),
            Err(SdpError::NoVersion)
        );
    }
}
