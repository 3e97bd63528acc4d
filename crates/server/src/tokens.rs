//! API tokens (`--api-tokens FILE`): who may ask what. The file holds each
//! token's SHA-256 — never the token — with a name, a scope filter ANDed
//! into every answer the token gets, and its rights. It is re-read when it
//! changes (a token added or revoked takes effect within a second); a file
//! that no longer parses keeps the tokens in force and says why in the log.
//!
//! ```yaml
//! tokens:
//!   - name: shop-team
//!     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!     scope: 'src.namespace = "shop" or dst.namespace = "shop"'
//!     rights: [read, export]      # read, export, metrics, admin
//! ```

use flowlens_query::Filter;
use flowlens_tls::reloading::{ReloadStats, Reloading};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file is read whole; a bigger one is refused.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Tokens one file may hold.
const MAX_TOKENS: usize = 10_000;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Flows, conversations, top, series, topology, filter help, fields.
    Read,
    /// `/api/export`.
    Export,
    /// `/metrics` (Prometheus).
    Metrics,
    /// `/status` and `/api/status`, and every right above.
    Admin,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Export => "export",
            Right::Metrics => "metrics",
            Right::Admin => "admin",
        }
    }
}

/// A token's entry, as the file gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    #[serde(default)]
    scope: Option<String>,
    rights: Vec<Right>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tokens: Vec<Entry>,
}

/// Who asked: a token's name, scope and rights.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// ANDed into every answer; None sees everything.
    pub scope: Option<Filter>,
    rights: Vec<Right>,
}

impl Caller {
    pub fn may(&self, right: Right) -> bool {
        self.rights.contains(&Right::Admin) || self.rights.contains(&right)
    }
}

/// The tokens of a file, by hash.
#[derive(Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl Tokens {
    /// Parses a token file; the error names the entry and what is wrong.
    pub fn parse(text: &str, path: &str) -> Result<Tokens, String> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| format!("{path}: {e}"))?;
        if file.tokens.len() > MAX_TOKENS {
            return Err(format!(
                "{path}: {} tokens; a file holds at most {MAX_TOKENS}",
                file.tokens.len()
            ));
        }
        let mut by_hash = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, entry) in file.tokens.into_iter().enumerate() {
            let at = format!("{path}: tokens[{i}] ({})", entry.name);
            if entry.name.trim().is_empty() {
                return Err(format!("{path}: tokens[{i}]: a token needs a name"));
            }
            if !names.insert(entry.name.clone()) {
                return Err(format!("{at}: the name is given twice"));
            }
            let hash = hex32(&entry.sha256).ok_or_else(|| {
                format!("{at}: sha256 must be 64 hexadecimal digits (the SHA-256 of the token, e.g. `printf %s TOKEN | sha256sum`)")
            })?;
            if entry.rights.is_empty() {
                return Err(format!(
                    "{at}: rights is empty (read, export, metrics, admin)"
                ));
            }
            let scope = match entry.scope.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(
                    Filter::parse(text).map_err(|e| format!("{at}: scope: {}", e.render(text)))?,
                ),
            };
            let caller = Caller {
                name: entry.name,
                scope,
                rights: entry.rights,
            };
            if by_hash.insert(hash, caller).is_some() {
                return Err(format!("{at}: the same token (sha256) is given twice"));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// The caller a presented token is, if it is one of the file's.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&sha256(token.as_bytes()))
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn read(path: &Path) -> Result<Tokens, String> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{shown}: {size} bytes; a token file holds at most {MAX_FILE_BYTES}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    Tokens::parse(&text, &shown)
}

/// The token file in force, re-read when it changes.
pub struct TokenFile {
    tokens: Reloading<Tokens>,
}

impl TokenFile {
    /// Reads `path` now: an error names the file and the entry.
    pub fn open(path: PathBuf) -> Result<TokenFile, String> {
        let reading = path.clone();
        let tokens = Reloading::new("API tokens", vec![path], move || read(&reading))?;
        Ok(TokenFile { tokens })
    }

    /// The caller a presented token is, with the file as it is now.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        self.tokens.current().caller(token).cloned()
    }

    pub fn reload_stats(&self) -> ReloadStats {
        self.tokens.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_example_of_the_docs_is_the_sha256_of_test() {
        assert_eq!(
            hex(&sha256(b"test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn tokens_are_found_by_their_hash_with_scope_and_rights() {
        let text = format!(
            "tokens:\n  - name: shop-team\n    sha256: {}\n    scope: 'src.namespace = \"shop\" or dst.namespace = \"shop\"'\n    rights: [read, export]\n  - name: ops\n    sha256: {}\n    rights: [admin]\n",
            hex(&sha256(b"shop-secret")),
            hex(&sha256(b"ops-secret"))
        );
        let tokens = Tokens::parse(&text, "tokens.yaml").unwrap();
        let shop = tokens.caller("shop-secret").unwrap();
        assert_eq!(shop.name, "shop-team");
        assert!(shop.may(Right::Read) && shop.may(Right::Export));
        assert!(!shop.may(Right::Metrics) && !shop.may(Right::Admin));
        assert!(shop.scope.is_some());
        let ops = tokens.caller("ops-secret").unwrap();
        assert!(ops.may(Right::Metrics) && ops.scope.is_none());
        assert!(tokens.caller("guess").is_none());
        assert!(tokens.caller("").is_none());
    }

    #[test]
    fn bad_entries_are_named() {
        let h = hex(&sha256(b"x"));
        for (text, expected) in [
            (
                "tokens:\n  - name: a\n    sha256: 12\n    rights: [read]\n".to_string(),
                "tokens[0] (a): sha256 must be 64",
            ),
            (
                format!("tokens:\n  - name: a\n    sha256: {h}\n    rights: [write]\n"),
                "unknown variant `write`",
            ),
            (
                format!("tokens:\n  - name: a\n    sha256: {h}\n    rights: []\n"),
                "rights is empty",
            ),
            (
                format!(
                    "tokens:\n  - name: a\n    sha256: {h}\n    scope: 'src.namespac = x'\n    rights: [read]\n"
                ),
                "tokens[0] (a): scope:",
            ),
            (
                format!(
                    "tokens:\n  - name: a\n    sha256: {h}\n    rights: [read]\n  - name: a\n    sha256: {h}\n    rights: [read]\n"
                ),
                "the name is given twice",
            ),
            (
                format!(
                    "tokens:\n  - name: a\n    sha256: {h}\n    rights: [read]\n  - name: b\n    sha256: {h}\n    rights: [read]\n"
                ),
                "the same token",
            ),
            (
                format!(
                    "tokens:\n  - name: a\n    sha256: {h}\n    rights: [read]\n    secret: x\n"
                ),
                "unknown field `secret`",
            ),
        ] {
            let e = Tokens::parse(&text, "t.yaml").unwrap_err();
            assert!(e.contains(expected), "{e} (expected {expected})");
        }
    }
}
