//! A request built from scratch (not relayed): the headers RFC 3261 §8.1.1 requires of
//! every request, written in one order by one function, whoever builds it (a dialog's
//! requests, CANCEL, the ACK of a non-2xx, a REGISTER, the INVITE toward a callee, …).

use super::{Hdr, Method, Request, SipError};

/// The §8.1.1 headers of a new request. `build` writes them as Via, Max-Forwards, Route
/// (each entry, in order), From, To, Call-ID, CSeq; the builder adds what its request also
/// needs (Contact, Allow, …) and the Content-Length.
pub struct NewRequest<'a> {
    pub method: Method,
    pub uri: &'a str,
    pub via: &'a str,
    pub max_forwards: u32,
    pub routes: &'a [&'a str],
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
}

impl NewRequest<'_> {
    pub fn build(self) -> Result<Request, SipError> {
        let mut r = Request::new(self.method.clone(), self.uri)?;
        r.push_header(&Hdr::VIA, self.via.to_string())?;
        r.push_header(&Hdr::MAX_FORWARDS, self.max_forwards.to_string())?;
        for route in self.routes {
            r.push_header(&Hdr::ROUTE, route.to_string())?;
        }
        r.push_header(&Hdr::FROM, self.from.to_string())?;
        r.push_header(&Hdr::TO, self.to.to_string())?;
        r.push_header(&Hdr::CALL_ID, self.call_id.to_string())?;
        r.push_header(&Hdr::CSEQ, format!("{} {}", self.cseq, self.method))?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_required_headers_come_in_one_order() {
        let r = NewRequest {
            method: Method::Bye,
            uri: "sip:b@192.0.2.1",
            via: "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKx",
            max_forwards: 70,
            routes: &["<sip:p1;lr>", "<sip:p2;lr>"],
            from: "<sip:a@192.0.2.9>;tag=1",
            to: "<sip:b@192.0.2.1>;tag=2",
            call_id: "c1",
            cseq: 7,
        }
        .build()
        .unwrap();
        let wire =
            String::from_utf8(super::super::Message::Request(r).to_bytes().to_vec()).unwrap();
        let names: Vec<&str> = wire
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n))
            .collect();
        assert!(
            wire.starts_with("BYE sip:b@192.0.2.1 SIP/2.0\r\n"),
            "{wire}"
        );
        assert_eq!(
            names,
            [
                "Via",
                "Max-Forwards",
                "Route",
                "Route",
                "From",
                "To",
                "Call-ID",
                "CSeq"
            ],
            "{wire}"
        );
        assert!(wire.contains("\r\nCSeq: 7 BYE\r\n"), "{wire}");
    }
}
