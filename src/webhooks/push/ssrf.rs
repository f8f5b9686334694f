//! The SSRF guard for push destinations: agents name the URL, agentgate makes the request
//! from inside the operator's network, so a URL must not reach what only that network can
//! reach. Only `http`/`https`; the host is resolved and every address it resolves to must be
//! public, unless the operator allowed private addresses for this destination. Cloud
//! metadata and unroutable addresses are refused even then. The check runs at creation and
//! before every attempt, and the attempt connects to the address checked (no second lookup
//! a rebinding DNS server could answer differently).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

/// A destination URL that parsed: `http` or `https`, a host, no user info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationUrl {
    uri: Uri,
    host: String,
    port: u16,
}

/// Why a URL or its addresses are refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    /// Not an absolute `http(s)://host/...` URL.
    #[error("not an http or https URL with a host: {0}")]
    Malformed(String),
    /// The host did not resolve.
    #[error("cannot resolve {host}: {cause}")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's error.
        cause: String,
    },
    /// The host resolves to an address push may not reach.
    #[error("{host} resolves to {ip}, a {kind} address{hint}")]
    Forbidden {
        /// The host.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// What kind of address it is.
        kind: AddressKind,
        /// How to allow it, when it may be allowed.
        hint: &'static str,
    },
}

/// The kinds of address the guard refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    /// Loopback, private, link-local, carrier-grade NAT or unique local: allowed only with
    /// `--allow-private`.
    Private,
    /// A cloud provider's instance metadata service: never.
    Metadata,
    /// Unspecified, multicast, broadcast or reserved: never (nothing to deliver to).
    Unroutable,
}

impl std::fmt::Display for AddressKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressKind::Private => "loopback, private or link-local",
            AddressKind::Metadata => "cloud metadata",
            AddressKind::Unroutable => "unroutable",
        })
    }
}

impl DestinationUrl {
    /// Parses and checks the form of a URL (not its addresses).
    pub fn parse(text: &str) -> Result<Self, UrlRefused> {
        let malformed = || UrlRefused::Malformed(text.to_owned());
        let uri: Uri = text.parse().map_err(|_| malformed())?;
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(malformed()),
        };
        let authority = uri.authority().ok_or_else(malformed)?;
        if authority.as_str().contains('@') {
            return Err(malformed());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(malformed());
        }
        let port = authority.port_u16().unwrap_or(default_port);
        Ok(Self { uri, host, port })
    }

    /// The URL requested (its host stays the name, for TLS and `Host`).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether it is `https`.
    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }
}

impl std::fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// Resolves the URL's host and returns the address to connect to, after checking every
/// address the name resolves to (one bad address refuses the name: a resolver may rotate).
pub async fn resolve(url: &DestinationUrl, allow_private: bool) -> Result<SocketAddr, UrlRefused> {
    let addrs: Vec<SocketAddr> = match url.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, url.port)],
        Err(_) => tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| UrlRefused::Unresolvable {
                host: url.host.clone(),
                cause: e.to_string(),
            })?
            .collect(),
    };
    let first = *addrs.first().ok_or_else(|| UrlRefused::Unresolvable {
        host: url.host.clone(),
        cause: "no addresses".to_owned(),
    })?;
    for addr in &addrs {
        check_address(&url.host, addr.ip(), allow_private)?;
    }
    Ok(first)
}

/// Refuses one address as [`resolve`] does.
pub fn check_address(host: &str, ip: IpAddr, allow_private: bool) -> Result<(), UrlRefused> {
    let Some(kind) = classify(ip) else {
        return Ok(());
    };
    if kind == AddressKind::Private && allow_private {
        return Ok(());
    }
    Err(UrlRefused::Forbidden {
        host: host.to_owned(),
        ip,
        kind,
        hint: match kind {
            AddressKind::Private => " (allow it with --allow-private)",
            AddressKind::Metadata | AddressKind::Unroutable => "",
        },
    })
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<AddressKind> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = ip.octets();
    // AWS, GCP, Azure, OpenStack (169.254.169.254), AWS's IPv4 DNS/NTP helpers, Alibaba.
    if ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(169, 254, 170, 2)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
    {
        return Some(AddressKind::Metadata);
    }
    let private = a == 127                          // loopback
        || a == 10                                  // 10/8
        || (a == 172 && (16..32).contains(&b))      // 172.16/12
        || (a == 192 && b == 168)                   // 192.168/16
        || (a == 169 && b == 254)                   // link-local
        || (a == 100 && (64..128).contains(&b)); // CGNAT 100.64/10
    if private {
        return Some(AddressKind::Private);
    }
    let unroutable = a == 0                         // "this network", unspecified
        || a >= 224                                 // multicast, reserved, broadcast
        || (a == 192 && b == 0 && c == 0)           // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)           // documentation
        || (a == 198 && (b == 18 || b == 19))       // benchmarking
        || (a == 198 && b == 51 && c == 100)        // documentation
        || (a == 203 && b == 0 && c == 113); // documentation
    unroutable.then_some(AddressKind::Unroutable)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressKind> {
    // AWS's IPv6 metadata endpoint (inside fc00::/7, but never allowed).
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some(AddressKind::Metadata);
    }
    let segments = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if ip.is_unspecified() || ip.is_multicast() || segments[0] == 0x2001 && segments[1] == 0xdb8 {
        return Some(AddressKind::Unroutable);
    }
    let private = ip.is_loopback()
        || (segments[0] & 0xffc0) == 0xfe80   // link-local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0   // deprecated site-local fec0::/10
        || (segments[0] & 0xfe00) == 0xfc00   // unique local fc00::/7
        || segments[..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible (deprecated)
    private.then_some(AddressKind::Private)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<AddressKind> {
        classify(text.parse().unwrap())
    }

    #[test]
    fn private_ranges_are_private() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert_eq!(kind(ip), Some(AddressKind::Private), "{ip}");
        }
    }

    #[test]
    fn metadata_and_unroutable_are_refused_even_when_private_is_allowed() {
        for ip in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            assert_eq!(kind(ip), Some(AddressKind::Metadata), "{ip}");
            assert!(check_address("h", ip.parse().unwrap(), true).is_err());
        }
        for ip in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            assert_eq!(kind(ip), Some(AddressKind::Unroutable), "{ip}");
        }
        assert!(check_address("h", "10.0.0.1".parse().unwrap(), true).is_ok());
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn urls_need_http_a_host_and_no_user_info() {
        assert!(DestinationUrl::parse("https://agent.example/hook").is_ok());
        let v6 = DestinationUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((v6.host(), v6.port), ("::1", 8080));
        for bad in [
            "ftp://x/",
            "/relative",
            "http://user:pw@host/",
            "file:///etc/passwd",
            "gopher://x",
        ] {
            assert!(DestinationUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let url = DestinationUrl::parse("http://localhost:9/").unwrap();
        assert!(matches!(
            resolve(&url, false).await,
            Err(UrlRefused::Forbidden { .. })
        ));
        assert!(resolve(&url, true).await.is_ok());
    }
}
