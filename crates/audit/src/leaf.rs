//! Canonical leaf encoding: each log entry is one event, with the server's
//! timestamp, as RFC 8785 (JCS) canonical JSON, so that anyone holding the
//! event can rebuild the exact bytes whose leaf hash is in the tree.

use serde_json::Value;

use crate::hash::{leaf_hash, Hash};
use crate::Error;

/// Version of the leaf layout, written into every leaf.
pub const LEAF_VERSION: u64 = 1;

/// Integers beyond ±2^53 do not survive JSON's IEEE double (JCS writes
/// every number as one), so such a leaf would not mean what it says.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// One event of the audit log: a notification, acknowledgement, message...
///
/// Encoded as `{"at_ms":…,"kind":…,"payload":…,"v":1}` in JCS form. The
/// time is Unix milliseconds, an integer, because a timestamp string has
/// many spellings for one instant and a leaf must have exactly one.
#[derive(Clone, Copy, Debug)]
pub struct LeafEvent<'a> {
    /// What happened, e.g. `activity.notified`, `conflict.acked`.
    pub kind: &'a str,
    /// The server's clock when it logged the event (passed in: this crate
    /// reads no clock).
    pub at_ms: i64,
    /// The event's content.
    pub payload: &'a Value,
}

impl LeafEvent<'_> {
    /// The leaf's exact bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        if self.kind.is_empty() {
            return Err(Error::Encoding("empty event kind".into()));
        }
        if self.at_ms.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(Error::Encoding("timestamp beyond 2^53 ms".into()));
        }
        // The leaf's members in JCS order (`at_ms` < `kind` < `payload` <
        // `v`), written around the payload without copying it.
        check_numbers(self.payload)?;
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"at_ms\":");
        write_number(&mut out, self.at_ms as f64);
        out.extend_from_slice(b",\"kind\":");
        write_string(&mut out, self.kind);
        out.extend_from_slice(b",\"payload\":");
        write_value(&mut out, self.payload);
        out.extend_from_slice(b",\"v\":");
        write_number(&mut out, LEAF_VERSION as f64);
        out.push(b'}');
        Ok(out)
    }

    /// The leaf's RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> Result<Hash, Error> {
        Ok(leaf_hash(&self.encode()?))
    }
}

/// RFC 8785 canonical JSON of `value`: members sorted by UTF-16 code units,
/// no whitespace, numbers in ECMAScript form, minimal string escapes.
/// Refuses integers a double cannot hold exactly (|n| > 2^53 - 1).
///
/// Written here rather than through a generic JCS serializer: that one
/// buffered every member and parsed each key back from JSON to sort it,
/// and the driver encodes a leaf per conflict and acknowledgement record
/// (a third of its time). The tests hold it byte-identical to
/// `serde_json_canonicalizer` on the RFC's examples and random values.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, Error> {
    check_numbers(value)?;
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    Ok(out)
}

/// Writes `value` in JCS form; its numbers were checked
/// ([`check_numbers`]). Recursion depth is the value's nesting, which
/// serde_json's parser bounds (128).
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // JCS writes every number as the IEEE double it denotes (an
        // integer converted as `as f64` does), in ECMAScript's form.
        Value::Number(n) => write_number(out, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Members sort by their keys' UTF-16 code units (RFC 8785
            // §3.2.3), which differs from the map's UTF-8 order only for
            // keys beyond U+E000; sorting a handful of references is cheap.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (at, (key, item)) in members.into_iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// ECMAScript's shortest round-trip form of a finite double (`-0` is
/// `0`). serde_json's numbers are finite; a non-finite one cannot occur.
fn write_number(out: &mut Vec<u8>, value: f64) {
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format(value).as_bytes());
}

/// A JSON string with JCS's minimal escapes: `"` and `\\`, the five
/// short control escapes, other controls as `\u00xx` (lower-case hex);
/// everything else as its UTF-8 bytes.
fn write_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(escape);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn check_numbers(value: &Value) -> Result<(), Error> {
    // Iterative, so a deep value cannot overflow the stack here.
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) => {
                let unsafe_int = match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => u > MAX_SAFE_INTEGER,
                    (None, Some(i)) => i.unsigned_abs() > MAX_SAFE_INTEGER,
                    (None, None) => false, // a float: JCS formats it exactly
                };
                if unsafe_int {
                    return Err(Error::Encoding(format!(
                        "integer {n} is beyond what JSON numbers hold exactly (2^53)"
                    )));
                }
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            Value::Null | Value::Bool(_) | Value::String(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn jcs(v: &Value) -> String {
        String::from_utf8(canonical_json(v).unwrap()).unwrap()
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // RFC 8785 §3.2.2: the input of the example with mixed types.
        let input: Value = serde_json::from_str(
            r#"{
              "numbers": [333333333.33333329, 1E30, 4.50,
                          2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
        )
        .unwrap();
        assert_eq!(
            jcs(&input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        // RFC 8785 §3.2.3: keys sort by UTF-16 code units, not by UTF-8 bytes.
        let input: Value = serde_json::from_str(
            r#"{
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }"#,
        )
        .unwrap();
        let order: Vec<&str> = vec![
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ];
        let out = jcs(&input);
        let positions: Vec<usize> = order.iter().map(|s| out.find(s).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    #[test]
    fn rfc8785_number_samples() {
        // RFC 8785 Appendix B samples (IEEE 754 → ECMAScript).
        for (bits, want) in [
            (0x0000000000000000u64, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555555, "333333333.3333333"),
        ] {
            let v = Value::from(f64::from_bits(bits));
            assert_eq!(jcs(&v), want, "{bits:#x}");
        }
    }

    #[test]
    fn leaf_event_is_canonical_and_stable() {
        let payload = json!({"z": 1, "a": {"y": [3, 2.5, "é"], "b": null}});
        let ev = LeafEvent {
            kind: "activity.notified",
            at_ms: 1_700_000_000_123,
            payload: &payload,
        };
        let bytes = ev.encode().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"at_ms":1700000000123,"kind":"activity.notified","payload":{"a":{"b":null,"y":[3,2.5,"é"]},"z":1},"v":1}"#
        );
        // Same event from differently ordered JSON text: same bytes.
        let reordered: Value =
            serde_json::from_str(r#"{"a":{"b":null,"y":[3,2.50,"\u00e9"]},"z":1.0}"#).unwrap();
        let ev2 = LeafEvent {
            payload: &reordered,
            ..ev
        };
        assert_eq!(ev2.encode().unwrap(), bytes);
        assert_eq!(ev.leaf_hash().unwrap(), leaf_hash(&bytes));
    }

    fn any_value() -> impl Strategy<Value = Value> {
        // Keys and strings from a mix of ASCII, controls, escapes, and
        // characters on both sides of UTF-16's surrogate range, where its
        // order differs from UTF-8's.
        let text = proptest::collection::vec(
            prop_oneof![
                proptest::char::range('\u{0}', '\u{7f}'),
                Just('"'),
                Just('\\'),
                proptest::char::range('\u{80}', '\u{7ff}'),
                proptest::char::range('\u{e000}', '\u{ffff}'),
                proptest::char::range('\u{10000}', '\u{10ffff}'),
            ],
            0..6,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>());
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-(MAX_SAFE_INTEGER as i64)..=MAX_SAFE_INTEGER as i64).prop_map(Value::from),
            (0..=MAX_SAFE_INTEGER).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            text.clone().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn writes_the_bytes_of_the_generic_jcs_serializer(value in any_value()) {
            let generic = serde_json_canonicalizer::to_vec(&value).unwrap();
            prop_assert_eq!(canonical_json(&value).unwrap(), generic.clone());
            // And a leaf is the generic serializer's bytes of the whole event.
            let ev = LeafEvent { kind: "k\u{1}é", at_ms: -1_234, payload: &value };
            let whole = json!({"v": LEAF_VERSION, "kind": "k\u{1}é", "at_ms": -1_234, "payload": value});
            prop_assert_eq!(ev.encode().unwrap(), serde_json_canonicalizer::to_vec(&whole).unwrap());
        }
    }

    #[test]
    fn refuses_what_json_cannot_hold() {
        let big = json!({"n": 9_007_199_254_740_993u64});
        assert!(canonical_json(&big).is_err());
        assert!(canonical_json(&json!([-9_007_199_254_740_993i64])).is_err());
        assert!(canonical_json(&json!(9_007_199_254_740_991u64)).is_ok());
        let p = json!({});
        let ev = |kind, at_ms| LeafEvent {
            kind,
            at_ms,
            payload: &p,
        };
        assert!(ev("", 0).encode().is_err());
        assert!(ev("k", i64::MAX).encode().is_err());
        assert!(ev("k", -1).encode().is_ok());
    }
}
