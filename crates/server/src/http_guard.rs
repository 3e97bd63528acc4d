//! What every HTTP answer of flowlens carries, and whom a loopback
//! listener answers. A listener on a loopback address without tokens
//! trusts whoever can reach it — processes of this host — but a web page
//! the user opens can reach it too, and DNS rebinding makes its requests
//! same-origin for the browser: such requests name the attacker's host in
//! `Host`, and are refused. Every answer says not to sniff its type nor to
//! be framed, not to leak the URL (filters name hosts and pods) in a
//! Referer; API answers are never cached; the console gets a content
//! security policy that allows only its own files.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The console's policy: its own scripts, styles and data; inline styles
/// for the charts; no frames, no plugins, no other origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// Only requests naming a loopback host are answered.
    pub loopback_hosts_only: bool,
}

/// Whether `Host` names this host's loopback: `localhost` (and names
/// under it), 127.0.0.0/8 or ::1, with any port. No `Host` at all (an
/// HTTP/1.0 client) is not a browser's request.
pub fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The host of `host[:port]` (an IPv6 address without its brackets).
pub fn host_name(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(name, _)| name),
    }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/status" || path == "/metrics"
}

pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.loopback_hosts_only && !host_is_loopback(request.headers()) {
        let body = serde_json::json!({
            "error": "this listener is bound to a loopback address and answers only requests \
                      naming a loopback host (Host: localhost or 127.0.0.1): a request naming \
                      another host is a web page's (DNS rebinding)"
        });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let api = is_api(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    if api {
        set(headers, header::CACHE_CONTROL, "no-store");
    } else {
        set(
            headers,
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn loopback_hosts_and_others() {
        for ok in [
            "localhost",
            "localhost:9290",
            "127.0.0.1:9290",
            "127.1.2.3",
            "[::1]:9290",
            "app.localhost",
            "LOCALHOST.",
        ] {
            assert!(host_is_loopback(&host(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9290",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[fd00:198:18::1]:9290",
            "198.18.0.1",
        ] {
            assert!(!host_is_loopback(&host(bad)), "{bad}");
        }
        assert!(host_is_loopback(&HeaderMap::new()));
    }
}
