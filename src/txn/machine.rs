//! The four RFC 3261 §17 transaction machines (with RFC 6026's Accepted states), written to
//! keep little: a transaction holds its parsed request only while it may still need it, and
//! what it retransmits as wire bytes. Most transactions spend most of their life absorbing
//! retransmissions (Timers D, I, J, K, L, M: up to 32 s after the call), and there they hold
//! a key, a target and a state.

use std::time::Duration;

use bytes::Bytes;

use super::ack::non_2xx_ack;
pub use super::timer::Timer;
use super::trying::trying_for;
use crate::sip::{Method, Request, Response};

mod giving_up;

/// T1, T2, T4.
#[derive(Debug, Clone, Copy)]
pub struct Consts {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

/// What a machine asks for; the layer adds the transaction id and target.
#[derive(Debug)]
pub enum Out {
    Send(Bytes),
    Set(Timer, Duration),
    Clear(Timer),
    Request(Request),
    Response(Response),
    Ack(Request),
    Timeout,
    TransportError,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Confirmed,
    Terminated,
}

/// A client transaction.
#[derive(Debug)]
pub struct Client {
    pub state: State,
    invite: bool,
    reliable: bool,
    /// An INVITE, parsed, until its final (a non-2xx's ACK is built from it); no other.
    request: Option<Box<Request>>,
    /// Its wire form, for retransmission; dropped once nothing will retransmit it.
    wire: Option<Bytes>,
    /// The ACK for a non-2xx final, resent for each retransmission of that final.
    ack: Option<Bytes>,
    interval: Duration,
    /// The request's CSeq number: a response with another is not its answer.
    pub seq: u32,
    /// An INVITE that carried no SDP (no body, or one without an SDP part: a SIP-I INVITE's
    /// ISUP alone): its 2xx then holds an offer, which the ACK must answer, known even when
    /// nothing else of the request is kept (RFC 3261 §13.2.2.4). Always false for other
    /// methods (their bodies are not looked at: every request we send comes this way).
    pub sdpless: bool,
    /// Sent once more over a new connection after the first was lost unanswered
    /// ([`Client::resend_on_new_connection`]).
    resent: bool,
}

/// A server transaction.
#[derive(Debug)]
pub struct Server {
    pub state: State,
    invite: bool,
    reliable: bool,
    /// The last response sent, resent when the request is retransmitted.
    last: Option<Bytes>,
    /// An INVITE's final To tag once `last` is let go (its 2xx is the user's to resend, an
    /// ACKed failure is not resent): a CANCEL crossing the answer gets its 200 with it
    /// (RFC 3261 §9.2).
    final_tag: Option<Box<str>>,
    /// An INVITE's 100 Trying, until it is sent or the user answers.
    trying: Option<Bytes>,
    interval: Duration,
    /// The request's [`Request::wire_size`]: a retransmission, the same request, is as long.
    request_size: usize,
}

impl Client {
    pub fn new(request: Request, reliable: bool, c: &Consts, out: &mut Vec<Out>) -> Client {
        let invite = request.method() == Method::Invite;
        let seq = request.seq();
        let sdpless = invite && {
            let ct = request.header(&crate::sip::Hdr::CONTENT_TYPE);
            !crate::sdp::carries_sdp(ct.as_deref(), request.body())
        };
        let wire = request.to_bytes();
        out.push(Out::Send(wire.clone()));
        if !reliable {
            out.push(Out::Set(if invite { Timer::A } else { Timer::E }, c.t1));
        }
        out.push(Out::Set(
            if invite { Timer::B } else { Timer::F },
            c.t1 * 64,
        ));
        Client {
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            invite,
            reliable,
            request: invite.then(|| Box::new(request)),
            wire: Some(wire),
            ack: None,
            interval: c.t1,
            seq,
            sdpless,
            resent: false,
        }
    }

    pub fn on_response(&mut self, resp: Response, c: &Consts, out: &mut Vec<Out>) {
        if self.invite {
            self.invite_response(resp, c, out)
        } else {
            self.non_invite_response(resp, c, out)
        }
    }

    /// Whether it still holds its request's wire form.
    #[cfg(test)]
    pub fn holds_wire(&self) -> bool {
        self.wire.is_some()
    }

    fn invite_response(&mut self, resp: Response, c: &Consts, out: &mut Vec<Out>) {
        match self.state {
            State::Calling | State::Proceeding => {
                if resp.is_provisional() {
                    if self.state == State::Calling {
                        // Timer B runs in Calling only (§17.1.1.2): a phone may ring for long.
                        out.push(Out::Clear(Timer::A));
                        out.push(Out::Clear(Timer::B));
                        // Nothing sends the INVITE again from here on: its bytes would be
                        // held for the whole ringing (minutes) for nothing. The parsed
                        // request stays: a failure's ACK is built from it.
                        self.wire = None;
                    }
                    self.state = State::Proceeding;
                    out.push(Out::Response(resp));
                    return;
                }
                out.push(Out::Clear(Timer::A));
                out.push(Out::Clear(Timer::B));
                self.wire = None;
                if resp.is_success() {
                    // The ACK for a 2xx belongs to the transaction user (§13.2.2.4).
                    self.state = State::Accepted;
                    self.request = None;
                    out.push(Out::Response(resp));
                    out.push(Out::Set(Timer::M, c.t1 * 64));
                } else {
                    if let Some(req) = self.request.take() {
                        match non_2xx_ack(&req, &resp) {
                            Ok(ack) => {
                                let wire = ack.to_bytes();
                                out.push(Out::Send(wire.clone()));
                                self.ack = Some(wire);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot build ACK for {}", resp.status())
                            }
                        }
                    }
                    self.state = State::Completed;
                    out.push(Out::Response(resp));
                    let d = if self.reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32).max(c.t1 * 64)
                    };
                    out.push(Out::Set(Timer::D, d));
                }
            }
            // A 2xx after our ACK of a failure is another fork's answer (a forking proxy
            // forwards every 2xx, RFC 3261 §16.7): the user must ACK and end that dialog,
            // so it goes up. A late provisional is nothing.
            State::Completed if resp.is_success() => out.push(Out::Response(resp)),
            State::Completed if resp.is_provisional() => {}
            // A retransmitted final gets the same ACK (§17.1.1.2); the user has seen it.
            State::Completed => {
                if let Some(ack) = &self.ack {
                    out.push(Out::Send(ack.clone()));
                }
            }
            // RFC 6026: each 2xx (a retransmission or another fork) goes to the user.
            State::Accepted if resp.is_success() => out.push(Out::Response(resp)),
            _ => {}
        }
    }

    fn non_invite_response(&mut self, resp: Response, c: &Consts, out: &mut Vec<Out>) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        if resp.is_provisional() {
            self.state = State::Proceeding;
            out.push(Out::Response(resp));
            return;
        }
        self.state = State::Completed;
        self.request = None;
        self.wire = None;
        out.push(Out::Clear(Timer::E));
        out.push(Out::Clear(Timer::F));
        out.push(Out::Response(resp));
        out.push(Out::Set(
            Timer::K,
            if self.reliable { Duration::ZERO } else { c.t4 },
        ));
    }

    pub fn on_timer(&mut self, t: Timer, c: &Consts, out: &mut Vec<Out>) {
        match (self.state, t) {
            (State::Calling, Timer::A) => {
                self.interval *= 2;
                if let Some(w) = &self.wire {
                    out.push(Out::Send(w.clone()));
                }
                out.push(Out::Set(Timer::A, self.interval));
            }
            (State::Trying | State::Proceeding, Timer::E) => {
                // Backing off to T2; once provisionals flow it is a keepalive at T2.
                self.interval = if self.state == State::Trying {
                    (self.interval * 2).min(c.t2)
                } else {
                    c.t2
                };
                if let Some(w) = &self.wire {
                    out.push(Out::Send(w.clone()));
                }
                out.push(Out::Set(Timer::E, self.interval));
            }
            (State::Calling, Timer::B) | (State::Trying | State::Proceeding, Timer::F) => {
                out.push(Out::Timeout);
                self.terminate(out);
            }
            // Armed by `abandon_later`: given up on, as its user asked.
            (State::Proceeding, Timer::B) => self.terminate(out),
            (State::Completed, Timer::D | Timer::K) | (State::Accepted, Timer::M) => {
                self.terminate(out)
            }
            _ => {}
        }
    }

    pub fn on_transport_error(&mut self, out: &mut Vec<Out>) {
        if self.state != State::Terminated {
            out.push(Out::TransportError);
            self.terminate(out);
        }
    }

    fn terminate(&mut self, out: &mut Vec<Out>) {
        self.state = State::Terminated;
        out.push(Out::Terminated);
    }
}

impl Server {
    /// The To tag of the last response sent (read back from its wire form: asked only for
    /// the rare ACK of an RFC 2543 peer).
    pub fn final_to_tag(&self) -> Option<String> {
        let Some(last) = self.last.as_ref() else {
            return self.final_tag.as_deref().map(str::to_owned);
        };
        match crate::sip::parse_datagram(last.clone(), last.len()) {
            Ok(crate::sip::Message::Response(r)) => r.to_tag(),
            _ => None,
        }
    }

    pub fn new(request: Request, reliable: bool, c: &Consts, out: &mut Vec<Out>) -> Server {
        let invite = request.method() == Method::Invite;
        // §17.2.1: an INVITE gets 100 Trying unless the user answers first. The transaction
        // is its only sender: built now, sent by `flush_trying` once the user has seen the
        // request and not answered (a refusal goes out alone; a call gets 100 at once).
        let trying = if invite {
            trying_for(&request).map(|t| t.to_bytes()).ok()
        } else {
            None
        };
        let request_size = request.wire_size();
        out.push(Out::Request(request));
        Server {
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            invite,
            reliable,
            last: None,
            final_tag: None,
            trying,
            interval: c.t1,
            request_size,
        }
    }

    /// Send the 100 Trying built at creation, unless the user has answered meanwhile.
    pub fn flush_trying(&mut self, out: &mut Vec<Out>) {
        if let Some(wire) = self.trying.take()
            && self.state == State::Proceeding
            && self.last.is_none()
        {
            out.push(Out::Send(wire.clone()));
            self.last = Some(wire);
        }
    }

    /// The bytes it keeps for sending again: what a table of them holds.
    pub fn retained(&self) -> usize {
        self.last.as_ref().map_or(0, Bytes::len) + self.trying.as_ref().map_or(0, Bytes::len)
    }

    /// How long a response a retransmission of `size` bytes may draw: any, when it is as
    /// long as the request (it is the request again); else, a copy of its top Via, CSeq and
    /// method that anyone who saw the branch can send in a peer's name, at most twice its
    /// size and 512 bytes, so a short datagram draws no long answer toward that peer.
    fn may_draw(&self, size: usize) -> usize {
        if size >= self.request_size {
            usize::MAX
        } else {
            size.saturating_mul(2).saturating_add(512)
        }
    }

    /// A retransmission of the request, or (INVITE) an ACK, from the IP our responses go to
    /// (`TxnLayer::receive` passes on nothing from elsewhere). Our last response is sent
    /// again when the retransmission may draw it
    /// ([`Server::may_draw`]); an INVITE's longer provisional gives way to a 100 Trying
    /// built from the retransmission, which stops the caller's retransmissions all the same
    /// (RFC 3261 §17.1.1.2).
    pub fn on_request(&mut self, req: &Request, c: &Consts, out: &mut Vec<Out>) {
        if req.method() == Method::Ack {
            match self.state {
                State::Completed => {
                    self.state = State::Confirmed;
                    self.final_tag = self.final_to_tag().map(String::into_boxed_str);
                    self.last = None;
                    out.push(Out::Clear(Timer::G));
                    out.push(Out::Clear(Timer::H));
                    out.push(Out::Set(
                        Timer::I,
                        if self.reliable { Duration::ZERO } else { c.t4 },
                    ));
                }
                // RFC 6026: the ACK for a 2xx is the user's.
                State::Accepted => out.push(Out::Ack(req.clone())),
                _ => {}
            }
            return;
        }
        let Some(last) = self.last.as_ref() else {
            return;
        };
        if !matches!(self.state, State::Proceeding | State::Completed) {
            return;
        }
        if last.len() <= self.may_draw(req.wire_size()) {
            out.push(Out::Send(last.clone()));
        } else if self.invite
            && self.state == State::Proceeding
            && let Ok(trying) = trying_for(req)
        {
            out.push(Out::Send(trying.to_bytes()));
        }
    }

    /// The transaction user answers.
    pub fn on_response(&mut self, resp: Response, c: &Consts, out: &mut Vec<Out>) {
        let wire = resp.to_bytes();
        match self.state {
            State::Trying | State::Proceeding => {
                self.trying = None;
                out.push(Out::Send(wire.clone()));
                if resp.is_provisional() {
                    self.state = State::Proceeding;
                    self.last = Some(wire);
                    return;
                }
                if self.invite && resp.is_success() {
                    // Retransmitted INVITEs are absorbed; the user retransmits its 2xx.
                    self.state = State::Accepted;
                    self.last = None;
                    self.final_tag = resp.to_tag().map(String::into_boxed_str);
                    out.push(Out::Set(Timer::L, c.t1 * 64));
                } else if self.invite {
                    self.state = State::Completed;
                    // A failure that is the first answer (a refusal, before any 100) is
                    // sent once per INVITE received, as a stateless UAS would (RFC 3261
                    // §8.2.7): its client is still in Calling and retransmits the INVITE
                    // until it hears, and each retransmission draws it again. Timer G is
                    // for a client that heard a provisional and stopped retransmitting; on a
                    // refusal it would only send 11 answers toward a forged source.
                    let heard_before = self.last.replace(wire).is_some();
                    if !self.reliable && heard_before {
                        self.interval = c.t1;
                        out.push(Out::Set(Timer::G, self.interval));
                    }
                    out.push(Out::Set(Timer::H, c.t1 * 64));
                } else {
                    self.state = State::Completed;
                    self.last = Some(wire);
                    out.push(Out::Set(
                        Timer::J,
                        if self.reliable {
                            Duration::ZERO
                        } else {
                            c.t1 * 64
                        },
                    ));
                }
            }
            // The user retransmitting its own 2xx until the ACK.
            State::Accepted if resp.is_success() => out.push(Out::Send(wire)),
            _ => {}
        }
    }

    pub fn on_timer(&mut self, t: Timer, c: &Consts, out: &mut Vec<Out>) {
        match (self.state, t) {
            (State::Completed, Timer::G) => {
                self.interval = (self.interval * 2).min(c.t2);
                if let Some(last) = &self.last {
                    out.push(Out::Send(last.clone()));
                }
                out.push(Out::Set(Timer::G, self.interval));
            }
            (State::Completed, Timer::H) => {
                self.state = State::Terminated;
                out.push(Out::Timeout);
                out.push(Out::Terminated);
            }
            (State::Completed, Timer::J)
            | (State::Confirmed, Timer::I)
            | (State::Accepted, Timer::L) => {
                self.state = State::Terminated;
                out.push(Out::Terminated);
            }
            _ => {}
        }
    }

    pub fn on_transport_error(&mut self, out: &mut Vec<Out>) {
        if self.state != State::Terminated {
            self.state = State::Terminated;
            out.push(Out::TransportError);
            out.push(Out::Terminated);
        }
    }

    pub fn pending(&self) -> bool {
        matches!(self.state, State::Trying | State::Proceeding)
    }

    /// The user gives up on a request it never answered (its handling failed): the
    /// transaction ends, and the request sent again starts a new one, answered afresh.
    pub fn abandon(&mut self, out: &mut Vec<Out>) {
        if self.pending() {
            self.state = State::Terminated;
            out.push(Out::Terminated);
        }
    }
}
