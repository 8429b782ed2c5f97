//! What the service sends back: answers to application servers, counted by verb and
//! result, held to a rate when anyone may send, signed when keys are set, and bounded in
//! number waiting to go out; and what it drops, counted by reason.

use std::net::SocketAddr;

use super::super::metrics;
use super::super::protocol::Outbound;
use super::super::signature::{self, Signer};
use super::{MAX_QUEUED, Output, Service};

impl Service {
    pub(super) fn answer(&mut self, to: SocketAddr, verb: &'static str, msg: Outbound) {
        // Not with keys: a signing AS's answers would share the cap with anyone replaying a
        // capture of its datagrams (README: what a capture can still be used for).
        let open = self.cfg.callback.let_in_widely(to.ip()) && self.cfg.callback.keys.is_none();
        if open && self.open_answers.check().is_err() {
            self.drop_datagram("answer_rate");
            return;
        }
        self.answer_placed(to, verb, msg);
    }

    /// [`Service::answer`] to a REQUEST that placed a call: never held back (`rate` holds
    /// those).
    pub(super) fn answer_placed(&mut self, to: SocketAddr, verb: &'static str, msg: Outbound) {
        let result = match &msg {
            Outbound::Error { reason, .. } => reason,
            _ => "ok",
        };
        *self.stats.answered.entry((verb, result)).or_default() += 1;
        ::metrics::counter!(metrics::REQUESTS, "verb" => verb, "result" => result).increment(1);
        self.transmit(to, msg.encode(), self.reply_key);
    }

    /// Send `bytes` to `to`, signed (when keys are set) with key `key`.
    pub(super) fn transmit(
        &mut self,
        to: SocketAddr,
        bytes: Vec<u8>,
        key: Option<signature::KeyRef>,
    ) {
        let bytes = match &self.cfg.callback.keys {
            Some(keys) => signature::sign_with(&bytes, Signer::Gateway, (keys, key), self.wall_s()),
            None => bytes,
        };
        if self.queued >= MAX_QUEUED {
            self.drop_datagram("send_queue_full");
            return;
        }
        self.queued += 1;
        self.out.push_back(Output::Transmit { to, bytes });
    }

    pub(super) fn drop_datagram(&mut self, reason: &'static str) {
        *self.stats.dropped.entry(reason).or_default() += 1;
        ::metrics::counter!(metrics::DROPPED, "reason" => reason).increment(1);
    }

    pub(super) fn count_response(&mut self, outcome: &'static str) {
        *self.stats.responses.entry(outcome).or_default() += 1;
        ::metrics::counter!(metrics::RESPONSES, "outcome" => outcome).increment(1);
    }
}
