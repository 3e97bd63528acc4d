//! Enum names from the running kernel's BTF (/sys/kernel/btf/vmlinux), so
//! that drop reasons added by newer kernels need no code change here.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    let bytes = data.get(at..at + 4).context("BTF truncated")?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

fn c_string(strings: &[u8], offset: usize) -> String {
    let rest = strings.get(offset..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

/// Bytes that follow a type's 12-byte header, by kind (see the kernel's
/// Documentation/bpf/btf.rst).
fn trailing_bytes(kind: u32, vlen: usize) -> Result<usize> {
    Ok(match kind {
        1 | 14 | 17 => 4,          // INT, VAR, DECL_TAG
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        3 => 12,                   // ARRAY
        4 | 5 | 15 => 12 * vlen,   // STRUCT, UNION, DATASEC
        6 | 13 => 8 * vlen,        // ENUM, FUNC_PROTO
        19 => 12 * vlen,           // ENUM64
        other => bail!("unknown BTF kind {other}"),
    })
}

/// Value -> name of the enum called `enum_name` in the BTF blob `data`.
pub fn enum_values(data: &[u8], enum_name: &str) -> Result<HashMap<u64, String>> {
    if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
        bail!("not a BTF blob");
    }
    let hdr_len = u32_at(data, 4)? as usize;
    let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
    let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
    let types = data
        .get(hdr_len + type_off..hdr_len + type_off + type_len)
        .context("BTF types")?;
    let strings = data
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .context("BTF strings")?;
    let mut at = 0;
    while at + 12 <= types.len() {
        let name_off = u32_at(types, at)? as usize;
        let info = u32_at(types, at + 4)?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let body = at + 12;
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && c_string(strings, name_off) == enum_name {
            let step = if kind == KIND_ENUM { 8 } else { 12 };
            let mut values = HashMap::new();
            for i in 0..vlen {
                let member = body + i * step;
                let name = c_string(strings, u32_at(types, member)? as usize);
                let value = if kind == KIND_ENUM {
                    u32_at(types, member + 4)? as u64
                } else {
                    u32_at(types, member + 4)? as u64 | (u32_at(types, member + 8)? as u64) << 32
                };
                values.insert(value, name);
            }
            return Ok(values);
        }
        at = body + trailing_bytes(kind, vlen)?;
    }
    bail!("enum {enum_name} not found in BTF")
}

/// The running kernel's `enum skb_drop_reason`: value -> SKB_DROP_REASON_* name.
pub fn kernel_drop_reasons() -> Result<HashMap<u64, String>> {
    let data =
        std::fs::read("/sys/kernel/btf/vmlinux").context("reading /sys/kernel/btf/vmlinux")?;
    enum_values(&data, "skb_drop_reason")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_drop_reasons_of_this_kernel() {
        let Ok(reasons) = kernel_drop_reasons() else {
            panic!("this kernel must expose BTF at /sys/kernel/btf/vmlinux");
        };
        assert_eq!(
            reasons.get(&2).map(String::as_str),
            Some("SKB_DROP_REASON_NOT_SPECIFIED")
        );
        assert!(
            reasons
                .values()
                .any(|n| n == "SKB_DROP_REASON_NETFILTER_DROP")
        );
    }
}
