//! Reading an SDP's media streams and pointing them at the gateway (media anchoring).

use std::net::IpAddr;

use bytes::Bytes;

use super::{Line, SdpError, lines};

mod endpoint;
mod read;
mod refuse;
use endpoint::Repeats;
pub use endpoint::{Endpoint, Transport};
pub use read::read;
pub(super) use refuse::padded;
pub use refuse::{
    carries_sdp, refuse_all, refuse_all_answering, refused_sections, refusing_answer,
};

/// `[media] max_streams` when the configuration does not say: media sections per SDP that
/// get ports.
pub const DEFAULT_MAX_STREAMS: usize = 4;

/// The most `[media] max_streams` may say (the gateway's or a profile's).
pub const MAX_STREAMS_LIMIT: usize = 16;

/// ICE attributes (RFC 8839). Candidates name the peer's addresses (host, server-reflexive,
/// relay); the rest would make the far end start ICE checks the relay does not answer. An
/// anchored leg gets plain RTP to the gateway, so all of them go.
const ICE_ATTRIBUTES: [&[u8]; 8] = [
    b"a=candidate:",
    b"a=remote-candidates:",
    b"a=end-of-candidates",
    b"a=ice-ufrag:",
    b"a=ice-pwd:",
    b"a=ice-options:",
    b"a=ice-lite",
    b"a=ice-mismatch",
];

/// Source-level attributes (RFC 5576) and stream identifiers, dropped from anchored SDP.
const SOURCE_ATTRIBUTES: [&[u8]; 3] = [b"a=ssrc:", b"a=ssrc-group:", b"a=msid"];

/// Attributes that name other addresses of the endpoint, dropped from anchored SDP: the
/// alternative connection addresses of RFC 6947 (`a=altc`: a far end that chose one would
/// send around the relay), MSRP's `a=path` (RFC 4975; MSRP runs over TCP, so its stream
/// is refused anyway) and source filters (RFC 4570 `a=source-filter`: a far end that kept
/// one would take media only from the endpoint's address, never from the relay's), and
/// connection capabilities (RFC 7006 `a=ccap`: another address a far end that negotiates
/// capabilities could pick with `a=pcfg`).
const ADDRESS_ATTRIBUTES: [&[u8]; 4] = [b"a=altc:", b"a=path:", b"a=source-filter:", b"a=ccap:"];

/// Lines that say who made the SDP, with what, and how to reach them (RFC 4566 §5.4–5.6, §6
/// `a=tool`): a PBX's version, a user's address. Not the far end's business, as `User-Agent`
/// is not (nor is `s=Asterisk`: the session name becomes `-`).
const CREATOR_LINES: [&[u8]; 5] = [b"i=", b"u=", b"e=", b"p=", b"a=tool:"];

/// BUNDLE (RFC 8843): one address and port for several media sections. The relay gives each
/// section ports of its own, so an anchored SDP offers and answers no BUNDLE group (without
/// it in the answer, each section keeps its own port, §7.3.3); a section offered only
/// within the bundle (port 0, `a=bundle-only`) stays refused. `a=mid` is harmless and stays.
const BUNDLE_ATTRIBUTES: [&[u8]; 2] = [b"a=group:BUNDLE", b"a=bundle-only"];

/// Whether an `m=` value's fields are parted by spaces alone (RFC 8866 §5.14): a tab is
/// whitespace to some readers and part of a field to others, so where its port is would
/// be read two ways.
fn spaced(m: &[u8]) -> bool {
    !m.iter().any(|&b| b.is_ascii_whitespace() && b != b' ')
}

/// An `m=` value `read` could not take, refused: its media, port 0, its transport and
/// formats, parted by single spaces (`RTP/AVP 0` when it named none).
fn refused_m_line(m: &[u8]) -> Vec<u8> {
    let mut fields = m
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let media = fields.next().unwrap_or(b"audio");
    let rest: Vec<&[u8]> = fields.skip(1).collect();
    let mut out = media.to_vec();
    out.extend_from_slice(b" 0 ");
    if rest.len() < 2 {
        out.extend_from_slice(b"RTP/AVP 0");
    } else {
        out.extend_from_slice(&rest.join(&b' '));
    }
    out
}

fn field(v: &[u8], n: usize) -> Option<&[u8]> {
    v.split(|&b| b == b' ').filter(|f| !f.is_empty()).nth(n)
}

fn ascii(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok().filter(|s| s.is_ascii())
}

/// An `m=` line's value split as [`field`] splits it, whatever runs of spaces part its
/// fields (RFC 4566 wants one; a peer may send more): its media, its port field, and the
/// rest from the transport on. The rewrite goes through it, so the port it replaces is
/// the one `read` took (fuzz finding F6).
pub(super) fn m_fields(v: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    fn next<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let start = rest.iter().position(|&b| b != b' ')?;
        let from = &rest[start..];
        let end = from.iter().position(|&b| b == b' ').unwrap_or(from.len());
        let (token, tail) = from.split_at(end);
        *rest = tail;
        Some(token)
    }
    let mut rest = v;
    let media = next(&mut rest)?;
    let port = next(&mut rest)?;
    let start = rest.iter().position(|&b| b != b' ')?;
    Some((media, port, &rest[start..]))
}

/// The port of an `m=` line's value (`audio 4000/2 RTP/AVP 0` → 4000).
fn m_port(v: &[u8]) -> Option<u16> {
    let port = field(v, 1)?;
    let port = port.split(|&b| b == b'/').next()?;
    ascii(port)?.parse().ok()
}

/// The address of a `c=` line's value (`IN IP4 192.0.2.1/127` → 192.0.2.1); `Ok(None)` for a
/// host name.
fn c_address(v: &[u8], line: usize) -> Result<Option<IpAddr>, SdpError> {
    let syntax = |what| SdpError::Syntax { line, what };
    let (Some(b"IN"), Some(_family), Some(addr)) = (field(v, 0), field(v, 1), field(v, 2)) else {
        return Err(syntax("c= is not \"IN <family> <address>\""));
    };
    let addr = addr.split(|&b| b == b'/').next().unwrap_or_default();
    let addr = ascii(addr).ok_or_else(|| syntax("c= address is not ASCII"))?;
    Ok(addr.parse().ok())
}

/// Media sections an SDP may have in all, port-0 ones included.
pub const MAX_SECTIONS: usize = 128;

/// Check the shape of a line: `<letter>=` (empty lines are tolerated anywhere), and no NUL
/// or CR inside it (RFC 4566 §9, byte-string): a CR that a far end's parser takes for a line
/// end would smuggle a line past the rewrite (a `c=` naming the caller's real address).
fn typed(l: &Line<'_>, line: usize) -> Result<(), SdpError> {
    // CRs at the end of a line are its line end ([`lines`]): only one with text after it
    // could start another line.
    if l.text.iter().any(|&b| b == 0 || b == b'\r') {
        return Err(SdpError::Syntax {
            line,
            what: "a NUL or CR inside a line",
        });
    }
    match l.text {
        [] => Ok(()),
        [t, b'=', ..] if t.is_ascii_lowercase() => Ok(()),
        _ => Err(SdpError::Syntax {
            line,
            what: "not a <type>=<value> line",
        }),
    }
}

/// Check the number of media sections that would get relay ports ([`Endpoint::is_relayed`])
/// against `[media] max_streams`; `Ok` with that number, or `TooManyStreams` when the SDP asks
/// for more (refuse it: 488).
pub fn limit_streams(streams: &[Endpoint], max_streams: usize) -> Result<usize, SdpError> {
    // Port-0 sections take no ports, but each is a stream the call keeps state for, and a
    // 64 KB INVITE holds thousands: a re-offer keeps the ones it refused (RFC 3264 §8.2),
    // never this many.
    if streams.len() > MAX_SECTIONS {
        return Err(SdpError::TooManySections {
            found: streams.len(),
            max: MAX_SECTIONS,
        });
    }
    let found = streams.iter().filter(|e| e.is_relayed()).count();
    if found > max_streams {
        return Err(SdpError::TooManyStreams {
            found,
            max: max_streams,
        });
    }
    Ok(found)
}

/// Point every stream of an SDP at the gateway:
/// - every `c=` line (session and media level) names `ip`;
/// - the n-th `m=` line gets `ports[n]`; a stream with port 0 stays at 0, and one with no
///   port (`None`, or past the end of `ports`) is refused with port 0 rather than leaking
///   the peer's address;
/// - `a=rtcp:` becomes port + 1 at `ip`, and is dropped in a refused stream;
/// - `o=` names `ip` as its address and `-` as its username (the creator's login or device
///   name is not the far end's business); its session id and version stay, so the far end
///   still sees the creator's session change or stay the same;
/// - `s=` is `-`, and what names the creator, its software or its contacts (`i=`, `u=`,
///   `e=`, `p=`, `a=tool`) is removed;
/// - ICE attributes (`a=candidate`, `a=ice-ufrag`, …), source attributes (`a=ssrc`, …),
///   other addresses (`a=altc`, `a=path`) and BUNDLE (`a=group:BUNDLE`, `a=bundle-only`)
///   are removed.
///
/// Every other line is kept byte for byte with its own line end. Refuses (with the same
/// errors as [`read`]) an SDP it cannot read, so nothing is forwarded half-rewritten.
pub fn anchor_streams(sdp: &[u8], ip: IpAddr, ports: &[Option<u16>]) -> Result<Bytes, SdpError> {
    anchor_sections(sdp, ip, ports, usize::MAX)
}

/// [`anchor_streams`] keeping only the first `sections` media sections (an answer's, cut to
/// its offer's count).
pub(super) fn anchor_sections(
    sdp: &[u8],
    ip: IpAddr,
    ports: &[Option<u16>],
    sections: usize,
) -> Result<Bytes, SdpError> {
    read(sdp)?;
    Ok(rewrite(sdp, ip, ports, None, sections))
}

/// The SDP address type (RFC 4566 §5.7) of `ip`.
fn addr_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

/// The rewrite of [`anchor_streams`], on whatever lines there are, of the first `sections`
/// media sections (the lines of later ones are left out). `own_origin`: the `o=` line
/// becomes the gateway's own, with that number as session id and version, instead of the
/// creator's with its address replaced.
fn rewrite(
    sdp: &[u8],
    ip: IpAddr,
    ports: &[Option<u16>],
    own_origin: Option<u32>,
    sections: usize,
) -> Bytes {
    let family = addr_type(ip);
    let mut index: Option<usize> = None;
    // The port the current section got, if any.
    let mut current: Option<u16> = None;
    let mut repeats = Repeats::default();
    let mut out: Vec<u8> = Vec::with_capacity(sdp.len() + 64);
    // The session lines RFC 4566 requires (o=, s=, t=) that the SDP lacks: taken from a
    // peer that leaves them out, they are added in their places, so a strict far end
    // (an IMS core) does not refuse what the gateway sends.
    let session = || {
        lines(sdp)
            .filter(|l| typed(l, 0).is_ok())
            .map(|l| l.text)
            .take_while(|t| !t.starts_with(b"m="))
    };
    let lacks = |prefix: &[u8]| !session().any(|t| t.starts_with(prefix));
    let (mut need_o, mut need_s, mut need_t) = (lacks(b"o="), lacks(b"s="), lacks(b"t="));
    // A connection line, at the session level or in every section (RFC 4566 §5.7): a peer
    // that wrote none gets the gateway's at the session level, or the far end would not
    // know where to send.
    let mut need_c = lacks(b"c=") && {
        let mut bare = false;
        let mut has_c = true;
        for t in lines(sdp).map(|l| l.text) {
            if t.starts_with(b"m=") {
                bare |= !has_c;
                has_c = false;
            } else if t.starts_with(b"c=") {
                has_c = true;
            }
        }
        bare || !has_c
    };
    // What ends an added line: the SDP's own line end (a last line may have none).
    let eol: &[u8] = lines(sdp)
        .map(|l| l.eol)
        .find(|e| !e.is_empty())
        .unwrap_or(b"\r\n");
    for l in lines(sdp) {
        if need_c
            && index.is_none()
            && [&b"b="[..], b"t=", b"r=", b"z=", b"k=", b"a=", b"m="]
                .iter()
                .any(|p| l.text.starts_with(p))
        {
            out.extend_from_slice(format!("c=IN {family} {ip}").as_bytes());
            out.extend_from_slice(eol);
            need_c = false;
        }
        if need_t
            && index.is_none()
            && [&b"r="[..], b"z=", b"k=", b"a=", b"m="]
                .iter()
                .any(|p| l.text.starts_with(p))
        {
            out.extend_from_slice(b"t=0 0");
            out.extend_from_slice(eol);
            need_t = false;
        }
        // What `read` refuses (a CR or NUL inside a line, a line of no type) is left out of
        // what is made of an SDP it refused: a far end that splits lines at a bare CR would
        // read the peer's own lines in it.
        if typed(&l, 0).is_err() {
            continue;
        }
        // A session line inside a media section is out of place (RFC 4566 §5): a strict
        // reader refuses it, and one that was missing is added where it belongs.
        if index.is_some() && SESSION_ONLY.iter().any(|p| l.text.starts_with(p)) {
            continue;
        }
        if repeats.repeated(l.text) {
            continue;
        }
        if let Some(m) = l.value(b"m=") {
            let i = index.map_or(0, |i| i + 1);
            index = Some(i);
            if i >= sections {
                // Every later line belongs to a section left out.
                break;
            }
            let rejected = m_port(m) == Some(0);
            current = if rejected {
                None
            } else {
                ports.get(i).copied().flatten()
            };
            out.extend_from_slice(b"m=");
            match m_fields(m).filter(|_| spaced(m) && m_port(m).is_some()) {
                // `read` checked that it has media, port and transport.
                Some((media, _old, rest)) => {
                    out.extend_from_slice(media);
                    out.extend_from_slice(format!(" {} ", current.unwrap_or(0)).as_bytes());
                    out.extend_from_slice(rest);
                }
                // What `read` refused (`refuse_all`): refused with port 0 in a line any
                // reader splits alike, whatever whitespace parted its fields (a reader
                // splitting at tabs too would take `audio\t4000\t…` for a live stream).
                None => out.extend_from_slice(&refused_m_line(m)),
            }
        } else if let Some(c) = l.value(b"c=") {
            // An old-style hold (`c=IN IP4 0.0.0.0`, RFC 3264 §8.4) stays one toward the
            // other leg: rewritten to our address it would read as a live offer, and the
            // far end would go on sending.
            let held = c_address(c, 0)
                .ok()
                .flatten()
                .is_some_and(|a| a.is_unspecified());
            let to: IpAddr = match (held, ip) {
                (false, _) => ip,
                (true, IpAddr::V4(_)) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                (true, IpAddr::V6(_)) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            out.extend_from_slice(format!("c=IN {family} {to}").as_bytes());
        } else if l.text.starts_with(b"a=rtcp:") {
            match (index, current) {
                (Some(_), Some(p)) => out.extend_from_slice(
                    format!("a=rtcp:{} IN {family} {ip}", u32::from(p) + 1).as_bytes(),
                ),
                // A refused stream's RTCP address is the peer's: drop the line.
                (Some(_), None) => continue,
                // Session level (not where RFC 3605 puts it): no port of ours to name.
                (None, _) => continue,
            }
        } else if let Some(d) = endpoint::direction(l.text) {
            out.extend_from_slice(d.line());
        } else if ICE_ATTRIBUTES.iter().any(|a| l.text.starts_with(a)) {
            continue;
        } else if SOURCE_ATTRIBUTES.iter().any(|a| l.text.starts_with(a)) {
            // RFC 5576 source attributes name the endpoint (`cname:sip:1001@<its IP>`,
            // stream labels): optional, and not the other side's business.
            continue;
        } else if (ADDRESS_ATTRIBUTES.iter())
            .chain(&BUNDLE_ATTRIBUTES)
            .chain(&CREATOR_LINES)
            .any(|a| l.text.starts_with(a))
        {
            continue;
        } else if l.text.starts_with(b"s=") {
            out.extend_from_slice(b"s=-");
        } else if let Some(o) = l.value(b"o=") {
            // The origin names the creator's login and host too: replace those, keep the
            // session it names and its version.
            let f: Vec<&[u8]> = o.split(|&b| b == b' ').collect();
            out.extend_from_slice(b"o=");
            if let Some(session) = own_origin {
                out.extend_from_slice(format!("- {session} {session} IN {family} {ip}").as_bytes());
            } else if let [_user, id, version, net, _, _] = f.as_slice() {
                out.extend_from_slice(b"- ");
                for part in [*id, *version, *net] {
                    out.extend_from_slice(part);
                    out.push(b' ');
                }
                out.extend_from_slice(format!("{family} {ip}").as_bytes());
            } else {
                out.extend_from_slice(format!("- 0 0 IN {family} {ip}").as_bytes());
            }
        } else {
            out.extend_from_slice(l.text);
        }
        out.extend_from_slice(l.eol);
        // In their order: o= after v=, s= after o= (the peer's or the one added).
        let add_o = need_o && l.text == b"v=0";
        let add_s = need_s && index.is_none() && (add_o || l.text.starts_with(b"o="));
        if (add_o || add_s) && l.eol.is_empty() {
            out.extend_from_slice(eol);
        }
        if add_o {
            let id = own_origin.unwrap_or(0);
            out.extend_from_slice(format!("o=- {id} {id} IN {family} {ip}").as_bytes());
            out.extend_from_slice(eol);
            need_o = false;
        }
        if add_s {
            out.extend_from_slice(b"s=-");
            out.extend_from_slice(eol);
            need_s = false;
        }
    }
    // No line after which t= belongs came (no media section at all): it ends the SDP.
    if need_t && index.is_none() {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(b"t=0 0");
        out.extend_from_slice(eol);
    }
    Bytes::from(out)
}

/// Lines that belong to the session section only (RFC 4566 §5).
const SESSION_ONLY: [&[u8]; 4] = [b"v=", b"o=", b"s=", b"t="];

#[cfg(test)]
mod tests;
