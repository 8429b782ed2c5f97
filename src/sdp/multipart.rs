//! Finding the SDP in a SIP body: the whole body (`application/sdp`), or the `application/sdp`
//! part of a `multipart/*` body (RFC 2046), as SIP-I and SIP-T carry it beside an ISUP part
//! (RFC 3204). The SDP part can then be rewritten and put back with every other byte of the
//! body (other parts, their headers, boundaries, preamble, epilogue) unchanged.

use std::ops::Range;

use bytes::Bytes;

use super::{SdpError, is_sdp};

/// The most parts a multipart body may have (SIP-I has two or three).
const MAX_PARTS: usize = 32;

/// RFC 2045 §5.1's tspecials: what ends an unquoted parameter value.
const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";
/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// Where the SDP lies in a SIP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpPart {
    range: Range<usize>,
    /// Whether the body is multipart (the SDP is one part of it).
    pub multipart: bool,
}

impl SdpPart {
    /// The SDP bytes within `body` (the body `locate` was given).
    pub fn of<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        body.get(self.range.clone()).unwrap_or_default()
    }

    /// `body` with its SDP replaced by `sdp`; every other byte as it was.
    pub fn splice(&self, body: &[u8], sdp: &[u8]) -> Bytes {
        let before = body.get(..self.range.start).unwrap_or_default();
        let after = body.get(self.range.end..).unwrap_or_default();
        let mut out = Vec::with_capacity(before.len() + sdp.len() + after.len());
        out.extend_from_slice(before);
        out.extend_from_slice(sdp);
        out.extend_from_slice(after);
        Bytes::from(out)
    }

    /// Byte range of the SDP within the body.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }
}

/// The SDP of a body: the body itself, or its SDP part ([`locate`]); `None` when it carries
/// none, or none that can be found.
pub fn sdp_of<'a>(content_type: Option<&str>, body: &'a [u8]) -> Option<&'a [u8]> {
    let part = locate(content_type, body).ok()??;
    body.get(part.range())
}

/// Whether a Content-Type names a multipart body (`multipart/mixed`, …, any case).
pub fn is_multipart(content_type: Option<&str>) -> bool {
    content_type
        .and_then(super::media_type)
        .is_some_and(|(t, _)| t.eq_ignore_ascii_case("multipart"))
}

/// Where the SDP of a SIP body is: `Ok(None)` when the body carries none (empty, another
/// type, or a multipart body without an SDP part). A body without a Content-Type (which
/// RFC 3261 §20.15 forbids, and which may well be SDP) or with one that cannot be read
/// (empty, not `type/subtype`), a multipart body that cannot be
/// taken apart, holds more than one SDP part, nests multipart parts, or encodes its SDP
/// part (base64, gzip) is an error: its SDP cannot be anchored, so it must not be forwarded.
pub fn locate(content_type: Option<&str>, body: &[u8]) -> Result<Option<SdpPart>, SdpError> {
    if body.is_empty() {
        return Ok(None);
    }
    if is_sdp(content_type) {
        return Ok(Some(SdpPart {
            range: 0..body.len(),
            multipart: false,
        }));
    }
    match content_type {
        Some(ct) if is_multipart(Some(ct)) => {
            let boundary = boundary(ct)?;
            sdp_part(body, boundary.as_bytes())
        }
        Some(ct) if super::media_type(ct).is_some() => Ok(None),
        _ => Err(SdpError::Untyped),
    }
}

/// The parameters of a Content-Type (after its type), split at the semicolons outside
/// quoted strings (RFC 2045 §5.1: a quoted value may hold `;` and `=`), names as written.
fn parameters(content_type: &str) -> Result<Vec<(&str, &str)>, SdpError> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = None;
    for (i, c) in content_type.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                if let Some(s) = start {
                    out.push(&content_type[s..i]);
                }
                start = Some(i + 1);
            }
            _ => {}
        }
    }
    if quoted {
        return Err(SdpError::Multipart("unterminated quoted parameter"));
    }
    if let Some(s) = start {
        out.push(&content_type[s..]);
    }
    Ok(out
        .into_iter()
        .filter_map(|p| p.split_once('='))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect())
}

/// The `boundary` parameter of a multipart Content-Type, quoted or not. Two of them are an
/// error: a reader that takes the other would find other parts than ours.
fn boundary(content_type: &str) -> Result<String, SdpError> {
    let params = parameters(content_type)?;
    let mut named = params
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| *v);
    let value = named
        .next()
        .ok_or(SdpError::Multipart("no boundary parameter"))?;
    if named.next().is_some() {
        return Err(SdpError::Multipart("more than one boundary parameter"));
    }
    let value = match value.strip_prefix('"') {
        Some(q) => q
            .strip_suffix('"')
            .ok_or(SdpError::Multipart("unterminated quoted boundary"))?,
        // Unquoted, it is a token (RFC 2045 §5.1): a reader ends it at a space or a
        // tspecial, so `boundary=b1 x` is `b1` there, and a `--b1` line we would not take
        // for a delimiter hides an SDP part we never anchor.
        None if value.bytes().any(|b| b == b' ' || TSPECIALS.contains(&b)) => {
            return Err(SdpError::Multipart(
                "an unquoted boundary holds a space or a special character",
            ));
        }
        None => value,
    };
    if value.is_empty() || value.len() > MAX_BOUNDARY {
        return Err(SdpError::Multipart("boundary is empty or longer than 70"));
    }
    // A quoted `\` or `"` is read one way here (as written) and another by a reader that
    // unescapes it, which would find other parts than ours; a quoted `;` ends the value for
    // a reader that cuts parameters at every `;`; a control or non-ASCII byte, or a
    // trailing space (delimiter padding to a reader), is as uncertain. Other characters
    // outside RFC 2046 §5.1.1's bchars (`*`, `{`, `%`...) are read alike: taken, as SIP
    // stacks write them.
    let ambiguous =
        |b: u8| matches!(b, b'\\' | b'"' | b';') || b.is_ascii_control() || !b.is_ascii();
    if value.bytes().any(ambiguous) || value.ends_with(' ') {
        return Err(SdpError::Multipart(
            "boundary has a character readers may take differently",
        ));
    }
    Ok(value.to_string())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The next `--boundary` at the start of a line, at or after `from`. A delimiter line is
/// that, `--` if it closes, padding and the line end (RFC 2046 §5.1.1); a line that begins
/// with `--boundary` and goes on otherwise (`--b1X`, `--b1-x`) is an error: RFC 2046 asks
/// readers to take it for a delimiter, some take it for content, and no reading of ours
/// could be trusted to be the far end's (an SDP part we did not anchor, say).
fn next_delimiter(body: &[u8], delim: &[u8], from: usize) -> Result<Option<usize>, SdpError> {
    let mut at = from;
    // Each round moves past a match, so this ends within body.len() rounds.
    loop {
        let Some(d) = find(body, delim, at) else {
            return Ok(None);
        };
        at = d + 1;
        if d > 0 && body.get(d - 1) == Some(&b'\r') {
            // After a bare CR (a delimiter follows a line feed): a reader that ends lines
            // at a CR would see a delimiter here, and a part after it (an SDP part we never
            // anchored) that we do not.
            return Err(SdpError::Multipart("a boundary after a bare CR"));
        }
        if !(d == 0 || body.get(d - 1) == Some(&b'\n')) {
            continue;
        }
        let rest = body.get(d + delim.len()..).unwrap_or_default();
        let rest = rest.strip_prefix(b"--").unwrap_or(rest);
        let padding = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        return match rest.get(padding) {
            None | Some(b'\r' | b'\n') => Ok(Some(d)),
            Some(_) => Err(SdpError::Multipart(
                "a line begins with the boundary but is no delimiter",
            )),
        };
    }
}

/// A part's headers (up to the first empty line), unfolded, and where its content starts.
/// A line that is neither a header nor the continuation of one is an error: a part whose
/// headers a MIME reader would take differently must not pass for one without SDP.
fn part_headers(part: &[u8]) -> Result<(Vec<(String, String)>, usize), SdpError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut at = 0usize;
    for raw in part.split_inclusive(|&b| b == b'\n') {
        at += raw.len();
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok((headers, at));
        }
        let text = String::from_utf8_lossy(line);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded header (RFC 2045 §3, RFC 5322 §2.2.3): part of the one above.
            let (_, value) = headers.last_mut().ok_or(SdpError::Multipart(
                "a part's headers begin with a folded line",
            ))?;
            value.push(' ');
            value.push_str(text.trim());
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) => {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()))
            }
            None => return Err(SdpError::Multipart("a part's header line is not a header")),
        }
    }
    // No empty line: all headers, no content.
    Ok((headers, part.len()))
}

fn sdp_part(body: &[u8], boundary: &[u8]) -> Result<Option<SdpPart>, SdpError> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut d = next_delimiter(body, &delim, 0)?
        .ok_or(SdpError::Multipart("boundary not found in the body"))?;
    let mut found: Option<Range<usize>> = None;
    // One delimiter a part, and the close after the last.
    for _ in 0..=MAX_PARTS {
        let after = d + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            // A delimiter line after the close: a reader that splits at every one finds
            // parts (an SDP part) that we, stopping at the close, never anchored.
            if next_delimiter(body, &delim, after)?.is_some() {
                return Err(SdpError::Multipart("a delimiter follows the closing one"));
            }
            return Ok(found.map(|range| SdpPart {
                range,
                multipart: true,
            }));
        }
        // The rest of the delimiter line is transport padding; the part starts after it.
        let nl = find(body, b"\n", after).ok_or(SdpError::Multipart("unterminated boundary"))?;
        let start = nl + 1;
        let next = next_delimiter(body, &delim, start)?
            .ok_or(SdpError::Multipart("no closing boundary"))?;
        // The line end before the next delimiter belongs to the delimiter.
        let mut end = next.saturating_sub(1).max(start);
        if end > start && body.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        let part = body.get(start..end).unwrap_or_default();
        let (headers, content) = part_headers(part)?;
        // A header a part has twice, or the one-letter form of Content-Type (which SIP
        // readers take for it in a part too): which one a reader takes decides what the
        // part is, so no reading of ours can be trusted to be the far end's.
        let count = |names: &[&str]| {
            headers
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .count()
        };
        if count(&["content-type"]) > 1
            || count(&["c"]) > 0
            || count(&["content-transfer-encoding"]) > 1
            || count(&["content-encoding"]) > 1
        {
            return Err(SdpError::Multipart(
                "a part's header is given twice, or as c",
            ));
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let ct = header("content-type");
        if ct.is_some_and(|c| super::media_type(c).is_none()) {
            return Err(SdpError::Multipart("a part's Content-Type cannot be read"));
        }
        if is_multipart(ct) {
            return Err(SdpError::Multipart("nested multipart part"));
        }
        if is_sdp(ct) {
            if found.is_some() {
                return Err(SdpError::Multipart("more than one SDP part"));
            }
            let encoded = header("content-transfer-encoding").is_some_and(|e| {
                !["7bit", "8bit", "binary"]
                    .iter()
                    .any(|ok| e.eq_ignore_ascii_case(ok))
            });
            if encoded || header("content-encoding").is_some() {
                return Err(SdpError::Multipart("SDP part is encoded"));
            }
            found = Some(start + content..end);
        }
        d = next;
    }
    Err(SdpError::Multipart("too many parts"))
}

/// A `multipart/mixed` body of `sdp` (as its first part, `application/sdp`) and `other` as
/// it came: its Content-Type `other_type` and the other headers that described it as a whole
/// body (`Content-Disposition: signal;handling=optional` for ISUP). SIP-I's early-offer
/// INVITE (ITU-T Q.1912.5) is such a body. Returns the body and its Content-Type; `None`
/// only if no boundary of ours is free, which takes parts of over 200 KB.
pub fn with_sdp_part(
    sdp: &[u8],
    other: &[u8],
    other_type: &str,
    other_headers: &[(&str, &str)],
) -> Option<(Bytes, String)> {
    let boundary = fresh_boundary(&[sdp, other])?;
    let mut out = Vec::with_capacity(sdp.len() + other.len() + 200);
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/sdp\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(sdp);
    out.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Type: {other_type}\r\n").as_bytes());
    for (name, value) in other_headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(other);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some((
        Bytes::from(out),
        format!("multipart/mixed;boundary={boundary}"),
    ))
}

/// A boundary `trunkgate-xyz` (three lowercase letters) that none of `parts` contains, found
/// in one pass over them: a part contains one only where the stem is followed by exactly its
/// letters, so the first three letters no occurrence of the stem is followed by will do.
/// Taking all 17,576 would need parts of over 200 KB.
fn fresh_boundary(parts: &[&[u8]]) -> Option<String> {
    const STEM: &[u8] = b"trunkgate-";
    let letter = |b: Option<&u8>| {
        b.filter(|b| b.is_ascii_lowercase())
            .map(|b| usize::from(b - b'a'))
    };
    let mut taken = vec![false; 26 * 26 * 26];
    for part in parts {
        let mut from = 0;
        while let Some(at) = find(part, STEM, from) {
            let rest = at + STEM.len();
            if let (Some(a), Some(b), Some(c)) = (
                letter(part.get(rest)),
                letter(part.get(rest + 1)),
                letter(part.get(rest + 2)),
            ) {
                taken[(a * 26 + b) * 26 + c] = true;
            }
            from = at + 1;
        }
    }
    let free = taken.iter().position(|t| !t)?;
    let l = |n: usize| char::from(b'a' + (n % 26) as u8);
    Some(format!(
        "trunkgate-{}{}{}",
        l(free / (26 * 26)),
        l(free / 26),
        l(free)
    ))
}

#[cfg(test)]
mod tests;
