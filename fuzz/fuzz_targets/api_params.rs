//! The query API's parameters, through its real routes and a small store:
//! the first byte picks the route, the rest is `key=value&...` (each part
//! percent-encoded as a client would). Any answer but a 500 is fine; a
//! panic or a hang is a finding.
#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flowlens::api::{QueryLimits, ROUTES, routes};
use flowlens_model::FlowRecord;
use flowlens_store::{Store, StoreOptions};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

struct Server {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flowlens-fuzz-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(StoreOptions::new(&dir)).expect("store");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let flows: Vec<FlowRecord> = (0..50)
            .map(|i| FlowRecord {
                src_addr: format!("198.18.0.{}", 1 + i % 4).into(),
                dst_addr: "198.18.1.1".into(),
                src_port: 40000 + i as u16,
                dst_port: if i % 3 == 0 { 53 } else { 443 },
                proto: if i % 3 == 0 { 17 } else { 6 },
                bytes: 100 + i,
                packets: 1,
                time_flow_start_ms: now - 60_000 + i as i64 * 100,
                time_flow_end_ms: now - 60_000 + i as i64 * 100 + 5,
                ..Default::default()
            })
            .collect();
        store.append_flows(&flows);
        let limits = QueryLimits {
            max_concurrent: 4,
            timeout: Duration::from_secs(2),
            // A line per input would drown the fuzzer's output.
            audit: false,
        };
        Server {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            app: routes(Arc::new(store), limits),
        }
    })
}

fn encode(part: &str) -> String {
    let mut out = String::new();
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let route = ROUTES[pick as usize % ROUTES.len()];
    let text = String::from_utf8_lossy(rest);
    let query: Vec<String> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => format!("{}={}", encode(k), encode(v)),
            None => encode(pair),
        })
        .collect();
    let uri = format!("{route}?{}", query.join("&"));
    let Ok(request) = Request::get(&uri).body(Body::empty()) else {
        return;
    };
    let server = server();
    let response = server
        .runtime
        .block_on(server.app.clone().oneshot(request))
        .expect("the router answers");
    assert_ne!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{uri}"
    );
    // Read the body too (an export streams it).
    let _ = server
        .runtime
        .block_on(axum::body::to_bytes(response.into_body(), 64 << 20));
});
