//! Canonical leaf encoding: each log entry is one event, with the server's
//! timestamp, as RFC 8785 (JCS) canonical JSON, so that anyone holding the
//! event can rebuild the exact bytes whose leaf hash is in the tree.

use serde_json::{Map, Value};

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
        let mut leaf = Map::new();
        leaf.insert("v".into(), Value::from(LEAF_VERSION));
        leaf.insert("kind".into(), Value::from(self.kind));
        leaf.insert("at_ms".into(), Value::from(self.at_ms));
        leaf.insert("payload".into(), self.payload.clone());
        canonical_json(&Value::Object(leaf))
    }

    /// The leaf's RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> Result<Hash, Error> {
        Ok(leaf_hash(&self.encode()?))
    }
}

/// RFC 8785 canonical JSON of `value`: members sorted by UTF-16 code units,
/// no whitespace, numbers in ECMAScript form, minimal string escapes.
/// Refuses integers a double cannot hold exactly (|n| > 2^53 - 1).
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, Error> {
    check_numbers(value)?;
    serde_json_canonicalizer::to_vec(value).map_err(|e| Error::Encoding(e.to_string()))
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
