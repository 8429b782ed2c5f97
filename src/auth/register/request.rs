//! What a REGISTER of this registration looks like (its headers, its Via, and the
//! credentials it carries up front), and its sending.

use std::time::Instant;

use rand::Rng;
use rand::rngs::StdRng;

use super::{MAX_OUTBOX, Op, Registration, State, TRANSACTION_TIMEOUT, Transmit, later};
use crate::auth::AuthFailure;
use crate::sip::{BRANCH_COOKIE, Hdr, Method, NewRequest, Request};

impl Registration {
    pub(super) fn send(&mut self, now: Instant, op: Op) {
        if op == Op::Unregister {
            self.removal.tries = self.removal.tries.saturating_add(1);
        }
        match self.build(op) {
            Ok(req) => self.put_in_flight(now, op, req),
            // Only a contact or URI the config check let through could fail here.
            Err(e) => self.fail(now, op, format!("cannot build REGISTER: {e}"), None),
        }
    }

    pub(super) fn put_in_flight(&mut self, now: Instant, op: Op, req: Request) {
        if self.outbox.len() >= MAX_OUTBOX {
            self.outbox.pop_front();
        }
        self.outbox.push_back(Transmit {
            to: self.params.target,
            request: req.clone(),
        });
        self.state = State::InFlight {
            sent: Box::new(req),
            op,
            deadline: later(now, TRANSACTION_TIMEOUT),
        };
    }

    pub(super) fn build(&mut self, op: Op) -> Result<Request, AuthFailure> {
        self.cseq = self.cseq.wrapping_add(1);
        let via = self.via();
        let p = &self.params;
        let mut r = NewRequest {
            method: Method::Register,
            uri: &p.registrar,
            via: &via,
            max_forwards: 70,
            routes: &[],
            from: &format!("<{}>;tag={}", p.aor, self.from_tag),
            to: &format!("<{}>", p.aor),
            call_id: &self.call_id,
            cseq: self.cseq,
        }
        .build()?;
        r.push_header(&Hdr::CONTACT, format!("<{}>", p.contact))?;
        let secs = match op {
            Op::Register => self.expires.as_secs(),
            Op::Unregister => 0,
        };
        r.push_header(&Hdr::named("Expires"), secs.to_string())?;
        r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
        // Credentials up front once the registrar has challenged us, so refreshes usually
        // need one round trip.
        self.auth.authorize(&mut r, &mut self.rng)?;
        Ok(r)
    }

    pub(super) fn via(&mut self) -> String {
        let branch = match &self.branch_key {
            Some(key) => key.branch(&hex(&mut self.rng, crate::sip::BRANCH_RANDOM)),
            None => format!("{BRANCH_COOKIE}{}", hex(&mut self.rng, 16)),
        };
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.params.target.transport.via_token(),
            self.params.sent_by,
        )
    }
}

pub(super) fn hex(rng: &mut StdRng, n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..n)
        .map(|_| {
            char::from(
                HEX.get(rng.random_range(0..16usize))
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect()
}
