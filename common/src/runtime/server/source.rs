//! Who is asking, as far as the network can tell: the TCP peer, or the client a trusted proxy
//! names in `X-Forwarded-For`. Anonymous endpoints (OAuth, sign-in) limit each source, so one
//! client cannot spend everyone's budget; IPv6 sources are /64 prefixes, since one host
//! commonly holds a whole /64.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

/// A request's source: an IPv4 address or an IPv6 /64, or `Unknown` without a peer (a router
/// driven in-process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Ip(IpAddr),
    Unknown,
}

/// Proxies whose `X-Forwarded-For` is believed (`STUDIO_MCP_TRUSTED_PROXIES`).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From `STUDIO_MCP_TRUSTED_PROXIES`, as the configuration read it.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The source of a request from `peer` with these `X-Forwarded-For` values: the peer, unless
    /// it is a trusted proxy; then the rightmost address in the header that is not one (the
    /// leftmost entries are whatever the client claimed).
    pub fn source(&self, peer: IpAddr, forwarded: &[&str]) -> Source {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return Source::of(peer);
        }
        let hops = forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rev();
        for hop in hops {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(canonical(ip)) => continue,
                Ok(ip) => return Source::of(canonical(ip)),
                // Garbage from a hop we cannot vouch for: the last proxy we trust is the source.
                Err(_) => break,
            }
        }
        Source::of(peer)
    }
}

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Source::Ip(ip),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Source::Ip(IpAddr::V6(Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
        }
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The source of `request`, from the peer the listener recorded and the trusted proxies.
pub fn of_request(proxies: &TrustedProxies, request: &Request) -> Source {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return Source::Unknown;
    };
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    proxies.source(peer.ip(), &forwarded)
}

/// A 429 any client understands: an OAuth-shaped JSON body and `Retry-After`. Sent before the
/// body is read, so the connection closes and says so.
pub fn too_many(retry_after_secs: u64, why: &str) -> Response {
    let body = serde_json::json!({
        "error": crate::runtime::oauth::error::ErrorCode::SlowDown.as_str(),
        "error_description": format!("{why}; retry in {retry_after_secs} s"),
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        headers.insert(header::RETRY_AFTER, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_peer_is_the_source_unless_it_is_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.source(ip("203.0.113.9"), &["198.51.100.1"]),
            Source::Ip(ip("203.0.113.9"))
        );
        let caddy = TrustedProxies::new(
            crate::config::parse_trusted_proxies("172.16.0.0/12, 10.1.2.3").unwrap(),
        );
        // Behind the proxy: the rightmost untrusted hop, whatever the client wrote before it.
        assert_eq!(
            caddy.source(ip("172.18.0.5"), &["1.2.3.4, 198.51.100.7"]),
            Source::Ip(ip("198.51.100.7"))
        );
        assert_eq!(
            caddy.source(ip("172.18.0.5"), &["198.51.100.7", "10.1.2.3"]),
            Source::Ip(ip("198.51.100.7"))
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(
            caddy.source(ip("172.18.0.5"), &[]),
            Source::Ip(ip("172.18.0.5"))
        );
        assert_eq!(
            caddy.source(ip("172.18.0.5"), &["not-an-ip"]),
            Source::Ip(ip("172.18.0.5"))
        );
        // A client that is not the proxy cannot name another source.
        assert_eq!(
            caddy.source(ip("198.51.100.7"), &["1.2.3.4"]),
            Source::Ip(ip("198.51.100.7"))
        );
    }

    #[test]
    fn ipv6_sources_are_64_prefixes_and_mapped_v4_is_v4() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.source(ip("2001:db8:1:2:aaaa::1"), &[]),
            none.source(ip("2001:db8:1:2:bbbb::9"), &[])
        );
        assert_ne!(
            none.source(ip("2001:db8:1:2::1"), &[]),
            none.source(ip("2001:db8:1:3::1"), &[])
        );
        assert_eq!(
            none.source(ip("::ffff:192.0.2.1"), &[]),
            Source::Ip(ip("192.0.2.1"))
        );
    }
}
