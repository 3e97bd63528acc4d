//! The small HTTP client the CLI uses to talk to a running `up`, collector
//! or agent: GET, JSON or text, over HTTP or HTTPS, with an API token when
//! given, and the server's error message on failure.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// Which server to ask, and how.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The `flowlens up`, collector or agent (`--listen`) to ask:
    /// http://HOST:PORT or https://HOST:PORT.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9290")]
    pub server: String,
    /// A file holding the API token to send (`Authorization: Bearer`), for
    /// a server with --api-tokens.
    #[arg(long, value_name = "FILE", env = "FLOWLENS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA that signed an https:// server's certificate (default: the
    /// system's CAs).
    #[arg(long, value_name = "FILE")]
    pub server_ca: Option<PathBuf>,
}

impl ServerArgs {
    /// The server at `url`, as given, no token.
    pub fn plain(url: &str) -> ServerArgs {
        ServerArgs {
            server: url.to_string(),
            token_file: None,
            server_ca: None,
        }
    }

    fn token(&self) -> Result<Option<String>> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() || token.contains(['\r', '\n']) {
            bail!(
                "--token-file {}: expected the token alone on one line",
                path.display()
            );
        }
        Ok(Some(token.to_string()))
    }
}

/// Whether a URL is https, and its host:port: `http[s]://host:port[/]`.
pub fn authority(url: &str) -> Result<(bool, &str)> {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => bail!("--server `{url}`: expected http://HOST:PORT or https://HOST:PORT"),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--server `{url}`: expected http://HOST:PORT or https://HOST:PORT");
    }
    Ok((https, authority))
}

/// A connection to the server, over TLS for https.
fn connect(server: &ServerArgs, https: bool, authority: &str) -> Result<Box<dyn ReadWrite>> {
    let tcp = TcpStream::connect(authority).with_context(|| {
        format!("connecting to {authority} (is `flowlens up` or a collector running?)")
    })?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    if !https {
        return Ok(Box::new(tcp));
    }
    let files = flowlens_tls::ClientTlsFiles {
        ca: server.server_ca.clone(),
        ..Default::default()
    };
    let tls = flowlens_tls::ClientTls::new(files, &[b"http/1.1"]).map_err(anyhow::Error::msg)?;
    let stream = tls
        .connect_blocking(tcp, flowlens_server::http_guard::host_name(authority))
        .map_err(|f| anyhow::anyhow!("TLS with {authority} failed: {f} ({})", f.reason()))?;
    Ok(Box::new(stream))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

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
pub fn get(server: &ServerArgs, path: &str) -> Result<String> {
    let (https, authority) = authority(&server.server)?;
    let token = server.token()?;
    let mut stream = connect(server, https, authority)?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{authorization}Connection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        // A TLS server may close without close_notify; what came is whole
        // when the head says how long it is (checked below).
        if raw.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
            return Err(e.into());
        }
    }
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
            (false, "127.0.0.1:9290")
        );
        assert_eq!(
            authority("http://[::1]:9290/").unwrap(),
            (false, "[::1]:9290")
        );
        assert_eq!(authority("https://x:1").unwrap(), (true, "x:1"));
        assert_eq!(flowlens_server::http_guard::host_name("[::1]:9290"), "::1");
        assert_eq!(
            flowlens_server::http_guard::host_name("localhost:9290"),
            "localhost"
        );
        assert!(authority("ftp://x:1").is_err());
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
