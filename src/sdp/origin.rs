//! The `o=` line the gateway presents to one peer of an anchored call.
//!
//! RFC 3264 §8: within a dialog, each SDP a party sends repeats its `o=` line, and the version
//! grows by one whenever the SDP changes (and only then). Behind an anchoring gateway, the
//! SDP one peer receives may come from several writers: a callee that failed over to the
//! next, a fork's early media and another's answer, or the gateway's own refusal. Passing
//! each writer's `o=` on would show that peer two sessions, or the same version for
//! different SDP, which peers that skip SDP whose version did not change (Asterisk's
//! default, for one) then ignore. So each leg is shown one session: the first writer's,
//! numbered on by the gateway.

use bytes::Bytes;

use super::lines;

/// What one peer has been shown: its session id and version, and a digest of the last SDP
/// sent with them, the `o=` line aside, which tells an SDP sent again from a changed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    session: u64,
    version: u64,
    /// `None` after an offer the peer refused: the next SDP is a new version whatever it
    /// holds, since the peer has seen the refused one's.
    digest: Option<u64>,
}

impl Origin {
    /// The session id and version for the `o=` line of `sdp` (already anchored, its `o=`
    /// line the creator's), sent to the peer `shown` describes, and what that peer has then
    /// been shown. The first SDP keeps its creator's numbers; an SDP the same as the last
    /// (its `o=` aside) keeps the last version; any other gets the next.
    pub fn present(shown: &mut Option<Origin>, sdp: &[u8]) -> (u64, u64) {
        let digest = Some(digest(sdp));
        let o = match shown {
            None => {
                let (session, version) = creator(sdp);
                shown.insert(Origin {
                    session,
                    version,
                    digest,
                })
            }
            Some(o) if o.digest == digest => o,
            Some(o) => {
                o.version = o.version.saturating_add(1);
                o.digest = digest;
                o
            }
        };
        (o.session, o.version)
    }

    /// The version last shown.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The peer refused the last SDP it was shown (an offer): whatever comes next, even the
    /// SDP from before that offer, is shown at the next version, never at one it has seen.
    pub fn refused(&mut self) {
        self.digest = None;
    }
}

/// A body sent to a peer again (a session refresh offering the SDP it last had) with its
/// SDP's `o=` numbered as [`Origin::present`] says: the same line when nothing changed since,
/// the next version after a refused offer. A body without SDP is left as it is.
pub fn present_again(
    content_type: Option<&str>,
    body: &Bytes,
    shown: &mut Option<Origin>,
) -> Bytes {
    match super::locate(content_type, body) {
        Ok(Some(part)) => {
            let sdp = shown_as(Bytes::copy_from_slice(part.of(body)), Some(shown));
            part.splice(body, &sdp)
        }
        _ => body.clone(),
    }
}

/// `sdp` (an anchored SDP or the gateway's own answer) as the peer `shown` describes is to
/// see it: its `o=` line numbered by [`Origin::present`]. Without `shown` (a call that is
/// not anchored, a new dialog), as it is.
pub(super) fn shown_as(sdp: Bytes, shown: Option<&mut Option<Origin>>) -> Bytes {
    let Some(shown) = shown else {
        return sdp;
    };
    let (session, version) = Origin::present(shown, &sdp);
    let mut out = Vec::with_capacity(sdp.len() + 16);
    for l in lines(&sdp) {
        match l.value(b"o=") {
            Some(o) => {
                let f: Vec<&[u8]> = o.split(|&b| b == b' ').collect();
                out.extend_from_slice(b"o=");
                match f.as_slice() {
                    [user, _, _, rest @ ..] => {
                        out.extend_from_slice(user);
                        out.extend_from_slice(format!(" {session} {version}").as_bytes());
                        for part in rest {
                            out.push(b' ');
                            out.extend_from_slice(part);
                        }
                    }
                    // The rewrite always writes six fields; keep anything else as it is.
                    _ => out.extend_from_slice(o),
                }
            }
            None => out.extend_from_slice(l.text),
        }
        out.extend_from_slice(l.eol);
    }
    Bytes::from(out)
}

/// Whether two SDPs are the same but for their `o=` lines (one presented again at another
/// version is the same SDP).
pub fn same_but_origin(a: &[u8], b: &[u8]) -> bool {
    let rest = |sdp| lines(sdp).filter(|l| !l.text.starts_with(b"o="));
    rest(a)
        .map(|l| (l.text, l.eol))
        .eq(rest(b).map(|l| (l.text, l.eol)))
}

/// 64-bit FNV-1a of `bytes`: names content, no secret.
fn fnv1a<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A digest of every line of an SDP but its `o=` line, line ends included.
fn digest(sdp: &[u8]) -> u64 {
    fnv1a(
        lines(sdp)
            .filter(|l| !l.text.starts_with(b"o="))
            .flat_map(|l| l.text.iter().chain(l.eol)),
    )
}

/// The session id and version of an SDP's `o=` line. A session id that is not a number that
/// fits 64 bits (RFC 8866 asks only for a numeric string) is replaced by a digest of it; a
/// version that is not one, or so high that our numbering could not go on from it (the
/// next SDP would repeat it, and be ignored), starts at 1.
fn creator(sdp: &[u8]) -> (u64, u64) {
    let fields = lines(sdp)
        .find_map(|l| l.text.strip_prefix(b"o="))
        .map(|o| {
            let mut f = o.split(|&b| b == b' ').filter(|f| !f.is_empty()).skip(1);
            (f.next().unwrap_or_default(), f.next().unwrap_or_default())
        })
        .unwrap_or_default();
    let number = |f: &[u8]| {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    };
    let session = number(fields.0).unwrap_or_else(|| fnv1a(fields.0));
    let version = number(fields.1).filter(|v| *v < MAX_START).unwrap_or(1);
    (session, version)
}

/// The highest version a creator's numbering is taken on from: 2^62 leaves more versions
/// than any call sends.
const MAX_START: u64 = 1 << 62;

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(origin: &str, port: u16) -> Vec<u8> {
        format!("v=0\r\no={origin}\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
            .into_bytes()
    }

    #[test]
    fn one_session_per_peer_whose_version_moves_only_when_the_sdp_does() {
        let mut shown = None;
        // The first callee's early media: its own numbers.
        assert_eq!(
            Origin::present(&mut shown, &sdp("- 100 7 IN IP4 gw", 30000)),
            (100, 7)
        );
        // The same SDP again (a 200 after the 183): the same version.
        assert_eq!(
            Origin::present(&mut shown, &sdp("- 100 7 IN IP4 gw", 30000)),
            (100, 7)
        );
        // Failover: the next callee's answer, its own session and an equal version.
        assert_eq!(
            Origin::present(&mut shown, &sdp("- 555 7 IN IP4 gw", 30002)),
            (100, 8)
        );
        // Its refresh, unchanged but for its own version: nothing changed for this peer.
        assert_eq!(
            Origin::present(&mut shown, &sdp("- 555 8 IN IP4 gw", 30002)),
            (100, 8)
        );
        assert_eq!(
            Origin::present(&mut shown, &sdp("- 555 9 IN IP4 gw", 30004)),
            (100, 9)
        );
    }

    #[test]
    fn a_creator_whose_numbers_do_not_fit_still_gets_a_session() {
        let mut shown = None;
        let (session, version) = Origin::present(
            &mut shown,
            &sdp("- 123456789012345678901234 x IN IP4 gw", 1),
        );
        assert_eq!(version, 1);
        let mut again = None;
        let same = Origin::present(
            &mut again,
            &sdp("- 123456789012345678901234 x IN IP4 gw", 1),
        );
        assert_eq!(same, (session, 1), "the same session for the same id");
        let mut none = None;
        assert_eq!(
            Origin::present(&mut none, b"v=0\r\nm=audio 1 RTP/AVP 0\r\n").1,
            1
        );
    }

    #[test]
    fn a_creator_at_the_top_of_the_versions_is_renumbered_so_changes_show() {
        let mut shown = None;
        let top = "- 1 18446744073709551615 IN IP4 gw";
        assert_eq!(Origin::present(&mut shown, &sdp(top, 30000)), (1, 1));
        // A different SDP (another fork's answer, say) is a new version, not the same one.
        assert_eq!(Origin::present(&mut shown, &sdp(top, 30002)), (1, 2));
    }

    #[test]
    fn the_origin_line_is_renumbered_and_nothing_else_changes() {
        let mut shown = None;
        let first = shown_as(
            Bytes::from(sdp("- 100 7 IN IP4 gw", 30000)),
            Some(&mut shown),
        );
        assert_eq!(&first[..], &sdp("- 100 7 IN IP4 gw", 30000)[..]);
        let next = shown_as(
            Bytes::from(sdp("- 555 1 IN IP4 gw", 30002)),
            Some(&mut shown),
        );
        assert_eq!(&next[..], &sdp("- 100 8 IN IP4 gw", 30002)[..]);
        // Without a peer to number for, the SDP is left as it is.
        let plain = Bytes::from(sdp("- 555 1 IN IP4 gw", 30002));
        assert_eq!(shown_as(plain.clone(), None), plain);
    }
}

#[cfg(test)]
mod refused_tests {
    use super::*;

    #[test]
    fn after_a_refused_offer_even_the_old_sdp_is_a_new_version() {
        let sdp = |port: u16| {
            Bytes::from(format!(
                "v=0\r\no=- 1 1 IN IP4 gw\r\ns=-\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
            ))
        };
        let origin = |b: &Bytes| {
            String::from_utf8_lossy(b)
                .lines()
                .find(|l| l.starts_with("o="))
                .unwrap()
                .to_string()
        };
        let mut shown = None;
        let ct = Some("application/sdp");
        assert_eq!(
            origin(&present_again(ct, &sdp(1), &mut shown)),
            "o=- 1 1 IN IP4 gw"
        );
        // The same SDP again: the same line.
        assert_eq!(
            origin(&present_again(ct, &sdp(1), &mut shown)),
            "o=- 1 1 IN IP4 gw"
        );
        // An offer (version 2), refused; the SDP from before it comes again: version 3.
        assert_eq!(
            origin(&present_again(ct, &sdp(2), &mut shown)),
            "o=- 1 2 IN IP4 gw"
        );
        if let Some(o) = shown.as_mut() {
            o.refused();
        }
        assert_eq!(
            origin(&present_again(ct, &sdp(1), &mut shown)),
            "o=- 1 3 IN IP4 gw"
        );
        assert_eq!(
            origin(&present_again(ct, &sdp(1), &mut shown)),
            "o=- 1 3 IN IP4 gw"
        );
        // A body without SDP passes as it is.
        let isup = Bytes::from_static(b"\x01\x02");
        assert_eq!(
            present_again(Some("application/isup"), &isup, &mut shown),
            isup
        );
    }
}
