//! The runner's side of a sandbox's network ([`super::net`]): every connection a
//! program makes to a granted address arrives on a listener inside the sandbox and is
//! forwarded here, from the runner, to that same address; name lookups arrive at a
//! small name server that answers only for the names in the step's `net` grants, with
//! the addresses the runner resolved when the step started. So a native program
//! reaches exactly the granted addresses, by name or by number, and nothing else.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::plan::NetPlan;
use crate::capabilities::logs::{Source, StepLog};

/// Connections forwarded at once per program, at most.
const MAX_CONNECTIONS: usize = 256;
/// Time allowed to reach a granted address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time-to-live of the name server's answers.
const ANSWER_TTL: u32 = 60;

/// Granted host names (lower case, no trailing dot) and their addresses.
pub type NameTable = HashMap<String, Vec<IpAddr>>;

/// The forwarding of one step's sandbox; stops when dropped.
pub struct Forwarding {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serve the sockets the sandbox's init handed over: `plan.listeners.len()` TCP
/// listeners, then the name server's UDP socket.
pub fn start(
    sockets: Vec<OwnedFd>,
    plan: &NetPlan,
    names: Arc<NameTable>,
    log: StepLog,
) -> io::Result<Forwarding> {
    if sockets.len() != plan.listeners.len() + 1 {
        return Err(io::Error::other(format!(
            "the sandbox handed over {} sockets, expected {}",
            sockets.len(),
            plan.listeners.len() + 1
        )));
    }
    let mut sockets = sockets.into_iter();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = Vec::new();
    for _ in &plan.listeners {
        let std_listener = std::net::TcpListener::from(sockets.next().expect("counted above"));
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((inside, _)) = listener.accept().await else {
                    break;
                };
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                tokio::spawn(async move {
                    let _permit = permit;
                    // The address the program connected to is where the listener sits.
                    let Ok(target) = inside.local_addr() else {
                        return;
                    };
                    forward(inside, target).await;
                });
            }
        }));
    }
    let std_udp = std::net::UdpSocket::from(sockets.next().expect("counted above"));
    std_udp.set_nonblocking(true)?;
    let udp = tokio::net::UdpSocket::from_std(std_udp)?;
    tasks.push(tokio::spawn(serve_names(udp, names, log)));
    Ok(Forwarding { tasks })
}

async fn forward(mut inside: tokio::net::TcpStream, target: SocketAddr) {
    let outside =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            // The program sees the connection reset, as if the address refused it.
            _ => {
                let _ = inside.set_zero_linger();
                return;
            }
        };
    let _ = inside.set_nodelay(true);
    let _ = outside.set_nodelay(true);
    let mut outside = outside;
    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
}

async fn serve_names(udp: tokio::net::UdpSocket, names: Arc<NameTable>, log: StepLog) {
    let denied: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
            break;
        };
        let Some(answer) = answer(&buf[..n], &names, |name| {
            if denied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string())
            {
                log.line(
                    Source::Runner,
                    &format!(
                        "denied name lookup of `{name}`: not in the step's `net` grant (add \"{name}:PORT\" under [stage.step.grants] net)"
                    ),
                );
            }
        }) else {
            continue;
        };
        let _ = udp.send_to(&answer, peer).await;
    }
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u16 = 1;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_NOTIMP: u16 = 4;

/// The answer to one DNS query: the granted name's addresses, NXDOMAIN for any other
/// name (reported through `denied`), `None` for what is not a query at all.
pub fn answer(query: &[u8], names: &NameTable, denied: impl FnOnce(&str)) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & 0x8000 != 0 {
        return None; // a response, not a query
    }
    let header = |rcode: u16, answers: u16, question_end: usize| {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&query[..2]);
        // QR, the opcode and RD copied, RA, the response code.
        let reply = 0x8000 | (flags & 0x7900) | 0x0080 | rcode;
        out.extend_from_slice(&reply.to_be_bytes());
        let questions: u16 = if question_end > 12 { 1 } else { 0 };
        out.extend_from_slice(&questions.to_be_bytes());
        out.extend_from_slice(&answers.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&query[12..question_end]);
        out
    };
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if opcode != 0 {
        return Some(header(RCODE_NOTIMP, 0, 12));
    }
    if qdcount != 1 {
        return Some(header(RCODE_FORMERR, 0, 12));
    }
    // The question: labels, type, class.
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Some(header(RCODE_FORMERR, 0, 12));
        }
        let label = query.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(pos + 2)?, *query.get(pos + 3)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let Some(addrs) = names.get(&name) else {
        denied(&name);
        return Some(header(RCODE_NXDOMAIN, 0, question_end));
    };
    let records: Vec<&IpAddr> = addrs
        .iter()
        .filter(|a| {
            qclass == CLASS_IN
                && match a {
                    IpAddr::V4(_) => qtype == TYPE_A,
                    IpAddr::V6(_) => qtype == TYPE_AAAA,
                }
        })
        .collect();
    let mut out = header(0, records.len() as u16, question_end);
    for addr in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the name, as a pointer to the question
        let (kind, data) = match addr {
            IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn granted_names_get_their_addresses_and_others_nxdomain() {
        let mut names = NameTable::new();
        names.insert(
            "api.example.com".into(),
            vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
        );
        let a = answer(&query("API.example.com", TYPE_A), &names, |_| {
            panic!("granted")
        })
        .unwrap();
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[192, 0, 2, 7]);
        let aaaa = answer(&query("api.example.com", TYPE_AAAA), &names, |_| {}).unwrap();
        assert_eq!(u16::from_be_bytes([aaaa[6], aaaa[7]]), 1);
        let mut seen = None;
        let nx = answer(&query("evil.example.net", TYPE_A), &names, |n| {
            seen = Some(n.to_string())
        })
        .unwrap();
        assert_eq!(nx[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(seen.as_deref(), Some("evil.example.net"));
        assert!(answer(&[1, 2, 3], &names, |_| {}).is_none());
    }
}
