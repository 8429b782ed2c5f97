//! The session an offer and its answer agreed on, as the offerer offers it again (a session
//! refresh the gateway sends): each stream's formats cut to those the answer took, and a
//! stream the answer refused at port 0. Offering the whole first offer again would let the
//! peer pick another codec than the one the other leg is sending (RFC 3264 §8 lets a new
//! offer drop formats; §8.2 keeps a refused stream at port 0).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::{Line, lines, locate};

/// `offer_body` (Content-Type `offer_ct`) with its SDP cut to what `answer_body`'s SDP took.
/// `None` when nothing changes, or either SDP cannot be found or read: the offer then goes
/// again as it was. Its `o=` line is left as it is (numbering is the caller's).
pub fn agreed(
    offer_ct: Option<&str>,
    offer_body: &[u8],
    answer_ct: Option<&str>,
    answer_body: &[u8],
) -> Option<Bytes> {
    let part = locate(offer_ct, offer_body).ok()??;
    let answer = super::sdp_of(answer_ct, answer_body)?;
    let sdp = agreed_sdp(part.of(offer_body), answer)?;
    Some(part.splice(offer_body, &sdp))
}

/// One `m=` line read: its port field, transport, and formats.
pub(super) struct Media<'a> {
    media: &'a [u8],
    port: &'a [u8],
    proto: &'a [u8],
    formats: Vec<&'a [u8]>,
}

impl<'a> Media<'a> {
    pub(super) fn read(line: &Line<'a>) -> Option<Media<'a>> {
        let text: &'a [u8] = line.text;
        // Split as anchoring splits it, whatever runs of spaces part the fields.
        let (media, port, rest) = super::anchor::m_fields(text.strip_prefix(b"m=")?)?;
        let mut f = rest.split(|&b| b == b' ').filter(|x| !x.is_empty());
        let proto = f.next()?;
        // A refused stream may list no format at all (an answer's `m=video 0 RTP/AVP`).
        let formats: Vec<&[u8]> = f.collect();
        Some(Media {
            media,
            port,
            proto,
            formats,
        })
    }

    /// Port 0 as anchoring reads it (`00` and `+0` are 0 there too): a stream anchoring
    /// refused and gave no ports must not be agreed as live.
    pub(super) fn refused(&self) -> bool {
        let port = self.port.split(|&b| b == b'/').next().unwrap_or_default();
        std::str::from_utf8(port)
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            == Some(0)
    }

    /// RTP formats are payload type numbers with `a=rtpmap`/`a=fmtp` lines of their own.
    fn is_rtp(&self) -> bool {
        self.proto
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"RTP/"))
    }

    fn write(&self, port: &[u8], formats: &[&[u8]], out: &mut Vec<u8>) {
        out.extend_from_slice(b"m=");
        for (i, f) in [self.media, port, self.proto].iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(f);
        }
        for f in formats {
            out.push(b' ');
            out.extend_from_slice(f);
        }
    }
}

/// A media section: its `m=` line and the lines after it.
pub(super) struct Section<'a> {
    pub m: Line<'a>,
    pub rest: Vec<Line<'a>>,
}

/// A payload type's encoding: its name, lowercase, and clock rate.
pub(super) type Encoding = (Vec<u8>, Vec<u8>);

/// Formats an `m=` line may list for its section to be cut: RTP has 128 payload types. More
/// is no real peer's SDP, and each format is looked up in the other SDP.
const MAX_FORMATS: usize = 128;

impl<'a> Section<'a> {
    /// The encodings this section's payload types name (`a=rtpmap`, the first of each):
    /// name, lowercase, and clock rate; the channel count aside (`opus/48000` and
    /// `opus/48000/2` are one). Read in one pass: a lookup per format, each scanning every
    /// line, took a peer's SDP of thousands of formats and lines seconds of the call thread.
    pub(super) fn encodings(&self) -> HashMap<&'a [u8], Encoding> {
        let mut map = HashMap::new();
        for l in &self.rest {
            let Some(v) = l.value(b"a=rtpmap:") else {
                continue;
            };
            let Some((n, enc)) = v.iter().position(|&b| b == b' ').map(|i| v.split_at(i)) else {
                continue;
            };
            let mut parts = enc.trim_ascii().split(|&b| b == b'/');
            let Some(name) = parts.next() else {
                continue;
            };
            map.entry(n).or_insert_with(|| {
                let rate = parts.next().unwrap_or_default().to_vec();
                (name.to_ascii_lowercase(), rate)
            });
        }
        map
    }
}

/// Whether a payload type carries the stream's media itself, not tones, comfort noise or
/// redundancy around another format: a section cut to those alone would carry no audio.
/// `encodings`: its section's.
fn is_media(encodings: &HashMap<&[u8], Encoding>, pt: &[u8]) -> bool {
    const AUXILIARY: [&[u8]; 6] = [
        b"telephone-event",
        b"cn",
        b"red",
        b"ulpfec",
        b"flexfec",
        b"rtx",
    ];
    match encodings.get(pt) {
        Some((name, _)) => !AUXILIARY.contains(&name.as_slice()),
        // A static type named by its number alone (13 is comfort noise).
        None => pt != b"13",
    }
}

/// The session-level lines, then each media section.
pub(super) fn sections(sdp: &[u8]) -> (Vec<Line<'_>>, Vec<Section<'_>>) {
    let mut head = Vec::new();
    let mut media: Vec<Section<'_>> = Vec::new();
    for l in lines(sdp) {
        if l.text.starts_with(b"m=") {
            media.push(Section {
                m: l,
                rest: Vec::new(),
            });
        } else if let Some(s) = media.last_mut() {
            s.rest.push(l);
        } else {
            head.push(l);
        }
    }
    (head, media)
}

/// The payload type an attribute line belongs to (`a=rtpmap`, `a=fmtp`, `a=rtcp-fb`).
fn format_named<'a>(l: &Line<'a>) -> Option<&'a [u8]> {
    [&b"a=rtpmap:"[..], b"a=fmtp:", b"a=rtcp-fb:"]
        .iter()
        .find_map(|p| {
            let v = l.value(p)?;
            Some(&v[..v.iter().position(|&b| b == b' ')?])
        })
}

fn agreed_sdp(offer: &[u8], answer: &[u8]) -> Option<Vec<u8>> {
    let (head, offered) = sections(offer);
    let (_, answered) = sections(answer);
    let mut out = Vec::with_capacity(offer.len());
    for l in &head {
        out.extend_from_slice(l.text);
        out.extend_from_slice(l.eol);
    }
    // (An answer with an m= line past reading is no answer to shape the offer by.)
    let readable = answered.iter().all(|a| Media::read(&a.m).is_some());
    for (i, s) in offered.iter().enumerate() {
        let cut = match answered.get(i) {
            Some(a) => Media::read(&s.m)
                .zip(Media::read(&a.m))
                .and_then(|(o, m)| cut_section(s, &o, &m, a)),
            // A stream the answer left out is refused, as anchoring read it (RFC 3264 §6):
            // offered live again, the other leg's old address would be sent its media.
            None => Media::read(&s.m)
                .filter(|o| readable && !o.refused() && !o.formats.is_empty())
                .map(|o| {
                    let mut line = Vec::with_capacity(s.m.text.len());
                    o.write(b"0", &o.formats, &mut line);
                    (line, Vec::new())
                }),
        };
        match cut {
            Some((m_line, dropped)) => {
                out.extend_from_slice(&m_line);
                out.extend_from_slice(s.m.eol);
                let dropped: HashSet<&[u8]> = dropped.into_iter().collect();
                for l in (s.rest.iter())
                    .filter(|l| !format_named(l).is_some_and(|pt| dropped.contains(pt)))
                {
                    out.extend_from_slice(l.text);
                    out.extend_from_slice(l.eol);
                }
            }
            None => {
                for l in std::iter::once(&s.m).chain(&s.rest) {
                    out.extend_from_slice(l.text);
                    out.extend_from_slice(l.eol);
                }
            }
        }
    }
    (out != offer).then_some(out)
}

/// The `m=` line of offered section `s` as agreed with the answer's `a`, and the payload
/// types it no longer lists. `None`: it stays as offered.
fn cut_section<'a>(
    s: &Section<'a>,
    o: &Media<'a>,
    a: &Media<'_>,
    answered: &Section<'_>,
) -> Option<(Vec<u8>, Vec<&'a [u8]>)> {
    let mut line = Vec::with_capacity(s.m.text.len());
    if o.refused() || o.formats.is_empty() {
        return None;
    }
    if a.refused() {
        // Refused stays refused until someone offers it anew: its formats as they were.
        o.write(b"0", &o.formats, &mut line);
        return Some((line, Vec::new()));
    }
    if !o.is_rtp() || o.formats.len() > MAX_FORMATS || a.formats.len() > MAX_FORMATS {
        return None;
    }
    // A format is kept when the answer lists its number (whatever it maps it to: keeping
    // one too many is harmless, dropping one the answer took is not), or its encoding under
    // another number (an answerer that renumbered a dynamic type: RFC 3264 §6.1 says only
    // SHOULD).
    let ours = s.encodings();
    let theirs = answered.encodings();
    let answer_took: HashSet<&Encoding> = a.formats.iter().filter_map(|f| theirs.get(f)).collect();
    let taken = |pt: &[u8]| {
        a.formats.contains(&pt) || ours.get(pt).is_some_and(|e| answer_took.contains(e))
    };
    let (kept, dropped): (Vec<&[u8]>, Vec<&[u8]>) = o.formats.iter().partition(|f| taken(f));
    if dropped.is_empty() || !kept.iter().any(|f| is_media(&ours, f)) {
        return None;
    }
    o.write(o.port, &kept, &mut line);
    Some((line, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 30000 RTP/AVP 0 8 9 96 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\na=ptime:20\r\n\
        m=video 30002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";

    fn agree(answer: &str) -> Option<String> {
        agreed(
            Some("application/sdp"),
            OFFER.as_bytes(),
            Some("application/sdp"),
            answer.as_bytes(),
        )
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn the_offer_again_is_cut_to_what_its_answer_took() {
        let answer = "v=0\r\no=- 5 5 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
            m=video 0 RTP/AVP 97\r\n";
        let cut = agree(answer).expect("the offer changes");
        assert_eq!(
            cut,
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n\
             m=video 0 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
        );
    }

    /// A stream the answer left out (fewer m= lines than the offer) is refused, as the
    /// answer's reader pads it: before, it was agreed live and a refresh offered it again.
    #[test]
    fn a_stream_the_answer_left_out_is_refused() {
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0 8 9 96 101\r\n";
        let cut = agree(answer).expect("the offer changes");
        assert!(
            cut.contains("m=video 0 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"),
            "{cut}"
        );
        assert!(
            cut.contains("m=audio 30000 RTP/AVP 0 8 9 96 101\r\n"),
            "{cut}"
        );
    }

    /// A port anchoring reads as 0 (`00`) is a refused stream here too: before, the video
    /// was agreed live, and the next refresh offered it on ports anchoring had not given it.
    #[test]
    fn a_port_written_00_is_refused() {
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
            m=video 00 RTP/AVP 97\r\n";
        let cut = agree(answer).expect("the offer changes");
        assert!(cut.contains("m=video 0 RTP/AVP 97\r\n"), "{cut}");
    }

    #[test]
    fn a_renumbered_dynamic_type_is_kept_by_its_encoding() {
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 OPUS/48000/2\r\nm=video 4002 RTP/AVP 97\r\n";
        let cut = agree(answer).unwrap();
        assert!(cut.contains("m=audio 30000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=ptime:20\r\n"), "{cut}");
        assert!(cut.contains("m=video 30002 RTP/AVP 97\r\n"), "{cut}");
        // A number the answer lists is kept whatever it maps it to: one too many does no
        // harm, one the answer took and the cut dropped would.
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:96 G7221/16000\r\nm=video 4002 RTP/AVP 97\r\n";
        let cut = agree(answer).unwrap();
        assert!(cut.contains("m=audio 30000 RTP/AVP 0 96\r\n"), "{cut}");
        // An encoding is its name and clock rate: a channel count written or not, any case.
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000/1\r\na=rtpmap:101 telephone-event/8000\r\n\
            m=video 4002 RTP/AVP 97\r\n";
        let cut = agree(answer).unwrap();
        assert!(cut.contains("m=audio 30000 RTP/AVP 8 101\r\n"), "{cut}");
    }

    #[test]
    fn a_cut_never_leaves_tones_alone_and_a_bare_refusal_is_read() {
        // The answer's tones alone are in the offer: cut to them, the stream would carry no
        // audio, so it stays as offered.
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:101 telephone-event/8000\r\nm=video 4002 RTP/AVP 97\r\n";
        assert_eq!(agree(answer), None);
        // A refused stream written without formats is refused all the same.
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0 8 9 96 101\r\nm=video 0 RTP/AVP\r\n";
        let cut = agree(answer).unwrap();
        assert!(cut.contains("m=video 0 RTP/AVP 97\r\n"), "{cut}");
    }

    /// Fields parted by more than one space (RFC 4566 wants one; a peer may send more) are
    /// read as the anchoring reads them. Before, an empty field was taken for the port or the
    /// transport, and the offer went whole.
    #[test]
    fn an_m_line_with_runs_of_spaces_is_read_as_anchoring_reads_it() {
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 8\r\nm=video  0 RTP/AVP\r\n";
        for offer in [
            OFFER.replace("m=audio 30000 RTP", "m=audio  30000 RTP"),
            OFFER.replace("30000 RTP/AVP 0", "30000  RTP/AVP  0"),
        ] {
            let cut = agreed(
                Some("application/sdp"),
                offer.as_bytes(),
                Some("application/sdp"),
                answer.as_bytes(),
            )
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .expect("the offer changes");
            assert!(
                cut.contains("m=audio 30000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n"),
                "{cut}"
            );
            assert!(cut.contains("m=video 0 RTP/AVP 97\r\n"), "{cut}");
        }
    }

    #[test]
    fn what_cannot_be_cut_goes_as_offered() {
        // Everything taken: no change.
        assert_eq!(agree(OFFER), None);
        // Nothing of the offer's formats in the answer: not cut to nothing.
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n\
            m=video 4002 RTP/AVP 97\r\n";
        assert_eq!(agree(answer), None);
        // Neither an unreadable nor an absent answer changes anything.
        assert_eq!(agree("v=0\r\nm=audio\r\n"), None);
        assert_eq!(
            agreed(Some("application/sdp"), OFFER.as_bytes(), None, b""),
            None
        );
        // A stream that is not RTP keeps its formats.
        let offer = "v=0\r\nt=0 0\r\nm=image 30000 udptl t38 x\r\n";
        let answer = "v=0\r\nt=0 0\r\nm=image 4000 udptl t38\r\n";
        assert_eq!(
            agreed(
                Some("application/sdp"),
                offer.as_bytes(),
                Some("application/sdp"),
                answer.as_bytes()
            ),
            None
        );
    }

    /// An answer listing more formats than RTP has payload types is no peer's: the offer
    /// goes as offered, unread against it. Before, each offered format was looked up by
    /// scanning every answer line for each answer format: a 64 KB answer of 16,000 formats
    /// and lines against a 32-format offer held the call thread 2.5 s.
    #[test]
    fn an_answer_of_more_formats_than_rtp_has_is_not_read() {
        let formats = |n: usize| {
            (0..n)
                .map(|i| format!(" {}", 96 + i % 32))
                .collect::<String>()
        };
        let answer = |n: usize| {
            format!(
                "v=0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0{}\r\na=rtpmap:0 PCMU/8000\r\n\
                 m=video 4002 RTP/AVP 97\r\n",
                formats(n)
            )
        };
        // At the limit the offer is cut to what the answer took (PCMU, 96 and 101).
        let cut = agree(&answer(MAX_FORMATS - 1)).unwrap();
        assert!(cut.contains("m=audio 30000 RTP/AVP 0 96 101\r\n"), "{cut}");
        assert_eq!(agree(&answer(MAX_FORMATS)), None);
    }

    #[test]
    fn a_multipart_offer_keeps_its_other_parts() {
        let ct = "multipart/mixed;boundary=b1";
        let body = format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\n{OFFER}\r\n--b1\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b1--\r\n"
        );
        let answer = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 97\r\n";
        let cut = agreed(
            Some(ct),
            body.as_bytes(),
            Some("application/sdp"),
            answer.as_bytes(),
        )
        .unwrap();
        let cut = String::from_utf8(cut.to_vec()).unwrap();
        assert!(
            cut.contains("m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"),
            "{cut}"
        );
        assert!(
            cut.ends_with("\r\n--b1\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b1--\r\n")
        );
    }
}
