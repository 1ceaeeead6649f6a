//! The host name in a `Host` header, as every reader of it (route matching,
//! tenant subdomains, cookies, CSRF) takes it.

/// The host name of a `Host` header value: without the port (`:8080`), without a
/// trailing dot, IPv6 brackets kept (`[::1]`). Case is left as is. Never allocates.
pub fn host_name(host: &str) -> &str {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_trailing_dot() {
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("Example.com:8080"), "Example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("example.com.:443"), "example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("host:abc"), "host:abc");
        assert_eq!(host_name(""), "");
    }
}
