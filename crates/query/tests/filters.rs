//! The filter language against a set of records holding each case users
//! ask about: DNS NoError/NXDomain/ServFail, drops by policy and by other
//! causes, retransmits, timed out, refused, and a clean flow.

mod fixture;

use fixture::{records, selected};
use flowlens_query::Filter;

#[test]
fn the_six_network_event_queries_work_as_written() {
    assert_eq!(
        selected("dns.response_code != 0"),
        ["dns_nx", "dns_servfail"]
    );
    assert_eq!(selected("dns.response_code == 3"), ["dns_nx"]);
    assert_eq!(
        selected(r#"flow.status == "dropped""#),
        ["drop_policy", "drop_other"]
    );
    assert_eq!(selected("flow.tcp_retransmits > 0"), ["retransmits"]);
    assert_eq!(
        selected(r#"flow.drop_reason == "policy_denied""#),
        ["drop_policy"]
    );
    assert_eq!(
        selected(r#"flow.status == "timed_out""#),
        ["timed_out", "conversation_timed_out"]
    );
}

#[test]
fn enum_names_units_cidrs_regex_lists_and_logic() {
    assert_eq!(selected("dns.rcode = NXDomain"), ["dns_nx"]);
    assert_eq!(selected("DnsFlagsResponseCode = nxdomain"), ["dns_nx"]);
    assert_eq!(selected("dns.rcode != NoError"), ["dns_nx", "dns_servfail"]);
    assert_eq!(selected("drop.cause = NETFILTER_DROP"), ["drop_policy"]);
    assert_eq!(
        selected("drop.cause = SKB_DROP_REASON_NETFILTER_DROP or drop.category = no_socket"),
        ["drop_policy", "drop_other"]
    );
    assert_eq!(selected("drop.state = SYN_SENT"), ["drop_policy"]);
    assert_eq!(selected("tcp.flags has RST"), ["refused"]);
    assert_eq!(selected("tcp.flags has (SYN, RST)"), ["refused"]);
    assert_eq!(selected("conn.outcome = refused"), ["refused"]);
    assert_eq!(selected("rtt > 50ms"), ["retransmits"]);
    assert_eq!(selected("rtt > 50"), ["retransmits"], "bare numbers are ms");
    assert_eq!(
        selected("TimeFlowRttNs > 50000000"),
        ["retransmits"],
        "netobserv's unit"
    );
    assert_eq!(selected("bytes > 1MiB"), ["retransmits"]);
    assert_eq!(
        selected("bytes = 120"),
        ["conversation_timed_out"],
        "a conversation's both directions"
    );
    assert_eq!(selected("dns.latency >= 100ms"), ["dns_servfail"]);
    assert_eq!(
        selected(r#"dns.name =~ "\.cluster\.local$""#),
        ["dns_servfail"]
    );
    assert_eq!(selected(r#"dns.name !~ "test$""#), ["dns_servfail"]);
    assert_eq!(
        selected("dst.port in (53, 5353) and dns.rcode = ServFail"),
        ["dns_servfail"]
    );
    assert_eq!(selected("src.addr in fd00:198:18::/48"), ["refused"]);
    assert_eq!(
        selected("dst.port in (7100, 7200) and not src.addr in 198.18.0.0/15"),
        Vec::<&str>::new()
    );
    assert_eq!(selected("not addr in 198.18.0.0/15"), ["refused"]);
    assert_eq!(
        selected("(dns.rcode = NXDomain or conn.outcome = refused) and proto = udp"),
        ["dns_nx"]
    );
    assert_eq!(selected("proto = 17 && dns.id = 1"), ["dns_ok"]);
    assert_eq!(selected("!(proto = tcp) && dns.id = 1"), ["dns_ok"]);
    assert_eq!(
        selected(r#"SrcK8S_Namespace = "frontend" and record.type = endConnection"#),
        ["conversation_timed_out"]
    );
    assert_eq!(selected("interface = br0").len(), records().len());
    assert_eq!(selected("flow.direction = inner").len(), records().len());
    assert_eq!(selected("").len(), records().len());
    assert_eq!(selected("flow.status = ok"), ["clean", "dns_ok"]);
    assert_eq!(selected("dns.unanswered"), Vec::<&str>::new());
    assert_eq!(
        selected("not dns.rcode = NXDomain").len(),
        records().len() - 1,
        "`not` includes records without DNS"
    );
}

fn error(filter: &str) -> flowlens_query::FilterError {
    Filter::parse(filter).expect_err(filter)
}

#[test]
fn bad_filters_say_where_what_and_what_was_meant() {
    let e = error("dns.rcod = NXDomain");
    assert_eq!(
        e.to_string(),
        "filter error at column 1: unknown field `dns.rcod`; did you mean `dns.rcode`?"
    );
    assert_eq!(e.suggestion.as_deref(), Some("dns.rcode"));
    let e = error("dns.rcode = NXDomian");
    assert_eq!(
        (e.position, e.suggestion.as_deref()),
        (12, Some("NXDomain"))
    );
    assert!(e.message.contains("valid: NoError"), "{e}");
    let e = error("dns.name > 3");
    assert_eq!(e.position, 9);
    assert!(
        e.message.contains("`>` does not apply to `dns.name`"),
        "{e}"
    );
    let e = error("rtt > 5parsecs");
    assert!(e.message.contains("unknown duration unit"), "{e}");
    let e = error("(dns.id = 1");
    assert!(e.message.contains("expected `)`"), "{e}");
    let e = error("dns.id = 1 dns.id = 2");
    assert_eq!(e.position, 11);
    assert!(e.message.contains("expected `and`, `or`"), "{e}");
    let e = error("src.addr = 300.1.1.1");
    assert!(e.message.contains("not an IP address"), "{e}");
    let e = error("dns.name =~ \"(\"");
    assert!(e.message.contains("invalid regular expression"), "{e}");
    let e = error("dns.id =");
    assert_eq!(e.position, 8);
    assert!(e.message.contains("found the end of the filter"), "{e}");
    let e = error("tcp.flags has SYNN");
    assert_eq!(e.suggestion.as_deref(), Some("SYN"));
    let e = error(r#"flow.status == "droped""#);
    assert_eq!(e.suggestion.as_deref(), Some("dropped"));
    assert!(error("dns.name = \"abc").message.contains("unterminated"));
    let rendered = error("dns.rcod = 3").render("dns.rcod = 3");
    assert!(rendered.ends_with("\n  dns.rcod = 3\n  ^"), "{rendered}");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Pieces filters are made of, so that generated input often gets deep
    /// into the parser, not only the lexer.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("dns.rcode".to_string()),
            Just("src.addr".to_string()),
            Just("tcp.flags".to_string()),
            Just("rtt".to_string()),
            Just("flow.status".to_string()),
            Just("dns.name".to_string()),
            Just("=".to_string()),
            Just("!=".to_string()),
            Just(">".to_string()),
            Just("=~".to_string()),
            Just("in".to_string()),
            Just("has".to_string()),
            Just("and".to_string()),
            Just("or".to_string()),
            Just("not".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just(",".to_string()),
            Just("\"".to_string()),
            Just("NXDomain".to_string()),
            Just("198.18.0.0/15".to_string()),
            Just("50ms".to_string()),
            Just("3".to_string()),
            "[a-z0-9_.:/\\\\*+?()\\[\\]\"' -]{0,8}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn parsing_never_panics(pieces in proptest::collection::vec(piece(), 0..12)) {
            let text = pieces.join(" ");
            match Filter::parse(&text) {
                Ok(filter) => {
                    for (_, r) in records() {
                        let _ = filter.matches_json(&r);
                    }
                }
                Err(e) => {
                    prop_assert!(e.position <= text.chars().count());
                    let _ = e.render(&text);
                }
            }
            let cursor = text.chars().count() / 2;
            let _ = flowlens_query::complete(&text, cursor);
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = Filter::parse(&text);
            let _ = flowlens_query::complete(&text, text.len());
        }
    }
}

/// Hostile nesting: filters thousands of levels deep are refused with the
/// limit and the place it was hit, never a stack overflow — parsed,
/// completed and evaluated on a thread with a small stack (64 KiB, a
/// thirty-second of a tokio worker's).
mod nesting {
    use super::fixture::records;
    use flowlens_query::{Filter, MAX_FILTER_BYTES, MAX_FILTER_DEPTH, complete};
    use proptest::prelude::*;

    const SMALL_STACK: usize = 64 * 1024;

    fn on_small_stack(work: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(SMALL_STACK)
            .spawn(work)
            .unwrap()
            .join()
            .expect("the work panicked");
    }

    /// One level of nesting in each of the forms the language has.
    fn opener() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("("),
            Just("not "),
            Just("!"),
            Just("( not "),
            Just("(src.port = 1 or ")
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn deep_filters_are_an_error_not_a_crash(
            openers in proptest::collection::vec(opener(), (MAX_FILTER_DEPTH + 1)..3000),
            closed in any::<bool>(),
        ) {
            let mut text: String = openers.concat();
            text.push_str("proto = udp");
            if closed {
                for o in &openers {
                    text.push_str(&")".repeat(o.matches('(').count()));
                }
            }
            on_small_stack(move || {
                let result = Filter::parse(&text);
                if text.len() > MAX_FILTER_BYTES {
                    let e = result.unwrap_err();
                    assert!(e.message.contains("limit"), "{e}");
                } else {
                    let e = result.unwrap_err();
                    assert!(e.message.contains(&format!("limit of {MAX_FILTER_DEPTH} levels")), "{e}");
                    assert!(e.position < text.chars().count());
                }
                let _ = complete(&text, text.chars().count());
                let _ = complete(&text, text.chars().count() / 2);
            });
        }
    }

    #[test]
    fn the_deepest_allowed_filter_parses_evaluates_and_drops_on_a_small_stack() {
        on_small_stack(|| {
            let text = format!(
                "{}proto = udp{}",
                "(not ".repeat(MAX_FILTER_DEPTH / 2),
                ")".repeat(MAX_FILTER_DEPTH / 2)
            );
            let filter = Filter::parse(&text).unwrap();
            for (_, r) in records() {
                let _ = filter.matches_json(&r);
            }
            drop(filter);
            let one_more = format!("not {text}");
            let e = Filter::parse(&one_more).unwrap_err();
            // `not ` + 63 × `(not ` + `(`, then the `not` one level too deep.
            assert_eq!(e.position, 4 + (MAX_FILTER_DEPTH / 2 - 1) * 5 + 1);
        });
    }

    #[test]
    fn long_filters_and_names_are_refused_cheaply() {
        let long = format!("src.port = 1{}", " or src.port = 1".repeat(2000));
        let e = Filter::parse(&long).unwrap_err();
        assert!(e.message.contains("16384 bytes"), "{e}");
        assert_eq!(e.position, MAX_FILTER_BYTES);
        let name = "x".repeat(30_000);
        let started = std::time::Instant::now();
        let e = Filter::parse(&format!("{} = 1", &name[..16_000])).unwrap_err();
        assert!(e.message.starts_with("unknown field"), "{e}");
        assert!(e.suggestion.is_none());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
