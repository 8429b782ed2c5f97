//! Session timers (RFC 4028), one leg at a time. The gateway is the UAS toward the caller
//! and the UAC toward the callee, so it negotiates each leg on its own, under that peer's
//! `[session_timer]`: the interval, who refreshes, and what our messages on that leg say.
//! RFC 4028's decision tables are sipx's (`sip::session`); this module adds the profile's
//! policy to them and writes the headers.

use std::time::Duration;

use crate::sip::session::{self, Answer, Refresher, Session, SessionExpires};
use crate::sip::{Hdr, Request, Response};

/// `[session_timer] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// No session timer on this leg: `timer` is not in our `Supported`, the peer's
    /// `Session-Expires` is ignored, and a peer that requires the extension gets 420.
    Off,
    /// Run a timer when the peer asks for one (its INVITE, or its 2xx to ours).
    Accept,
    /// Always run one: asked for in our INVITE, imposed in our 2xx. A peer that does not know
    /// the extension is refreshed by the gateway (a re-INVITE or UPDATE it must answer).
    Require,
}

/// A profile's `[session_timer]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerPolicy {
    pub mode: TimerMode,
    /// `expires_s`: the interval we ask for, and the longest we accept.
    pub expires: Duration,
    /// `min_se_s`: the shortest interval we accept (never below RFC 4028's 90 s).
    pub min_se: Duration,
}

impl Default for SessionTimerPolicy {
    fn default() -> Self {
        SessionTimerPolicy {
            mode: TimerMode::Accept,
            expires: session::DEFAULT_INTERVAL,
            min_se: session::ABSOLUTE_MIN_INTERVAL,
        }
    }
}

/// How a leg's request (initial INVITE, re-INVITE, UPDATE) from its peer is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTerms {
    /// No timer on this leg (a 2xx ends one that ran: RFC 4028 §7.2).
    NoTimer,
    /// A timer on these terms; `announce` is what our 2xx says about it (None: the peer does
    /// not know the extension, and the gateway refreshes it unasked).
    Timer {
        session: Session,
        announce: Option<Announce>,
    },
    /// 422 Session Interval Too Small with this `Min-SE`.
    TooBrief(Duration),
    /// The request's `Session-Expires` cannot be read: 400.
    Malformed,
}

/// The `Session-Expires` (and `Require: timer`) of our 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    pub interval: Duration,
    pub refresher: Refresher,
    pub require: bool,
}

impl SessionTimerPolicy {
    /// A policy that runs no timer.
    pub fn off() -> Self {
        SessionTimerPolicy {
            mode: TimerMode::Off,
            ..Default::default()
        }
    }

    /// This policy for a leg that runs the timer `current`: an interval the gateway took
    /// from the peer's 2xx below `min_se_s` (it sent no Min-SE to stop it, `as_uac`) is the
    /// leg's floor from then on, or the peer's refreshes at the interval agreed would get
    /// 422, and our own requests would ask for less than the Min-SE they state.
    pub fn agreed(self, current: Option<Session>) -> Self {
        let min_se = match current {
            Some(s) => self
                .min_se
                .min(s.interval.max(session::ABSOLUTE_MIN_INTERVAL)),
            None => self.min_se,
        };
        SessionTimerPolicy { min_se, ..self }
    }

    /// Whether `timer` is in our `Supported` on this leg.
    pub fn supported(&self) -> bool {
        self.mode != TimerMode::Off
    }

    /// The gateway as UAS: the terms for `req` from this leg's peer (RFC 4028 §9).
    pub fn as_uas(&self, req: &Request) -> UasTerms {
        self.as_uas_in(req, None)
    }

    /// [`SessionTimerPolicy::as_uas`] for a request within a dialog whose leg runs
    /// `current` (a refresh, a re-INVITE, an UPDATE).
    pub fn as_uas_in(&self, req: &Request, current: Option<Session>) -> UasTerms {
        if self.mode == TimerMode::Off {
            return UasTerms::NoTimer;
        }
        let requested = match req.session_expires() {
            Some(Ok(se)) => Some(se),
            Some(Err(_)) => return UasTerms::Malformed,
            None => None,
        };
        let peer_supports = req.header_has_token(&Hdr::SUPPORTED, session::OPTION_TAG)
            || req.header_has_token(&Hdr::REQUIRE, session::OPTION_TAG);
        // (A number past 2^32 - 1 seconds is taken as that, as RFC 3261 §20.19 has it for
        // `Expires`: 136 years, a timer no clock here arms.)
        let peer_min = req
            .min_se()
            .map(|m| m.min(Duration::from_secs(u32::MAX.into())));
        // Nothing asked, nothing run: the peer's minimum, whatever it is, binds no timer
        // (RFC 4028 §9).
        if requested.is_none() && self.mode == TimerMode::Accept {
            return UasTerms::NoTimer;
        }
        match session::answer(peer_supports, requested, peer_min, self.min_se) {
            // A 422 only to a peer that knows the extension (RFC 4028 §9; a proxy may have
            // put Session-Expires on a UA that cannot act on a 422, §8): another takes our
            // minimum, the gateway refreshing (it cannot), as RFC 4028's errata 1687 has it.
            Answer::TooBrief(min) if !peer_supports => UasTerms::Timer {
                session: Session {
                    interval: min,
                    we_refresh: true,
                },
                announce: Some(Announce {
                    interval: min,
                    refresher: Refresher::Uas,
                    require: false,
                }),
            },
            Answer::TooBrief(min) => UasTerms::TooBrief(min),
            // The peer neither asked nor knows the extension: under `require` the gateway
            // refreshes it anyway, without telling it (it could not read the header).
            Answer::None => UasTerms::Timer {
                session: Session {
                    interval: self.interval(peer_min),
                    we_refresh: true,
                },
                announce: None,
            },
            Answer::Accept(acc) => {
                // We may shorten what was asked (never below either side's minimum), and ask
                // for our own interval when the peer left it to us.
                let interval = match requested {
                    Some(r) => r
                        .interval
                        .min(self.interval(peer_min))
                        .max(self.floor(peer_min)),
                    None => self.interval(peer_min),
                }
                // Never below the peer's minimum (§9), however long: a `Min-SE` over a day
                // is odd, not malformed (RFC 4028 §5 bounds it only from below); refused
                // with 400 before, which cost the call or, mid-call, its refresh. (The
                // deadline is added to the clock checked: one past any clock runs none.)
                .min(MAX_INTERVAL.max(peer_min.unwrap_or_default()));
                // A peer that does not say it knows the extension refreshes nothing,
                // whatever refresher a proxy on the way wrote (RFC 4028 §9, Table 2: only
                // `uas` then), and is not told to require what it never named (RFC 3261
                // §20.32). Within the dialog, such a request keeps who refreshes: the
                // gateway when it did (a proxy writes `refresher=uac` on each request of a
                // caller that never knew the extension), the peer when it set that up
                // naming the extension (a refresh that left `Supported` out).
                let (refresher, require) = match (peer_supports, current) {
                    (true, _) => (acc.refresher, acc.require),
                    (false, Some(s)) if !s.we_refresh => (Refresher::Uac, false),
                    (false, _) => (Refresher::Uas, false),
                };
                UasTerms::Timer {
                    session: Session {
                        interval,
                        we_refresh: refresher == Refresher::Uas,
                    },
                    announce: Some(Announce {
                        interval,
                        refresher,
                        require,
                    }),
                }
            }
        }
    }

    /// The gateway as UAC: the `Session-Expires` interval our request on this leg asks for,
    /// given the leg's current timer.
    pub fn asked(&self, current: Option<Session>) -> Option<Duration> {
        match (self.mode, current) {
            (TimerMode::Off, _) => None,
            (_, Some(s)) => Some(s.interval),
            (TimerMode::Require, None) => Some(self.expires),
            (TimerMode::Accept, None) => None,
        }
    }

    /// Headers of our request on this leg (besides `Supported`): `Session-Expires` with the
    /// leg's refresher when a timer runs or is wanted, and our `Min-SE`.
    pub fn request_headers(&self, current: Option<Session>) -> Vec<(Hdr, String)> {
        let Some(interval) = self.asked(current) else {
            return Vec::new();
        };
        // In our request we are the UAC: `uac` names us.
        let refresher = current.map(|s| {
            if s.we_refresh {
                Refresher::Uac
            } else {
                Refresher::Uas
            }
        });
        let se = SessionExpires {
            interval,
            refresher,
        };
        vec![
            (Hdr::SESSION_EXPIRES, se.to_string()),
            (Hdr::MIN_SE, self.min_se.as_secs().to_string()),
        ]
    }

    /// The gateway as UAC: the leg's timer after the 2xx `resp` to our request that asked
    /// for `asked` (RFC 4028 §7.2). The peer's interval is kept as agreed when shorter (sipx
    /// floors it at 90 s; refreshing later than agreed would let the peer hang up). One
    /// longer than we asked for (§9 forbids a UAS to raise it), or than the profile's
    /// `expires_s` when we asked for none, is not taken: the gateway refreshes at that
    /// limit, which a peer expecting fewer refreshes takes all the same. Before, a
    /// callee's `86400;refresher=uas` had a dead callee's call billed for a day.
    pub fn as_uac(&self, resp: &Response, asked: Option<Duration>) -> Option<Session> {
        if self.mode == TimerMode::Off {
            return None;
        }
        let agreed = resp.session_expires().and_then(Result::ok);
        // Without an interval of ours (`accept` mode), the longest this profile takes.
        let limit = asked
            .unwrap_or(self.expires)
            .clamp(session::ABSOLUTE_MIN_INTERVAL, MAX_INTERVAL);
        session::adopt(agreed, asked).map(|s| match s.interval > limit {
            true => Session {
                interval: limit,
                we_refresh: true,
            },
            false => s,
        })
    }

    /// A 422 to our request that asked for `asked`: the interval to ask for instead, when the
    /// peer's `Min-SE` is one we can live with (RFC 4028 §7.4 retries once with it), and never
    /// under 90 s (§5: no interval or Min-SE below it may be sent, whatever a peer asks).
    pub fn after_422(&self, resp: &Response, asked: Option<Duration>) -> Option<Duration> {
        if self.mode == TimerMode::Off {
            return None;
        }
        let min = resp.min_se()?.max(session::ABSOLUTE_MIN_INTERVAL);
        (min > asked.unwrap_or(Duration::ZERO) && min <= MAX_INTERVAL).then_some(min)
    }

    fn floor(&self, peer_min: Option<Duration>) -> Duration {
        self.min_se
            .max(peer_min.unwrap_or(Duration::ZERO))
            .max(session::ABSOLUTE_MIN_INTERVAL)
    }

    fn interval(&self, peer_min: Option<Duration>) -> Duration {
        self.expires.max(self.floor(peer_min))
    }
}

/// The longest interval a peer may make us ask for in a 422 retry (a day): beyond it a
/// session timer no longer detects anything.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// The headers of our 2xx that tell the peer about the leg's timer.
pub fn response_headers(terms: &UasTerms) -> Vec<(Hdr, String)> {
    let UasTerms::Timer {
        announce: Some(a), ..
    } = terms
    else {
        return Vec::new();
    };
    let se = SessionExpires {
        interval: a.interval,
        refresher: Some(a.refresher),
    };
    let mut out = vec![(Hdr::SESSION_EXPIRES, se.to_string())];
    if a.require {
        out.push((Hdr::REQUIRE, session::OPTION_TAG.to_string()));
    }
    out
}

/// When the leg's timer acts after a refresh: the refresher refreshes at half the interval;
/// the other side gives up shortly before it ends (RFC 4028 §10).
pub fn refresh_due(s: Session) -> Duration {
    s.act_after()
}

/// How long after a refresh the leg's timer finds the leg gone at the latest: at our next
/// refresh (failing) when we refresh, else when the peer's is missed.
pub fn finds_loss_within(s: Session) -> Duration {
    if s.we_refresh {
        refresh_due(s)
    } else {
        expiry_due(s)
    }
}

/// When a leg whose refreshes stopped is released: for the side that waits, `act_after`;
/// for the refresher, the whole interval (its refreshes failed or went unanswered).
pub fn expiry_due(s: Session) -> Duration {
    if s.we_refresh {
        s.interval
    } else {
        s.act_after()
    }
}

#[cfg(test)]
mod tests;
