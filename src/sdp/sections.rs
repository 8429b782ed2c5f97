//! Counting and cutting an SDP's media sections: an answer sent to several offers (each
//! branch of a forking callee offering in its own provisional) goes to each with as many
//! m= lines as that offer had (RFC 3264 §6).

use bytes::Bytes;

use super::{lines, locate};

/// How many m= lines the SDP of `body` (its SDP part when multipart) has; `None` when it
/// carries no SDP that can be found.
pub fn section_count(content_type: Option<&str>, body: &[u8]) -> Option<usize> {
    let part = locate(content_type, body).ok()??;
    Some(
        lines(part.of(body))
            .filter(|l| l.text.starts_with(b"m="))
            .count(),
    )
}

/// `body` with its SDP cut to its first `n` media sections (every byte outside the SDP, and
/// within the sections kept, as it was); `None` when it has no more than `n`, or carries no
/// SDP that can be found.
pub fn cut_sections(content_type: Option<&str>, body: &[u8], n: usize) -> Option<Bytes> {
    let part = locate(content_type, body).ok()??;
    let sdp = part.of(body);
    // Where the (n+1)th m= line starts: every line is followed by its own line end, so
    // the offsets add up line by line.
    let mut at = 0;
    let mut seen = 0;
    for l in lines(sdp) {
        if l.text.starts_with(b"m=") {
            if seen == n {
                return Some(part.splice(body, sdp.get(..at)?));
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

    #[test]
    fn sections_are_counted_and_cut_at_a_line_start() {
        let ct = Some("application/sdp");
        assert_eq!(section_count(ct, TWO.as_bytes()), Some(2));
        let one = cut_sections(ct, TWO.as_bytes(), 1).expect("cut");
        assert_eq!(
            &one[..],
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
              m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        assert_eq!(cut_sections(ct, TWO.as_bytes(), 2), None);
        assert_eq!(section_count(None, TWO.as_bytes()), None);
    }

    #[test]
    fn a_multipart_body_keeps_its_other_parts() {
        let ct = Some("multipart/mixed;boundary=b1");
        let body = format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\n{TWO}\r\n--b1\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b1--\r\n"
        );
        assert_eq!(section_count(ct, body.as_bytes()), Some(2));
        let cut = cut_sections(ct, body.as_bytes(), 1).expect("cut");
        let text = String::from_utf8_lossy(&cut);
        assert!(!text.contains("m=video") && text.contains("ISUP"), "{text}");
        assert!(text.contains("a=rtpmap:0 PCMU/8000\r\n\r\n--b1"), "{text}");
    }
}
