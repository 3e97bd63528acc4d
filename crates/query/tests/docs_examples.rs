//! Every filter example of docs/query.md selects what the docs say.

mod fixture;

#[test]
fn the_documented_examples_return_what_the_docs_say() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/query.md");
    let doc = std::fs::read_to_string(path).expect("docs/query.md");
    let block = doc
        .split("```filter-examples\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a filter-examples block");
    let mut checked = 0;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (filter, want) = line.split_once("#=>").expect("FILTER #=> records");
        let want: Vec<&str> = want
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(
            fixture::selected(filter.trim()),
            want,
            "docs example `{}`",
            filter.trim()
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} examples found");
}

#[test]
fn the_documented_error_messages_are_the_real_ones() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/query.md"))
        .unwrap();
    for filter in ["dns.rcod = 3", "dns.rcode = NXDomian"] {
        let e = flowlens_query::Filter::parse(filter).unwrap_err();
        assert!(
            doc.contains(&format!("error: {e}")),
            "docs/query.md lacks `error: {e}`"
        );
    }
}
