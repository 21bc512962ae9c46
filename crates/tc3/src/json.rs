//! JSON for the wire: a strict object parser for TC3 POST bodies (duplicate keys are
//! `InvalidParameter`, §2.3 / issue) and a byte-exact emulation of Python's
//! `json.dumps` for the signer (§1.1: `", "` / `": "` separators, `\uXXXX` escapes).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{ApiError, sanitize_name};

/// Marker prefix of the serde error raised for a duplicate key.
const DUP: &str = "\u{0}duplicate key:";

/// Parses a TC3 POST body into its top-level object. The body must be UTF-8 and a
/// JSON object without duplicate keys at any depth; an empty body is `{}`.
/// Error messages never echo body content (it may hold card numbers).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid_parameter("The request body is not valid UTF-8."))?;
    match serde_json::from_str::<Strict>(text) {
        Ok(Strict(Value::Object(m))) => Ok(m),
        Ok(_) => Err(ApiError::invalid_parameter(
            "The request body must be a JSON object.",
        )),
        Err(e) => {
            let msg = e.to_string();
            if let Some(rest) = msg.strip_prefix(DUP) {
                let key = rest.split(" at line ").next().unwrap_or_default();
                Err(ApiError::invalid_parameter(format!(
                    "The parameter `{key}` is duplicated in the request body."
                )))
            } else {
                Err(ApiError::invalid_parameter(format!(
                    "The request body is not valid JSON (line {}, column {}).",
                    e.line(),
                    e.column()
                )))
            }
        }
    }
}

/// A `Value` whose objects were checked for duplicate keys while parsing.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format_args!(
                    "{DUP}{}",
                    sanitize_name(&k)
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Python's `json.dumps(obj)` with default arguments (`ensure_ascii=True`,
/// separators `", "` and `": "`). `null` object members are dropped first, as the
/// Python SDK's model `_serialize()` omits `None` at every depth (§8.6).
/// Floats use Rust's shortest representation, which matches Python's `repr` for
/// ordinary values but not for every exponent form (faceid has no float fields).
pub fn python_dumps(v: &Value) -> String {
    let mut out = String::new();
    dump(v, &mut out);
    out
}

fn dump(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => dump_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dump(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            let mut first = true;
            for (k, item) in m.iter().filter(|(_, v)| !v.is_null()) {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                dump_str(k, out);
                out.push_str(": ");
                dump(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `py_encode_basestring_ascii`: `"` `\` and the five short escapes, every
/// other character outside `' '..='~'` as `\uxxxx` (lower-case hex, UTF-16 units).
fn dump_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_dumps_matches_capture() {
        let v = json!({"Name": "张三", "BankCard": "6225768888888888"});
        assert_eq!(
            python_dumps(&v),
            r#"{"Name": "\u5f20\u4e09", "BankCard": "6225768888888888"}"#
        );
        assert_eq!(python_dumps(&json!({})), "{}");
        assert_eq!(
            python_dumps(&json!({"a": [1, true, null, "😀\u{7f}\"\\\n"], "b": null})),
            r#"{"a": [1, true, null, "\ud83d\ude00\u007f\"\\\n"]}"#
        );
    }

    #[test]
    fn strict_parse() {
        assert!(parse_object(br#"{"a":1,"b":{"c":[1,2]}}"#).is_ok());
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"\xff").is_err());
        let e = parse_object(br#"{"Name":"6225768888888888","Name":1}"#).unwrap_err();
        assert!(e.message(crate::Language::EnUs).contains("`Name`"));
        let e = parse_object(br#"{"6225768888888888":1,"6225768888888888":1}"#).unwrap_err();
        assert!(
            !e.message(crate::Language::EnUs)
                .contains("6225768888888888")
        );
    }
}
