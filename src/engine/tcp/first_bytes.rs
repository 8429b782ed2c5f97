//! A stranger's message judged by its first bytes over TCP, as its datagram would be
//! (`Inbox::hears_stranger`): a stream may bring them a few at a time (`SIP/2.`, then the
//! rest), after keep-alive CRLFs. Before, the first read was judged alone: a request or
//! response whose first segment was short was taken for neither, and its connection
//! closed unanswered.

/// What a look needs at most: the longest method the look allows, and its space.
const LOOK: usize = 17;

/// The start of the message being judged, gathered across reads until it can be.
#[derive(Debug, Default)]
pub(super) struct FirstBytes {
    head: Vec<u8>,
}

/// What a read tells of the message being judged.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Look<'a> {
    /// Not enough yet (or only keep-alive CRLFs): read on.
    More,
    /// Judge these bytes: the message's start, the read's rest after it.
    Judge(std::borrow::Cow<'a, [u8]>),
}

impl FirstBytes {
    /// Whether a message is being gathered (its later reads still come here, though the
    /// framer holds its bytes).
    pub(super) fn gathering(&self) -> bool {
        !self.head.is_empty()
    }

    /// The read `data`, at a message's start or while one is gathered.
    pub(super) fn look<'a>(&mut self, data: &'a [u8]) -> Look<'a> {
        let data = if self.head.is_empty() {
            let crlf = data.iter().take_while(|b| matches!(b, b'\r' | b'\n'));
            &data[crlf.count()..]
        } else {
            data
        };
        if data.is_empty() {
            return Look::More;
        }
        let judged = |head: &[u8]| head.len() >= LOOK || head.contains(&b' ');
        if self.head.is_empty() && judged(&data[..data.len().min(LOOK)]) {
            return Look::Judge(std::borrow::Cow::Borrowed(data));
        }
        let room = LOOK.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        if !judged(&self.head) {
            return Look::More;
        }
        let mut all = std::mem::take(&mut self.head);
        all.extend_from_slice(&data[data.len().min(room)..]);
        Look::Judge(std::borrow::Cow::Owned(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(f: &mut FirstBytes, data: &[u8]) -> Option<Vec<u8>> {
        match f.look(data) {
            Look::More => None,
            Look::Judge(b) => Some(b.into_owned()),
        }
    }

    /// Whole in one read: judged as read (no copy); split, once its start is in; CRLFs
    /// before it skipped.
    #[test]
    fn a_message_is_judged_once_its_start_is_in() {
        let mut f = FirstBytes::default();
        let m = b"SIP/2.0 200 OK\r\nVia: x\r\n";
        assert!(matches!(
            f.look(m),
            Look::Judge(std::borrow::Cow::Borrowed(_))
        ));
        assert!(!f.gathering());
        assert_eq!(judged(&mut f, b"\r\n\r\n"), None);
        assert!(!f.gathering(), "pings gather nothing");
        assert_eq!(judged(&mut f, b"\r\nSIP/2."), None);
        assert!(f.gathering());
        assert_eq!(
            judged(&mut f, b"0 486 Busy\r\n").as_deref(),
            Some(&b"SIP/2.0 486 Busy\r\n"[..])
        );
        assert!(!f.gathering());
        assert_eq!(judged(&mut f, b"INVITE"), None);
        assert_eq!(
            judged(&mut f, b" sip:x").as_deref(),
            Some(&b"INVITE sip:x"[..])
        );
        // Seventeen bytes without a space: judged (and refused by the look) then.
        assert_eq!(judged(&mut f, b"ABCDEFGHIJ"), None);
        assert_eq!(
            judged(&mut f, b"KLMNOPQRST").as_deref(),
            Some(&b"ABCDEFGHIJKLMNOPQRST"[..])
        );
    }
}
