//! RFC 8785 (JCS) written directly, for the audit leaves the driver writes
//! several times per notification (the activity, a conflict change, its acknowledgement
//! record): building a `serde_json::Value` tree and walking it with
//! `LeafEvent::encode` was most of those leaves' cost on the driver's
//! thread. Each caller writes its members in JCS order (keys sorted), and
//! a unit test beside it holds its bytes identical to `LeafEvent::encode`.

use deconflict_audit::Error;
use serde_json::Value;

/// A JCS writer for the value kinds the service's leaves hold, with
/// `canonical_json`'s limits: integers within ±(2^53 − 1) (written as
/// digits, which is what ECMAScript prints for them), doubles in
/// ECMAScript's shortest form (`ryu-js`, as the audit crate; a non-finite
/// one is `null`, as in a `Value`), strings with JCS's escapes.
pub(crate) struct Jcs(Vec<u8>);

impl Jcs {
    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

    /// Starts a leaf `{"at_ms":…,"kind":…,"payload":` (JCS order); the
    /// caller writes the payload, then [`Jcs::end_leaf`].
    pub(crate) fn leaf(kind: &str, at_ms: i64, capacity: usize) -> Result<Jcs, Error> {
        if kind.is_empty() {
            return Err(Error::Encoding("empty event kind".into()));
        }
        let mut jcs = Jcs(Vec::with_capacity(capacity));
        jcs.raw(b"{\"at_ms\":");
        jcs.int(at_ms)?;
        jcs.raw(b",\"kind\":");
        jcs.string(kind)?;
        jcs.raw(b",\"payload\":");
        Ok(jcs)
    }

    /// Closes a leaf begun by [`Jcs::leaf`] after its payload.
    pub(crate) fn end_leaf(mut self) -> Vec<u8> {
        self.raw(b",\"v\":");
        // A small constant: no limit to check.
        let _ = self.uint(deconflict_audit::leaf::LEAF_VERSION);
        self.raw(b"}");
        self.0
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn uint(&mut self, value: u64) -> Result<(), Error> {
        if value > Self::MAX_SAFE_INTEGER {
            return Err(Error::Encoding(format!(
                "integer {value} is beyond what JSON numbers hold exactly (2^53)"
            )));
        }
        use std::io::Write as _;
        let _ = write!(self.0, "{value}");
        Ok(())
    }

    pub(crate) fn int(&mut self, value: i64) -> Result<(), Error> {
        if value < 0 {
            self.0.push(b'-');
        }
        self.uint(value.unsigned_abs())
    }

    pub(crate) fn opt_int(&mut self, value: Option<i64>) -> Result<(), Error> {
        match value {
            Some(value) => self.int(value),
            None => {
                self.raw(b"null");
                Ok(())
            }
        }
    }

    pub(crate) fn float(&mut self, value: f64) {
        if value.is_finite() {
            let mut buffer = ryu_js::Buffer::new();
            self.raw(buffer.format_finite(value).as_bytes());
        } else {
            self.raw(b"null");
        }
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.raw(if value { b"true" } else { b"false" });
    }

    /// A string as is when it needs no escape (the service's own names),
    /// else through `canonical_json`.
    pub(crate) fn string(&mut self, text: &str) -> Result<(), Error> {
        if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.0.push(b'"');
            self.raw(text.as_bytes());
            self.0.push(b'"');
        } else {
            let escaped = deconflict_audit::canonical_json(&Value::String(text.to_owned()))?;
            self.raw(&escaped);
        }
        Ok(())
    }
}

/// Asserts that a leaf written directly is byte for byte the leaf
/// `LeafEvent::encode` gives for the same event (compared as text, so that a
/// failure shows where they differ).
#[cfg(test)]
pub(crate) fn assert_same_leaf(direct: Vec<u8>, kind: &str, at_ms: i64, payload: &Value) {
    let expected = deconflict_audit::LeafEvent { kind, at_ms, payload }
        .encode()
        .unwrap();
    assert_eq!(
        String::from_utf8(direct).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}
