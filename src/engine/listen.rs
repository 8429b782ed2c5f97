//! Binding the gateway's listeners at start-up: `[sip] listen` (each UDP socket with its
//! reader, each TCP listener with its acceptor) and `[metrics] listen`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::UdpSocket;

use super::{bind, inbox, tcp, udp};
use crate::config::Config;
use crate::ops::metrics;
use crate::sip::Transport;

/// Bind `[sip] listen` and start reading: the UDP sockets, in order, for sending.
pub(super) fn sip(
    cfg: &Arc<Config>,
    inbox: &inbox::Inbox,
    tcp_limits: tcp::Limits,
    tcp_slots: &tcp::Slots,
    conn_ids: &tcp::ConnIds,
) -> anyhow::Result<Vec<(Arc<UdpSocket>, SocketAddr)>> {
    let mut udp_socks = Vec::new();
    for l in &cfg.listen {
        let stack = bind::stack_among(
            l.addr,
            cfg.listen
                .iter()
                .filter(|o| o.transport == l.transport)
                .map(|o| o.addr),
        );
        match l.transport {
            Transport::Udp => {
                let sock = udp::bind(l.addr, stack)
                    .with_context(|| format!("cannot bind udp:{}", l.addr))?;
                let local = sock.local_addr()?;
                let sock = Arc::new(sock);
                // An id names a listener in its low byte (`udp::local`).
                let index = u8::try_from(udp_socks.len()).context("at most 256 UDP listeners")?;
                let id = crate::sip::ListenerId(u16::from(index));
                tokio::spawn(udp::reader(
                    sock.clone(),
                    id,
                    cfg.max_message_bytes,
                    inbox.clone(),
                ));
                udp_socks.push((sock, local));
            }
            Transport::Tcp => {
                let listener = bind::tcp_listener(l.addr, stack)
                    .with_context(|| format!("cannot bind tcp:{}", l.addr))?;
                tokio::spawn(tcp::accept(
                    listener,
                    tcp_limits,
                    tcp_slots.clone(),
                    conn_ids.clone(),
                    inbox.clone(),
                ));
            }
        }
    }
    Ok(udp_socks)
}

/// Serve `/metrics` (and `/health`, `ready`) when `[metrics] listen` is set.
pub(super) fn metrics_endpoint(
    cfg: &Arc<Config>,
    inbox: &inbox::Inbox,
    ready: crate::ops::scrape::Ready,
) -> anyhow::Result<()> {
    if let Some(m) = cfg.metrics.listen {
        let listener = bind::tcp_listener(m, bind::Stack::Dual)
            .with_context(|| format!("cannot serve metrics on {m}"))?;
        let handle =
            metrics::install().map_err(|e| anyhow::anyhow!("cannot serve metrics: {e}"))?;
        crate::cdr::describe_metrics();
        let allow_from = inbox.clone();
        tokio::spawn(crate::ops::scrape::serve(
            listener,
            handle,
            std::sync::Arc::new(move |ip| allow_from.metrics_allows(ip)),
            ready,
            cfg.metrics.max_connections,
        ));
    }
    Ok(())
}
