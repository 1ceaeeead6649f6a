//! Who the client is: the TCP peer, unless the peer is a proxy the operator
//! trusts (`GATEWAY_TRUSTED_PROXIES`), in which case the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy. Anyone else's
//! `X-Forwarded-For` is discarded, not prepended to: a client must not be able to
//! choose the address rate limits, audit rows and the app see.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// These networks (settings parse them at load).
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets.into_iter().map(|n| n.trunc()).collect())
    }

    /// Parses CIDR blocks (`10.0.0.0/8`, `fd00::/8`) or single addresses.
    ///
    /// # Errors
    /// A sentence naming the entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for raw in entries {
            let raw = raw.as_ref().trim();
            let net = raw
                .parse::<IpNet>()
                .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{raw:?} is not an IP address or CIDR block like 10.0.0.0/8"))?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether no proxy is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client of a request as the gateway decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether the TCP peer is a trusted proxy (its forwarding headers count).
    pub via_trusted_proxy: bool,
    /// The `X-Forwarded-For` value to send upstream: the trusted chain plus the
    /// peer, or only the peer.
    pub forwarded_for: String,
}

/// Decides the client of a request from its TCP `peer` and its `X-Forwarded-For`
/// values (every header, in order).
pub fn resolve<'a>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>, trusted: &TrustedProxies) -> Client {
    let trusted_peer = trusted.contains(canonical_ip(peer));
    resolve_with(peer, trusted_peer, forwarded_for, trusted)
}

/// [`resolve`] for a peer trusted whatever its address (one that reached a
/// listener only trusted proxies can reach, `GATEWAY_VERIFY_LISTEN`); the hops
/// before it are believed only when `trusted` lists them.
pub fn resolve_from_trusted_peer<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> Client {
    resolve_with(peer, true, forwarded_for, trusted)
}

fn resolve_with<'a>(
    peer: IpAddr,
    trusted_peer: bool,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> Client {
    let peer = canonical_ip(peer);
    if !trusted_peer {
        return Client { ip: peer, via_trusted_proxy: false, forwarded_for: ip_text(peer) };
    }
    let received: Vec<&str> =
        forwarded_for.flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).collect();
    // Walk from the right past trusted hops; an entry that is not an address ends
    // the walk (nothing left of it can be believed).
    let mut client = peer;
    for entry in received.iter().rev() {
        let Some(ip) = parse_entry(entry) else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    let mut chain = received.join(", ");
    if !chain.is_empty() {
        chain.push_str(", ");
    }
    chain.push_str(&ip_text(peer));
    Client { ip: client, via_trusted_proxy: true, forwarded_for: chain }
}

/// The address as text, as `Display` writes it; IPv4 (every request from a
/// typical peer) without the formatting machinery.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(digits.format(octet));
    }
    text
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`,
/// `[::1]:80`) or in brackets.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(canonical_ip(addr.ip()));
    }
    entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).and_then(|e| e.parse::<IpAddr>().ok()).map(canonical_ip)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as the IPv4 address they are.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address a per-client rate limit counts: the IPv4 address, or the /64 an
/// IPv6 address is in (one subscriber usually holds a whole /64, so counting
/// single addresses would let one client rotate through billions).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The network a client is in, for "is this the same client?" checks that must
/// survive address churn within one network: the IPv4 /24 or the IPv6 /64.
pub fn network_class(ip: IpAddr) -> IpAddr {
    match limit_key(ip) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xFFFF_FF00)),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.20.255.9", "255.255.255.255", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn network_classes_are_the_v4_24_and_the_v6_64() {
        let class = |s: &str| network_class(s.parse().unwrap()).to_string();
        assert_eq!(class("203.0.113.77"), "203.0.113.0");
        assert_eq!(class("::ffff:203.0.113.77"), "203.0.113.0");
        assert_ne!(class("203.0.113.77"), class("203.0.114.77"));
        assert_eq!(class("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_ne!(class("2001:db8:1:2::1"), class("2001:db8:1:3::1"));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_and_its_header_is_discarded() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let c = resolve(ip("203.0.113.7"), ["1.2.3.4, 10.0.0.1"].into_iter(), &trusted);
        assert_eq!(c, Client { ip: ip("203.0.113.7"), via_trusted_proxy: false, forwarded_for: "203.0.113.7".into() });
        let none = TrustedProxies::default();
        assert_eq!(resolve(ip("10.0.0.1"), ["1.2.3.4"].into_iter(), &none).ip, ip("10.0.0.1"));
    }

    #[test]
    fn through_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.5"]).unwrap();
        let c = resolve(ip("10.0.0.2"), ["6.6.6.6, 203.0.113.9", "192.168.1.5"].into_iter(), &trusted);
        assert_eq!(c.ip, ip("203.0.113.9"), "the client-written 6.6.6.6 is left of the first untrusted hop");
        assert!(c.via_trusted_proxy);
        assert_eq!(c.forwarded_for, "6.6.6.6, 203.0.113.9, 192.168.1.5, 10.0.0.2");
        // Nothing forwarded: the proxy itself.
        assert_eq!(resolve(ip("10.0.0.2"), std::iter::empty(), &trusted).ip, ip("10.0.0.2"));
        // Garbage ends the walk: the hop to its right is the client.
        let c = resolve(ip("10.0.0.2"), ["1.1.1.1, unknown, 10.9.9.9"].into_iter(), &trusted);
        assert_eq!(c.ip, ip("10.9.9.9"));
        // Ports and brackets.
        assert_eq!(resolve(ip("10.0.0.2"), ["198.51.100.1:4711"].into_iter(), &trusted).ip, ip("198.51.100.1"));
        assert_eq!(resolve(ip("10.0.0.2"), ["[2001:db8::1]:80"].into_iter(), &trusted).ip, ip("2001:db8::1"));
    }

    #[test]
    fn a_peer_on_the_verify_listener_is_believed_but_only_listed_hops_before_it() {
        let none = TrustedProxies::default();
        let c = resolve_from_trusted_peer(ip("127.0.0.1"), ["6.6.6.6, 203.0.113.9"].into_iter(), &none);
        assert_eq!((c.ip, c.via_trusted_proxy), (ip("203.0.113.9"), true));
        assert_eq!(c.forwarded_for, "6.6.6.6, 203.0.113.9, 127.0.0.1");
        let listed = TrustedProxies::parse(&["203.0.113.9"]).unwrap();
        let c = resolve_from_trusted_peer(ip("127.0.0.1"), ["6.6.6.6, 203.0.113.9"].into_iter(), &listed);
        assert_eq!(c.ip, ip("6.6.6.6"));
        assert_eq!(resolve_from_trusted_peer(ip("127.0.0.1"), std::iter::empty(), &none).ip, ip("127.0.0.1"));
    }

    #[test]
    fn mapped_addresses_and_v6_limits() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        assert!(trusted.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2:ffff::9")), limit_key(ip("2001:db8:1:2::1")));
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), limit_key(ip("2001:db8:1:2::1")));
        assert_eq!(limit_key(ip("198.51.100.1")), ip("198.51.100.1"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local"]).is_err());
    }
}
