//! Who the client is: its IP, whether it came over HTTPS, and which host it
//! asked for, believing `X-Forwarded-*` only from `trusted_proxies`.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

use crate::upstream::deadline::UpstreamTimer;

/// Facts about one connection, fixed when it is accepted, and the timer
/// its requests to upstreams keep their deadlines on.
#[derive(Debug)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Our listening address.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The peer's IP (IPv4-mapped addresses as IPv4) as a header value,
    /// made once for all the connection's requests.
    pub peer_header: HeaderValue,
    /// The deadline timer of the connection's upstream requests, kept from
    /// one request to the next.
    pub upstream_timer: UpstreamTimer,
    /// `Strict-Transport-Security` for every response on the connection
    /// (a TLS listener with `server.hsts`), the proxy's own pages included.
    pub hsts: Option<HeaderValue>,
}

impl ConnInfo {
    /// The facts of a connection accepted from `peer` on `local`.
    pub fn new(peer: SocketAddr, local: SocketAddr, tls: bool) -> Self {
        ConnInfo {
            peer,
            local,
            tls,
            peer_header: ip_header(canonical(peer.ip())),
            upstream_timer: UpstreamTimer::default(),
            hsts: None,
        }
    }

    /// The same, with `Strict-Transport-Security` on every response.
    pub fn with_hsts(self, hsts: Option<HeaderValue>) -> Self {
        ConnInfo { hsts, ..self }
    }
}

/// An IP address as a header value.
pub fn ip_header(ip: IpAddr) -> HeaderValue {
    HeaderValue::try_from(ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The client as far as we can tell.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The client's IP: the peer, or, behind trusted proxies, the first
    /// untrusted address from the right of `X-Forwarded-For`.
    pub ip: IpAddr,
    /// Whether the client's own connection is HTTPS.
    pub https: bool,
    /// Whether the TCP peer is a trusted proxy.
    pub peer_trusted: bool,
}

/// Works out the client from the connection and, when the peer is trusted,
/// its forwarding headers.
pub fn resolve(conn: &ConnInfo, headers: &HeaderMap, trusted: &[IpNet]) -> ClientInfo {
    let peer_ip = canonical(conn.peer.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer_ip) {
        return ClientInfo {
            ip: peer_ip,
            https: conn.tls,
            peer_trusted: false,
        };
    }
    let mut ip = peer_ip;
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| parse_forwarded_ip(s.trim()))
        .collect();
    for hop in hops.iter().rev() {
        ip = *hop;
        if !is_trusted(hop) {
            break;
        }
    }
    let https = conn.tls
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    ClientInfo {
        ip,
        https,
        peer_trusted: true,
    }
}

/// IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // "1.2.3.4:5678" or "[::1]:5678"
    s.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo::new(
            peer.parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
            false,
        )
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let c = resolve(&conn("10.0.0.5:1"), &h, &[]);
        assert_eq!(c.ip, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert!(!c.https);
    }

    #[test]
    fn trusted_chain_gives_first_untrusted_from_the_right() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.1.1.1".parse().unwrap(),
        );
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let c = resolve(&conn("10.0.0.5:1"), &h, &trusted);
        assert_eq!(c.ip, "1.2.3.4".parse::<IpAddr>().unwrap());
        assert!(c.https);
    }
}
