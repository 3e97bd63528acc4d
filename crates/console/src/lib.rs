//! The Network Traffic console's files, built from `console/` by the build
//! script and embedded in the binary.

/// One file of the built console.
pub struct Asset {
    /// Its URL path, such as `/index.html` or `/assets/index-1a2b3c.js`.
    pub path: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file at a URL path.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The page every console URL answers with (the console routes itself).
pub fn index() -> &'static Asset {
    asset("/index.html").expect("the build embeds index.html")
}

/// The Content-Type of a file by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Hashed files under /assets/ never change; the page itself always may.
pub fn cache_control(path: &str) -> &'static str {
    if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_scripts_are_embedded() {
        let page = std::str::from_utf8(index().body).unwrap();
        assert!(page.contains("<div id=\"app\">"));
        // Every script and stylesheet the page names is embedded.
        for part in page.split("\"/assets/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                asset(&format!("/assets/{name}")).is_some(),
                "{name} missing"
            );
        }
        assert!(ASSETS.iter().any(|a| a.path.ends_with(".js")));
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("/assets/x.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            cache_control("/assets/x.js"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("/index.html"), "no-cache");
    }
}
