//! Carrying out what the core (and the call-back service) asked for: SIP to send, CDRs to
//! write, media to set up, events to count.

use std::time::Instant;

use super::Shell;
use crate::call::{CoreEvent, Input, Output, Stage};
use crate::ops::metrics;
use crate::sip::Transport;

impl Shell {
    /// Carry out what the core and the call-back service asked for, until neither asks
    /// anything more (each may give the other work).
    pub(super) fn perform(&mut self, now: Instant) {
        loop {
            self.perform_core(now);
            let Some(cb) = self.callback.as_mut() else {
                return;
            };
            let commands = cb.flush();
            if commands.is_empty() {
                return;
            }
            for c in commands {
                self.core.handle_input(now, Input::Callback(c));
            }
        }
    }

    /// Carry out what the core asked for.
    fn perform_core(&mut self, now: Instant) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit { target, wire, txn } => {
                    self.sip.sent(&wire);
                    if !wire.starts_with(b"SIP/2.0 ") {
                        self.inbox.asked(target.addr.ip(), now);
                    }
                    match target.transport {
                        Transport::Udp => self.udp.send(target, wire),
                        Transport::Tcp => {
                            if let Some(failed) = self.tcp.send(target, wire, txn) {
                                self.core.handle_input(now, Input::SendFailed(failed));
                            }
                        }
                    }
                }
                Output::Cdr(rec, recorded) => {
                    metrics::call_ended(
                        &rec.ingress_peer,
                        rec.egress_peer.as_deref(),
                        rec.call_tag.as_str(),
                        rec.callback_id.is_some(),
                        rec.cause,
                    );
                    self.write_cdr(rec, recorded, now);
                }
                Output::Media(m) => self.media.apply(m),
                Output::Event(CoreEvent::PrackFailure { peer, what }) => {
                    metrics::prack_failure(&peer.0, &what)
                }
                Output::Event(CoreEvent::Refused { why }) => {
                    // Counted for the log where the core refused: what the shell hands it
                    // as overloaded may be a retransmission or a stranger's, served as ever.
                    if why == "overload" {
                        self.inbox.tally.count_refused();
                    }
                    metrics::refused(why)
                }
                Output::Event(CoreEvent::Fault { place }) => metrics::fault(place.as_str()),
                Output::Event(CoreEvent::LateAnswer { peer }) => metrics::late_answer(&peer.0),
                Output::Event(CoreEvent::RefusalUnrecorded { peer, tag, cause }) => {
                    metrics::refusal_unrecorded(&peer.0);
                    metrics::call_ended(&peer.0, None, tag.as_str(), false, cause);
                }
                Output::Event(CoreEvent::LimitRefused { peer, reason }) => {
                    metrics::limit_refused(&peer.0, reason)
                }
                Output::Event(CoreEvent::Progress {
                    peer,
                    direction,
                    stage,
                    after,
                }) => {
                    let stage = match stage {
                        Stage::Offered => "offered",
                        Stage::Ringing => "ringing",
                        Stage::Answered => "answered",
                    };
                    metrics::progress(&peer.0, direction.as_str(), stage, after)
                }
                Output::Callback(report) => {
                    if let Some(cb) = self.callback.as_mut() {
                        cb.report(now, report);
                    }
                }
            }
        }
    }
}
