//! What a registration is made from: a profile's `[register]` policy, and the addresses and
//! URIs its REGISTERs carry.

use std::time::Duration;

use crate::auth::Credentials;
use crate::config::{PeerName, Profile};
use crate::sip::{Target, Transport};

/// `[register]` of a profile, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterPolicy {
    /// Expiry asked for.
    pub expires: Duration,
    /// User part of the address of record (`[register] user`), when not the `[auth]`
    /// username (a carrier whose authentication id is not the number registered).
    pub user: Option<String>,
    /// User part of the Contact we register.
    pub contact_user: String,
    /// Transport toward the registrar (the profile address's unless set).
    pub transport: Transport,
}

/// Everything a registration needs to build its REGISTERs.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterParams {
    pub peer: PeerName,
    /// Where REGISTERs go: the profile's address with the policy's transport.
    pub target: Target,
    /// Request-URI: `sip:DOMAIN`.
    pub registrar: String,
    /// Address of record, the From and To URI: `sip:USER@DOMAIN`.
    pub aor: String,
    /// The contact bound: `sip:CONTACT_USER@ADVERTISE:PORT`.
    pub contact: String,
    /// Via sent-by: `ADVERTISE:PORT`.
    pub sent_by: String,
    pub expires: Duration,
}

impl RegisterParams {
    /// The registration of `profile`. `advertise` is `[sip] advertise`; `local_port` the port
    /// of the gateway's listener for the policy's transport. The AOR user is the policy's
    /// `user`, else the `[auth]` username when there is one, else the contact user.
    pub fn for_profile(
        profile: &Profile,
        policy: &RegisterPolicy,
        creds: Option<&Credentials>,
        advertise: &str,
        local_port: u16,
    ) -> Self {
        let t = policy.transport;
        let tparam = transport_param(t);
        let host = if advertise.contains(':') && !advertise.starts_with('[') {
            format!("[{advertise}]")
        } else {
            advertise.to_string()
        };
        let user = (policy.user.as_deref())
            .or(creds.map(|c| c.username.as_str()))
            .unwrap_or(&policy.contact_user);
        RegisterParams {
            peer: profile.name.clone(),
            target: Target {
                transport: t,
                addr: profile.address.addr,
                conn: None,
                listener: None,
            },
            registrar: format!("sip:{}{tparam}", profile.domain),
            aor: format!("sip:{user}@{}", profile.domain),
            contact: format!("sip:{}@{host}:{local_port}{tparam}", policy.contact_user),
            sent_by: format!("{host}:{local_port}"),
            expires: policy.expires,
        }
    }

    /// Bind the contact at `addr` (the SIP front's), not at this instance's address.
    pub fn bind_at(&mut self, addr: std::net::SocketAddr, policy: &RegisterPolicy) {
        let tparam = transport_param(policy.transport);
        self.contact = format!("sip:{}@{addr}{tparam}", policy.contact_user);
    }

    /// Whether `other` is a binding of the same contact to the same address of record at
    /// the same registrar (only its expiry, its credentials or the peer's name differ: a
    /// profile renamed registers the same binding).
    pub fn same_binding(&self, other: &RegisterParams) -> bool {
        self.binding() == other.binding()
    }

    /// What [`RegisterParams::same_binding`] compares, to look bindings up by.
    pub fn binding(&self) -> (&str, &str, std::net::SocketAddr, Transport, &str) {
        let t = &self.target;
        (
            &self.aor,
            &self.contact,
            t.addr,
            t.transport,
            &self.registrar,
        )
    }

    /// Whether `other` binds the same contact to the same address of record, wherever its
    /// registrar (two registrars may share one location database): an `Expires: 0` of one
    /// removes what a REGISTER of the other bound, whichever arrives last.
    pub fn same_contact(&self, other: &RegisterParams) -> bool {
        (&self.aor, &self.contact) == (&other.aor, &other.contact)
    }
}

/// The contact's URI parameter for `t`.
fn transport_param(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    }
}
