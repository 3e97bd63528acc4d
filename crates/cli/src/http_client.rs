//! The small HTTP client the CLI uses to talk to a running `up`, collector
//! or agent: GET, JSON or text, with the server's error message on failure.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// host:port of an `http://host:port[/]` URL.
pub fn authority(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--server `{url}`: expected http://HOST:PORT"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--server `{url}`: expected http://HOST:PORT");
    }
    Ok(authority)
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `path?k=v&...` with the values encoded; empty values left out.
pub fn path_with(path: &str, params: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET `path` from `server`; the body of a 200 answer, else an error with
/// the server's message.
pub fn get(server: &str, path: &str) -> Result<String> {
    let authority = authority(server)?;
    let mut stream = TcpStream::connect(authority).with_context(|| {
        format!("connecting to {authority} (is `flowlens up` or a collector running?)")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let response = String::from_utf8_lossy(&raw);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200 ") {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{authority}{path} answered `{status_line}`"));
        bail!("{message}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_and_encoding() {
        assert_eq!(
            authority("http://127.0.0.1:9290").unwrap(),
            "127.0.0.1:9290"
        );
        assert_eq!(authority("http://[::1]:9290/").unwrap(), "[::1]:9290");
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://x:1/status").is_err());
        assert_eq!(encode("dns.rcode = NXDomain"), "dns.rcode%20%3D%20NXDomain");
        assert_eq!(
            path_with(
                "/api/flows",
                &[("filter", Some("a=b".into())), ("until", None)]
            ),
            "/api/flows?filter=a%3Db"
        );
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
