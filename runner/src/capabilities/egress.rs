//! Network egress: the step's `net` grant, as `host:port` pairs or URL origins
//! (outgoing HTTP is checked against the same grants in [`super::http`]).
//!
//! The plugin may open TCP connections only to the addresses the granted hosts
//! resolve to (resolved once, when the step starts), and only on the granted ports.
//! UDP and listening sockets are never allowed. Native programs reach the same
//! addresses, and only those, through their sandbox's forwarding (see
//! [`crate::sandbox::net`]); names they look up are answered from the same resolution.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::sandbox::forward::NameTable;

use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::capabilities::logs::{Source, StepLog};
use crate::config::NetGrant;

/// Resolved network grants.
#[derive(Debug, Clone, Default)]
pub struct NetAccess {
    grants: Vec<NetGrant>,
    /// Each grant with the addresses it resolved to when the step started.
    by_grant: Arc<Vec<(NetGrant, Vec<SocketAddr>)>>,
    addrs: Arc<Vec<SocketAddr>>,
    names: Arc<NameTable>,
}

impl NetAccess {
    /// Resolve every granted host now; a host that does not resolve is noted in the log.
    pub fn resolve(grants: &[NetGrant], log: &StepLog) -> NetAccess {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut names = NameTable::new();
        let mut by_grant = Vec::new();
        for g in grants {
            match (g.host.as_str(), g.port).to_socket_addrs() {
                Ok(found) => {
                    let found: Vec<SocketAddr> = found.collect();
                    by_grant.push((g.clone(), found.clone()));
                    for a in found {
                        if !addrs.contains(&a) {
                            addrs.push(a);
                        }
                        if g.host.parse::<std::net::IpAddr>().is_err() {
                            let known = names
                                .entry(g.host.trim_end_matches('.').to_ascii_lowercase())
                                .or_default();
                            if !known.contains(&a.ip()) {
                                known.push(a.ip());
                            }
                        }
                    }
                }
                Err(e) => log.line(
                    Source::Runner,
                    &format!("net grant {g} does not resolve: {e}"),
                ),
            }
        }
        NetAccess {
            grants: grants.to_vec(),
            by_grant: Arc::new(by_grant),
            addrs: Arc::new(addrs),
            names: Arc::new(names),
        }
    }

    /// The granted addresses, resolved.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.addrs.to_vec()
    }

    /// Each grant that resolved, with its addresses (resolved once, at step start).
    pub fn resolved_grants(&self) -> &[(NetGrant, Vec<SocketAddr>)] {
        &self.by_grant
    }

    /// The granted host names and their addresses.
    pub fn names(&self) -> Arc<NameTable> {
        self.names.clone()
    }

    /// Whether the step has any network grant.
    pub fn any(&self) -> bool {
        !self.grants.is_empty()
    }

    /// The granted ports (for confining native programs).
    pub fn ports(&self) -> Vec<u16> {
        let mut p: Vec<u16> = self.grants.iter().map(|g| g.port).collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// Let the plugin connect to granted addresses only; denials are logged with the
    /// grant that would have allowed them.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder, log: &StepLog) {
        if !self.any() {
            // wasmtime-wasi denies every socket by default.
            return;
        }
        wasi.allow_tcp(true);
        wasi.allow_udp(false);
        wasi.allow_ip_name_lookup(true);
        let addrs = self.addrs.clone();
        let log = log.clone();
        wasi.socket_addr_check(move |addr, use_| {
            let allowed = match use_ {
                SocketAddrUse::TcpConnect => addrs.contains(&addr),
                // `connect` binds implicitly to the wildcard address first.
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            if !allowed {
                let what = match use_ {
                    SocketAddrUse::TcpConnect => "TCP connection to",
                    SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => "listening on",
                    _ => "UDP traffic with",
                };
                log.line(
                    Source::Runner,
                    &format!("denied {what} {addr}: not in the step's `net` grant (add \"{addr}\" under [stage.step.grants] net)"),
                );
            }
            Box::pin(async move { allowed })
        });
    }
}
