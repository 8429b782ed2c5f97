//! Fitting an answer to an offer's media sections: an answer sent to several offers (each
//! branch of a forking callee offering in its own provisional) goes to each with as many
//! m= lines as that offer had (RFC 3264 §6).

use std::net::IpAddr;

use bytes::Bytes;

use super::{lines, locate};

/// Each media section of the SDP in `body` (its SDP part when multipart) as an answer
/// refuses it ([`super::refused_sections`]); `None` when it carries no SDP that can be found.
pub fn offered_sections(content_type: Option<&str>, body: &[u8]) -> Option<Vec<Box<[u8]>>> {
    let part = locate(content_type, body).ok()??;
    Some(super::refused_sections(part.of(body)))
}

/// `body`, an answer, with as many m= lines as the offer whose sections are `offered`: its
/// extra ones cut, missing ones the offer's, refused (their `c=` naming `ip`). Every other
/// byte as it was; `None` when it already has as many, or carries no SDP that can be found.
pub fn fit_sections(
    content_type: Option<&str>,
    body: &[u8],
    offered: &[Box<[u8]>],
    ip: IpAddr,
) -> Option<Bytes> {
    let part = locate(content_type, body).ok()??;
    let fit = fit_sdp(part.of(body), offered, ip)?;
    Some(part.splice(body, &fit))
}

/// [`fit_sections`] on an SDP itself.
pub(in crate::sdp) fn fit_sdp(sdp: &[u8], offered: &[Box<[u8]>], ip: IpAddr) -> Option<Bytes> {
    let had = lines(sdp).filter(|l| l.text.starts_with(b"m=")).count();
    if had < offered.len() {
        let pad = offered.get(had..).unwrap_or_default();
        return Some(super::anchor::padded(Bytes::copy_from_slice(sdp), ip, pad));
    }
    // Cut where the first m= line past the offer's starts: every line is followed by its
    // own line end, so the offsets add up line by line.
    let mut at = 0;
    let mut seen = 0;
    for l in lines(sdp) {
        if l.text.starts_with(b"m=") {
            if seen == offered.len() {
                return Some(Bytes::copy_from_slice(sdp.get(..at)?));
            }
            seen += 1;
        }
        at += l.text.len() + l.eol.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 97\nb=AS:1\r\n";
    const ONE: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn ip() -> IpAddr {
        "203.0.113.1".parse().unwrap()
    }

    #[test]
    fn an_answer_is_cut_at_a_line_start_or_padded_with_the_offers_sections_refused() {
        let ct = Some("application/sdp");
        let two = offered_sections(ct, TWO.as_bytes()).unwrap();
        let one = offered_sections(ct, ONE.as_bytes()).unwrap();
        assert_eq!((one.len(), two.len()), (1, 2));
        let cut = fit_sections(ct, TWO.as_bytes(), &one, ip()).expect("cut");
        assert_eq!(&cut[..], ONE.as_bytes());
        assert_eq!(fit_sections(ct, TWO.as_bytes(), &two, ip()), None);
        let padded = fit_sections(ct, ONE.as_bytes(), &two, ip()).expect("padded");
        let text = String::from_utf8_lossy(&padded);
        assert!(text.starts_with(ONE), "{text}");
        assert!(
            text.ends_with("m=video 0 RTP/AVP 97\r\nc=IN IP4 203.0.113.1\r\n"),
            "{text}"
        );
        assert_eq!(offered_sections(None, TWO.as_bytes()), None);
    }

    #[test]
    fn a_multipart_body_keeps_its_other_parts() {
        let ct = Some("multipart/mixed;boundary=b1");
        let body = format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\n{TWO}\r\n--b1\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b1--\r\n"
        );
        let one = offered_sections(Some("application/sdp"), ONE.as_bytes()).unwrap();
        let cut = fit_sections(ct, body.as_bytes(), &one, ip()).expect("cut");
        let text = String::from_utf8_lossy(&cut);
        assert!(!text.contains("m=video") && text.contains("ISUP"), "{text}");
        assert!(text.contains("a=rtpmap:0 PCMU/8000\r\n\r\n--b1"), "{text}");
    }
}
