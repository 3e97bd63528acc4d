//! Decoding what the kernel captured of DNS messages: the question (name and
//! type, as on the wire) and the response code.

pub use flowlens_model::names::rcode_name;

pub fn qtype_name(qtype: u16) -> String {
    let known = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{qtype}"),
    };
    known.to_string()
}

/// A decoded question: the name (dotted, bytes outside printable ASCII
/// escaped as \DDD, "..." appended when the capture ended inside it) and the
/// query type when the capture reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: Option<u16>,
}

pub fn decode_question(wire: &[u8]) -> Question {
    let mut labels: Vec<String> = Vec::new();
    let mut at = 0;
    loop {
        let Some(&len) = wire.get(at) else {
            return Question {
                name: labels.join(".") + "...",
                qtype: None,
            };
        };
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 {
            // A compression pointer has no place in a question; stop here.
            return Question {
                name: labels.join("."),
                qtype: None,
            };
        }
        let end = at + 1 + len as usize;
        let Some(label) = wire.get(at + 1..end) else {
            let partial = escape(&wire[(at + 1).min(wire.len())..]);
            labels.push(partial);
            return Question {
                name: labels.join(".") + "...",
                qtype: None,
            };
        };
        labels.push(escape(label));
        at = end;
    }
    let name = if labels.is_empty() {
        ".".to_string()
    } else {
        labels.join(".")
    };
    let qtype = wire
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]));
    Question { name, qtype }
}

fn escape(label: &[u8]) -> String {
    label
        .iter()
        .map(|&b| match b {
            b'.' | b'\\' => format!("\\{}", b as char),
            0x21..=0x7e => (b as char).to_string(),
            _ => format!("\\{b:03}"),
        })
        .collect()
}

/// A standard query (recursion desired) for the A record of `name` with
/// id `id`, in wire format: what the demo's workloads and the tests send.
pub fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str, qtype: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out
    }

    #[test]
    fn a_query_is_a_header_and_the_question() {
        let q = a_query(0x1234, "a.demo");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], wire("a.demo", 1));
    }

    #[test]
    fn decodes_names_and_types() {
        assert_eq!(
            decode_question(&wire("www.example.test", 28)),
            Question {
                name: "www.example.test".into(),
                qtype: Some(28)
            }
        );
        assert_eq!(qtype_name(28), "AAAA");
        assert_eq!(qtype_name(99), "TYPE99");
        assert_eq!(rcode_name(0x8183), "NXDomain");
        assert_eq!(rcode_name(0x8182), "ServFail");
    }

    #[test]
    fn truncated_capture_is_marked() {
        let long = wire(&format!("{}.example.test", "a".repeat(60)), 1);
        let q = decode_question(&long[..40]);
        assert!(q.name.ends_with("...") && q.qtype.is_none(), "{q:?}");
        assert_eq!(decode_question(b"\x03a b\x00\x00\x01").name, "a\\032b");
    }
}
