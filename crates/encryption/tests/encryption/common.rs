//! Shared fixtures and helpers.

use std::sync::OnceLock;

use cardcheck_encryption::KeyRing;
use serde_json::{Map, Value};

pub const VECTORS: &str = include_str!("../fixtures/vectors.json");
pub const TEST_RSA_PEM: &str = include_str!("../fixtures/test_rsa_private_pkcs1.pem");
pub const FIELDS: &[&str] = cardcheck_encryption::BANK_CARD_2E_FIELDS;

pub fn vectors() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(VECTORS).unwrap())
}

pub fn v_str(path: &[&str]) -> &'static str {
    let mut v = vectors();
    for p in path {
        v = &v[*p];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("no string at {path:?}"))
}

/// The ring of the worked example's throwaway test keys (RSA-1024 + SM2 d).
pub fn test_ring() -> KeyRing {
    KeyRing::from_test_keys(TEST_RSA_PEM, v_str(&["sm2_private_key_hex"])).unwrap()
}

/// A freshly generated ring, generated once per test binary (RSA-2048 generation is
/// slow) and copied through to_bytes/from_bytes.
pub fn generated_ring() -> KeyRing {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| KeyRing::generate().unwrap().to_bytes().to_vec());
    KeyRing::from_bytes(bytes).unwrap()
}

/// The worked example's request body; `section` is "aes" or "sm4".
pub fn example_request(section: &str) -> Map<String, Value> {
    vectors()[section]["request"].as_object().unwrap().clone()
}

pub fn plaintext() -> Map<String, Value> {
    vectors()["plaintext"].as_object().unwrap().clone()
}

/// Mutable access to the Encryption object of a request.
pub fn enc(params: &mut Map<String, Value>) -> &mut Map<String, Value> {
    params
        .get_mut("Encryption")
        .unwrap()
        .as_object_mut()
        .unwrap()
}

/// Flattens as the SDKs do for v1 / TC3-GET (protocol.md §2.3: members joined with `.`,
/// 0-based indices, null omitted, empty arrays produce nothing, every value a string)
/// and unflattens as the server does (leaves strings, index objects → arrays).
pub fn flatten_unflatten(params: &Map<String, Value>) -> Map<String, Value> {
    let mut flat = Vec::new();
    for (k, v) in params {
        flatten(k.clone(), v, &mut flat);
    }
    let mut root = Value::Object(Map::new());
    for (key, value) in flat {
        let parts: Vec<&str> = key.split('.').collect();
        insert_path(&mut root, &parts, value);
    }
    match arrays_from_indices(root) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn flatten(prefix: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                flatten(format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(format!("{prefix}.{i}"), v, out);
            }
        }
        Value::String(s) => out.push((prefix, s.clone())),
        other => out.push((prefix, other.to_string())),
    }
}

fn insert_path(node: &mut Value, parts: &[&str], value: String) {
    let obj = node.as_object_mut().unwrap();
    if parts.len() == 1 {
        obj.insert(parts[0].to_owned(), Value::String(value));
    } else {
        let child = obj
            .entry(parts[0].to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        insert_path(child, &parts[1..], value);
    }
}

fn arrays_from_indices(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let is_array = !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string()));
            if is_array {
                let mut m = m;
                Value::Array(
                    (0..m.len())
                        .map(|i| arrays_from_indices(m.remove(&i.to_string()).unwrap()))
                        .collect(),
                )
            } else {
                Value::Object(
                    m.into_iter()
                        .map(|(k, v)| (k, arrays_from_indices(v)))
                        .collect(),
                )
            }
        }
        other => other,
    }
}
