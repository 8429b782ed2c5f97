//! The top Via's branch of a response, read for the edge's check of every response.

use super::{Hdr, Response};

impl Response {
    /// Whether `ours` says yes to the branch of the topmost Via. Read from the raw
    /// header where it is written as we write it (`;branch=` in the first hop), without
    /// parsing it: the edge asks this of every response; parsed when written otherwise
    /// (a peer that spaces or capitalises what it should have copied).
    pub fn top_branch_is(&self, ours: impl Fn(&[u8]) -> bool) -> bool {
        let Some(via) = self.0.headers.get(&Hdr::VIA.0) else {
            return false;
        };
        let value = via.value();
        let first = value.split(|&b| b == b',').next().unwrap_or(&[]);
        if let Some(at) = memchr::memmem::find(first, b";branch=") {
            let rest = &first[at + b";branch=".len()..];
            let end = rest
                .iter()
                .position(|&b| matches!(b, b';' | b' ' | b'\t'))
                .unwrap_or(rest.len());
            return ours(&rest[..end]);
        }
        self.top_via()
            .and_then(|v| v.branch)
            .is_some_and(|b| ours(b.as_bytes()))
    }
}
