//! The terms of a peer's SDP that the other leg of an anchored call needs to take that
//! peer's media, which the relay passes without reading: its SRTP keys (`a=crypto`, RFC
//! 4568), its DTLS certificate and role (`a=fingerprint`, `a=setup`, RFC 8842), and what
//! its payload type numbers stand for (`a=rtpmap`). Its addresses are none of them: the
//! relay follows those, and the other leg never sees them.

use foldhash::{HashMap, HashSet};

use super::agreed::{Encoding, Media, sections};
use super::{Line, sdp_of};

/// One media section's terms, the session level's fingerprint and role folded in.
#[derive(Debug, Default, Clone)]
struct Section {
    /// At port 0 (or an `m=` line past reading): no media flows, whatever its terms (every
    /// stream of an answer the gateway could not anchor is).
    refused: bool,
    crypto: Vec<Vec<u8>>,
    fingerprints: Vec<Vec<u8>>,
    setup: Option<Vec<u8>>,
    /// Payload type and its encoding (name and clock rate, as `sdp::agreed` reads them:
    /// the channel count aside).
    payloads: Vec<(Vec<u8>, Encoding)>,
}

/// The terms of one SDP, per media section.
#[derive(Debug, Default)]
pub struct Terms(Vec<Section>);

/// The keys, certificates and role among `lines`.
fn keys(lines: &[Line<'_>]) -> Section {
    let mut s = Section::default();
    for l in lines {
        if let Some(v) = l.value(b"a=crypto:") {
            s.crypto.push(v.trim_ascii().to_vec());
        } else if let Some(v) = l.value(b"a=fingerprint:") {
            s.fingerprints.push(v.trim_ascii().to_ascii_lowercase());
        } else if let Some(v) = l.value(b"a=setup:") {
            s.setup = Some(v.trim_ascii().to_ascii_lowercase());
        }
    }
    s
}

/// The terms of `body`'s SDP (the body, or its SDP part); `None` for a body without SDP.
pub fn terms(ct: Option<&str>, body: &[u8]) -> Option<Terms> {
    let sdp = sdp_of(ct, body)?;
    let (head, media) = sections(sdp);
    let session = keys(&head);
    let sections = media.iter().map(|m| {
        let mut s = keys(&m.rest);
        s.refused = Media::read(&m.m).is_none_or(|m| m.refused());
        // The session's role and certificates stand for a section without its own.
        if s.fingerprints.is_empty() {
            s.fingerprints.clone_from(&session.fingerprints);
        }
        if s.setup.is_none() {
            s.setup.clone_from(&session.setup);
        }
        s.payloads = (m.encodings().into_iter())
            .map(|(pt, enc)| (pt.to_vec(), enc))
            .collect();
        s
    });
    Some(Terms(sections.collect()))
}

impl Terms {
    /// Whether these terms (of a peer's answer, as the other leg would be shown it) are not
    /// the ones that leg was shown last, `before`, section by section: a key it was not
    /// given, a certificate none of whose fingerprints it was given, another DTLS role than
    /// a settled one, or a payload type number that now stands for another encoding, or an
    /// encoding under a number it did not have. An answer that picked among what an offer
    /// shown listed has not moved; nor has a section at port 0 on either side.
    pub fn moved_from(&self, before: &Terms) -> bool {
        let flowing = |(now, was): &(&Section, &Section)| !now.refused && !was.refused;
        (self.0.iter().zip(&before.0))
            .filter(flowing)
            .any(|(now, was)| {
                // Looked up, not scanned: a peer's SDP may list thousands of each, and a
                // scan of the earlier list for each held the call thread (n²).
                let keys: HashSet<&[u8]> = was.crypto.iter().map(Vec::as_slice).collect();
                let new_key = now.crypto.iter().any(|c| !keys.contains(c.as_slice()));
                let certs: HashSet<&[u8]> = was.fingerprints.iter().map(Vec::as_slice).collect();
                let new_cert = !now.fingerprints.is_empty()
                    && !(now.fingerprints.iter()).any(|f| certs.contains(f.as_slice()));
                let new_role = match (&now.setup, &was.setup) {
                    (Some(n), Some(w)) => w.as_slice() != b"actpass" && n != w,
                    _ => false,
                };
                // (Each number once: read from the map `encodings` makes.)
                let numbers: HashMap<&[u8], &Encoding> = was
                    .payloads
                    .iter()
                    .map(|(p, e)| (p.as_slice(), e))
                    .collect();
                let encodings: HashSet<&Encoding> = was.payloads.iter().map(|(_, e)| e).collect();
                let renumbered =
                    now.payloads
                        .iter()
                        .any(|(pt, enc)| match numbers.get(pt.as_slice()) {
                            Some(e) => *e != enc,
                            None => encodings.contains(enc),
                        });
                new_key || new_cert || new_role || renumbered
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";

    fn t(media: &str) -> Terms {
        terms(Some("application/sdp"), format!("{BASE}{media}").as_bytes()).expect("SDP")
    }

    const SRTP: &str = "m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n";

    #[test]
    fn the_same_terms_at_other_addresses_have_not_moved() {
        let other = SRTP.replace("4000", "5000");
        assert!(!t(&other).moved_from(&t(SRTP)));
        assert!(!t(SRTP).moved_from(&t(SRTP)));
    }

    #[test]
    fn a_new_key_has_moved() {
        let rekeyed = SRTP.replace("inline:AAAA", "inline:BBBB");
        assert!(t(&rekeyed).moved_from(&t(SRTP)));
    }

    /// An answer that picked one of the offered keys and codecs has not moved from the offer.
    #[test]
    fn an_answer_within_the_offer_has_not_moved() {
        let offer = "m=audio 4000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:CCCC\r\n";
        assert!(!t(SRTP).moved_from(&t(offer)));
    }

    #[test]
    fn a_payload_type_renumbered_has_moved() {
        let was = "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n";
        let renumbered = "m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 OPUS/48000/2\r\n";
        let reused = "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 AMR-WB/16000\r\n";
        assert!(t(renumbered).moved_from(&t(was)));
        assert!(t(reused).moved_from(&t(was)));
        let case = "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 OPUS/48000/2\r\n";
        assert!(!t(case).moved_from(&t(was)));
    }

    /// A certificate given at the session level counts for every section; a section's own
    /// replaces it. A role settled (not `actpass`) that flips has moved.
    #[test]
    fn a_new_certificate_or_a_flipped_role_has_moved() {
        let dtls = |fp: &str, setup: &str| {
            t(&format!(
                "a=fingerprint:sha-256 {fp}\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=setup:{setup}\r\n"
            ))
        };
        assert!(!dtls("AB:CD", "active").moved_from(&dtls("ab:cd", "active")));
        assert!(dtls("AB:CE", "active").moved_from(&dtls("AB:CD", "active")));
        assert!(dtls("AB:CD", "passive").moved_from(&dtls("AB:CD", "active")));
        assert!(!dtls("AB:CD", "passive").moved_from(&dtls("AB:CD", "actpass")));
        let own = t(
            "a=fingerprint:sha-256 AB:CD\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:sha-256 EF:01\r\na=setup:active\r\n",
        );
        assert!(!own.moved_from(&own));
        assert!(own.moved_from(&dtls("AB:CD", "active")));
        assert!(!dtls("EF:01", "active").moved_from(&own));
    }

    /// The same certificate under one more hash, a channel count said or not, or a section
    /// at port 0 however written (an answer the gateway could not anchor has all of them):
    /// not moved.
    #[test]
    fn what_says_the_same_or_carries_nothing_has_not_moved() {
        let fp = |lines: &str| t(&format!("m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n{lines}"));
        let one = fp("a=fingerprint:sha-256 AB:CD\r\n");
        let two = fp("a=fingerprint:sha-256 AB:CD\r\na=fingerprint:sha-1 12:34\r\n");
        assert!(!two.moved_from(&one));
        let amr = |enc: &str| t(&format!("m=audio 4000 RTP/AVP 97\r\na=rtpmap:97 {enc}\r\n"));
        assert!(!amr("AMR-WB/16000/1").moved_from(&amr("AMR-WB/16000")));
        assert!(!amr("AMR-WB/16000").moved_from(&amr("AMR-WB/16000/1")));
        assert!(!amr("opus/48000/2").moved_from(&amr("opus/48000")));
        assert!(amr("opus/16000").moved_from(&amr("opus/48000")));
        for port in ["0", "00", "+0"] {
            let refused = SRTP
                .replace("4000", port)
                .replace("inline:AAAA", "inline:BBBB");
            assert!(!t(&refused).moved_from(&t(SRTP)), "{port}");
        }
    }

    #[test]
    fn no_sdp_has_no_terms() {
        assert!(terms(Some("application/isup"), b"\x01\x02").is_none());
    }
}
