//! Reading a datagram without parsing it, for the edge under overload: is it a new INVITE
//! (and which transaction), or the ACK of a refusal we sent without state; and the stateless
//! 503 for such an INVITE, built from the request's own header lines.
//!
//! Everything here is conservative: any doubt (a folded header, a control character, a
//! header present twice, a To that may carry a tag) answers "not sure", and the message
//! takes the full path through the parser and the core. Nothing allocates except the reply
//! (and [`top_via_port`], for a response on a closed TCP connection, its Via's copy).

/// What a datagram is, as far as shedding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek<'a> {
    /// An INVITE outside any dialog that can be refused here: its head, and the branch of
    /// its top Via (the transaction it starts).
    NewInvite { head: Head<'a>, branch: &'a [u8] },
    /// An ACK whose To header carries `;tag=` followed by these bytes.
    Ack { to_tag: &'a [u8] },
    /// A CANCEL outside any dialog, read as plainly as a new INVITE: its head (whose
    /// [`Head::cancelled_request_id`] names the INVITE it cancels) and its top Via's branch.
    Cancel { head: Head<'a>, branch: &'a [u8] },
    /// Anything else, or not sure.
    Other,
}

/// Most Via lines a fast reply copies; a request with more takes the full path.
const MAX_VIAS: usize = 8;

/// The header lines a response copies (RFC 3261 §8.2.6.2), each as received, one line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    /// The top Via's first value, trimmed (a CANCEL repeats it, RFC 3261 §9.1, not its line).
    top_via: &'a [u8],
    vias: [&'a [u8]; MAX_VIAS],
    n_vias: usize,
    from: &'a [u8],
    to: &'a [u8],
    call_id: &'a [u8],
    cseq: &'a [u8],
}

impl Head<'_> {
    /// The top Via value, Call-ID and CSeq as received: with the top Via's branch, what one
    /// INVITE and its retransmissions share (byte for byte) and another INVITE does not,
    /// whatever else of the Via it changes (its sent-by, which the transaction layer keys
    /// on too). The value, not its line: a CANCEL repeats the INVITE's top Via, which may
    /// have shared its line with others, under a name written otherwise (`v:`).
    pub fn request_id(&self) -> (&[u8], &[u8], &[u8]) {
        (self.top_via, self.call_id, self.cseq)
    }

    /// A CANCEL's head: the CSeq line of the INVITE it cancels, as [`Head::request_id`]
    /// reads that INVITE's (RFC 3261 §9.1: the same top Via, Call-ID and CSeq number; a
    /// CANCEL whose CSeq line differs from its INVITE's but for the method is not matched).
    pub fn cancelled_cseq(&self) -> Option<Vec<u8>> {
        let prefix = self.cseq.strip_suffix(b"CANCEL")?;
        Some([prefix, b"INVITE"].concat())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Route,
    Other,
}

fn name_of(line: &[u8]) -> Option<(Name, &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii();
    let value = line[colon + 1..].trim_ascii();
    let is = |long: &[u8], short: &[u8]| {
        name.eq_ignore_ascii_case(long) || (!short.is_empty() && name.eq_ignore_ascii_case(short))
    };
    let n = if is(b"via", b"v") {
        Name::Via
    } else if is(b"from", b"f") {
        Name::From
    } else if is(b"to", b"t") {
        Name::To
    } else if is(b"call-id", b"i") {
        Name::CallId
    } else if is(b"cseq", b"") {
        Name::CSeq
    } else if is(b"route", b"") {
        Name::Route
    } else {
        Name::Other
    };
    Some((n, value))
}

/// The sent-by port of a message's top Via, 5060 when it names none (RFC 3261 §18.2.2); read
/// from the head's lines as written (folded lines and the whitespace the grammar allows
/// around `/` and `:` included), so a message too large to parse again (one we built)
/// still gives it. `None` without a readable Via.
pub fn top_via_port(wire: &[u8]) -> Option<u16> {
    top_via_sent_by(wire).map(|(_, port)| port)
}

/// The sent-by of a message's top Via: its host as written (an IPv6 one without its
/// brackets) and its port, as [`top_via_port`].
pub fn top_via_sent_by(wire: &[u8]) -> Option<(Vec<u8>, u16)> {
    let head_end = memchr::memmem::find(wire, b"\r\n\r\n").unwrap_or(wire.len());
    let folded = |l: &&[u8]| l.first().is_some_and(|b| *b == b' ' || *b == b'\t');
    let mut lines = wire[..head_end]
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .peekable();
    let mut value = loop {
        let line = lines.next()?;
        if folded(&line) {
            continue;
        }
        if let Some((Name::Via, v)) = name_of(line) {
            break v.to_vec();
        }
    };
    while let Some(more) = lines.next_if(folded) {
        value.push(b' ');
        value.extend_from_slice(more.trim_ascii());
    }
    // `SIP / 2.0 / TCP host [: port] ;params, next`: the sent-by follows the transport.
    let first = value.split(|&b| b == b';' || b == b',').next()?;
    let after_version = first
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .nth(1)
        .map(|(i, _)| i + 1)?;
    let rest = first[after_version..].trim_ascii_start();
    let transport_end = rest
        .iter()
        .position(|&b| !super::is_token_byte(b))
        .unwrap_or(rest.len());
    if transport_end == 0 {
        return None;
    }
    let sent_by = rest[transport_end..].trim_ascii_start();
    let (host, after_host) = match sent_by.strip_prefix(b"[") {
        Some(v6) => {
            let end = v6.iter().position(|&b| b == b']')?;
            (&v6[..end], &v6[end + 1..])
        }
        None => {
            let end = sent_by
                .iter()
                .position(|&b| b == b':' || b.is_ascii_whitespace())
                .unwrap_or(sent_by.len());
            if end == 0 {
                return None;
            }
            (&sent_by[..end], &sent_by[end..])
        }
    };
    let port = match after_host.trim_ascii_start().strip_prefix(b":") {
        None => 5060,
        Some(p) => std::str::from_utf8(p.trim_ascii())
            .ok()?
            .parse()
            .ok()
            .filter(|&p| p > 0)?,
    };
    Some((host.to_vec(), port))
}

/// ASCII case-insensitive search.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The header parameters of a From/To value: after the `>` of a name-addr, else all of it
/// (an addr-spec's `;` parameters are header parameters, RFC 3261 §20). `None` for a `>`
/// with no `<` before it, or a `<` left open: what the parser makes of that is not ours to
/// guess (it reads no tag in `To: b@x>;tag=1`).
fn header_params(value: &[u8]) -> Option<&[u8]> {
    let lt = value.iter().position(|&b| b == b'<');
    match (lt, value.iter().rposition(|&b| b == b'>')) {
        (Some(lt), Some(gt)) if lt < gt => Some(&value[gt + 1..]),
        (None, None) => Some(value),
        _ => None,
    }
}

/// The value of `;name=` in `params`, up to the next `;`, `,` or space. `None` unless the
/// parameter is written once and plainly: the parser takes the first of two, spaced or not
/// (`; tag=A;tag=B` is `A` to it; a first textual match would read `B`), and this must
/// read what the parser reads or nothing.
fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let bare = name.strip_prefix(b";")?.strip_suffix(b"=")?;
    let mut seen = 0;
    for (i, _) in params.iter().enumerate().filter(|(_, b)| **b == b';') {
        let rest = &params[i + 1..];
        let lead = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let Some(after) = rest
            .get(lead..)
            .filter(|r| r.len() >= bare.len() && r[..bare.len()].eq_ignore_ascii_case(bare))
        else {
            continue;
        };
        let after = &after[bare.len()..];
        // A token character goes on the name: another parameter (`;tagged=`).
        let token = |b: &u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(b);
        if after.first().is_some_and(token) {
            continue;
        }
        let gap = after.iter().take_while(|b| b.is_ascii_whitespace()).count();
        seen += 1;
        // Spaced, twice, or with no value (`;tag;tag=B`: the parser takes the first, none).
        if lead > 0 || gap > 0 || seen > 1 || after.get(gap) != Some(&b'=') {
            return None;
        }
    }
    let at = find(params, name)?;
    let rest = &params[at + name.len()..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b';' | b',' | b' ' | b'\t'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|v| !v.is_empty())
}

/// The identifiers of ours a datagram may carry, each as a plain reading of its head finds
/// it (`None` where it does not, or is not sure: a folded line, a header twice).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ids<'a> {
    /// The branch of the top Via's first hop.
    pub branch: Option<&'a [u8]>,
    pub to_tag: Option<&'a [u8]>,
    pub call_id: Option<&'a [u8]>,
}

/// Read [`Ids`] from a datagram's head.
pub fn ids(raw: &[u8]) -> Ids<'_> {
    let mut ids = Ids::default();
    let Some(head_end) = memchr::memmem::find(raw, b"\r\n\r\n") else {
        return ids;
    };
    let (mut vias, mut tos, mut call_ids) = (0, 0, 0);
    for line in raw[..head_end].split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Ids::default();
        }
        let Some((name, value)) = name_of(line) else {
            continue;
        };
        // A control character (a form feed the trim here takes off, the parser keeps): not
        // sure what the parser reads, so nothing of this line.
        let unsure = line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
        match name {
            Name::Via => {
                vias += 1;
                if vias == 1 {
                    let top = value.split(|&b| b == b',').next().unwrap_or(&[]);
                    ids.branch =
                        param(top, b";branch=").filter(|_| !top.contains(&b'"') && !unsure);
                }
            }
            Name::To => {
                tos += 1;
                // A quote past the display name (a quoted parameter may hold `;tag=`): where
                // its parameters begin is not ours to guess, as `peek` says.
                let after_name = value
                    .iter()
                    .position(|&b| b == b'<')
                    .map_or(value, |lt| &value[lt..]);
                ids.to_tag = header_params(value)
                    .and_then(|p| param(p, b";tag="))
                    .filter(|_| !after_name.contains(&b'"') && !unsure);
            }
            Name::CallId => {
                call_ids += 1;
                ids.call_id = Some(value).filter(|v| !v.is_empty() && !unsure);
            }
            _ => {}
        }
    }
    if tos > 1 {
        ids.to_tag = None;
    }
    if call_ids > 1 {
        ids.call_id = None;
    }
    ids
}

/// Look at a datagram.
pub fn peek(raw: &[u8]) -> Peek<'_> {
    // The head with the CRLF of its last line; a message without the blank line that ends
    // the head is not one to answer here.
    let Some(head_end) = memchr::memmem::find(raw, b"\r\n\r\n") else {
        return Peek::Other;
    };
    let mut lines = raw[..head_end + 2].split_inclusive(|&b| b == b'\n');
    let Some(start) = lines.next() else {
        return Peek::Other;
    };
    let is_invite = start.starts_with(b"INVITE ");
    let is_cancel = start.starts_with(b"CANCEL ");
    if !is_invite && !is_cancel && !start.starts_with(b"ACK ") {
        return Peek::Other;
    }
    let mut head = Head {
        top_via: &[],
        vias: [&[]; MAX_VIAS],
        n_vias: 0,
        from: &[],
        to: &[],
        call_id: &[],
        cseq: &[],
    };
    let mut to_value: &[u8] = &[];
    let mut cseq_value: &[u8] = &[];
    let mut via_value: &[u8] = &[];
    for line in lines {
        // Lines end in CRLF: a bare LF, a CR elsewhere, any control character or a folded
        // line means "not sure".
        let Some(line) = line.strip_suffix(b"\r\n") else {
            return Peek::Other;
        };
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            || line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Peek::Other;
        }
        let Some((name, value)) = name_of(line) else {
            return Peek::Other;
        };
        let slot = match name {
            Name::Via => {
                if head.n_vias == MAX_VIAS {
                    return Peek::Other;
                }
                if head.n_vias == 0 {
                    via_value = value;
                }
                head.vias[head.n_vias] = line;
                head.n_vias += 1;
                continue;
            }
            Name::From => &mut head.from,
            Name::To => {
                to_value = value;
                &mut head.to
            }
            Name::CallId => &mut head.call_id,
            Name::CSeq => {
                cseq_value = value;
                &mut head.cseq
            }
            Name::Route | Name::Other => continue,
        };
        if !slot.is_empty() {
            return Peek::Other;
        }
        *slot = line;
    }
    if head.n_vias == 0 || head.from.is_empty() || head.to.is_empty() || head.call_id.is_empty() {
        return Peek::Other;
    }
    // A quote after the name-addr's `<` (a quoted parameter value holding `>` or `tag`):
    // where the To's parameters begin is not ours to guess.
    let quoted = to_value
        .iter()
        .position(|&b| b == b'<')
        .is_some_and(|lt| to_value[lt..].contains(&b'"'));
    if quoted {
        return Peek::Other;
    }
    let Some(to_params) = header_params(to_value) else {
        return Peek::Other;
    };
    if !is_invite && !is_cancel {
        return match param(to_params, b";tag=") {
            Some(to_tag) => Peek::Ack { to_tag },
            None => Peek::Other,
        };
    }
    // Anything that may be a tag makes it "maybe in a dialog".
    if find(to_params, b"tag").is_some() {
        return Peek::Other;
    }
    let cseq_ok = cseq_value
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|f| !f.is_empty())
        .nth(1)
        .is_some_and(|m| m == if is_cancel { &b"CANCEL"[..] } else { b"INVITE" });
    // A Via value may hold several (comma-separated); only the first is ours to read. Its
    // branch only where no reading could find another: one `branch` in the hop, no quote
    // (a quoted value may hold `;branch=` or a comma), and RFC 3261's (a legacy INVITE is
    // keyed on more than its branch, and the cookie is case-sensitive, as the parser reads
    // it); else the parser's reading decides.
    let top = via_value.split(|&b| b == b',').next().unwrap_or(&[]);
    head.top_via = top.trim_ascii();
    let plain = !top.contains(&b'"')
        && memchr::memmem::find_iter(&top.to_ascii_lowercase(), b"branch").count() == 1;
    let branch =
        param(top, b";branch=").filter(|b| plain && b.len() > 7 && b.starts_with(b"z9hG4bK"));
    match (cseq_ok, branch) {
        (true, Some(branch)) if is_cancel => Peek::Cancel { head, branch },
        (true, Some(branch)) => Peek::NewInvite { head, branch },
        _ => Peek::Other,
    }
}

mod next_hop;
mod reply;
pub use next_hop::{next_hop_natted, next_hop_port_for, request_uri_port_for};
pub use reply::refuse;

#[cfg(test)]
mod tests;
