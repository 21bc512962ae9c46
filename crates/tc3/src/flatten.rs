//! Flattening of nested parameters into `key=value` pairs and back (protocol.md §2.3),
//! used by v1 requests and TC3 GET requests.
//!
//! Object members are joined with `.`, array elements get 0-based indices, null
//! members are omitted, empty arrays produce no keys, values become strings.
//! Unflattening rebuilds objects and arrays: a node whose children are all decimal
//! indices is an array, and the indices must be exactly `0..n` (no gaps, no leading
//! zeros) — otherwise `InvalidParameter`. Flattened values stay strings; coercion to
//! model types is the server's job.

use serde_json::{Map, Value};

use crate::error::{ApiError, sanitize_name};

/// Deepest key accepted when unflattening (`a.b.c` has depth 3). Keeps the rebuild
/// bounded for hostile input; faceid parameters are at most 3 deep.
pub const MAX_DEPTH: usize = 32;

/// Flattens business parameters the way the Python SDK's `_format_params` does, in
/// field order: `Encryption.EncryptList.0=Name`, … Scalars are stringified like
/// Python's `str()`: booleans become `True`/`False`, numbers their decimal form.
pub fn flatten(params: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in params {
        flatten_into(k.clone(), v, &mut out);
    }
    out
}

fn flatten_into(prefix: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push((prefix, if *b { "True" } else { "False" }.to_owned())),
        Value::Number(n) => out.push((prefix, n.to_string())),
        Value::String(s) => out.push((prefix, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_into(format!("{prefix}.{i}"), item, out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                flatten_into(format!("{prefix}.{k}"), item, out);
            }
        }
    }
}

/// Rebuilds the nested structure from flattened pairs (in received order; object
/// members keep the order of their first key). Errors are `InvalidParameter`:
/// duplicate keys, empty key segments, a key used both as a value and as a parent,
/// array indices with gaps or leading zeros, mixed index/name children, keys deeper
/// than [`MAX_DEPTH`].
pub fn unflatten<I>(pairs: I) -> Result<Map<String, Value>, ApiError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut root = Map::new();
    for (key, value) in pairs {
        insert(&mut root, &key, value)?;
    }
    for (_, v) in root.iter_mut() {
        arrays_from_indices(v, 1)?;
    }
    Ok(root)
}

fn insert(root: &mut Map<String, Value>, key: &str, value: String) -> Result<(), ApiError> {
    let depth = key.split('.').count();
    if depth > MAX_DEPTH {
        return Err(ApiError::invalid_parameter(format!(
            "The parameter `{}` is nested too deeply.",
            sanitize_name(key)
        )));
    }
    if key.split('.').any(str::is_empty) {
        return Err(ApiError::invalid_parameter(format!(
            "The parameter name `{}` is malformed.",
            sanitize_name(key)
        )));
    }
    let conflict = || {
        ApiError::invalid_parameter(format!(
            "The parameter `{}` is duplicated or conflicts with another parameter.",
            sanitize_name(key)
        ))
    };
    let mut node = root;
    let mut segs = key.split('.').peekable();
    while let Some(seg) = segs.next() {
        if segs.peek().is_none() {
            if node.contains_key(seg) {
                return Err(conflict());
            }
            node.insert(seg.to_owned(), Value::String(value));
            return Ok(());
        }
        let child = node
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        node = match child {
            Value::Object(m) => m,
            _ => return Err(conflict()),
        };
    }
    Ok(())
}

/// Index segment: canonical decimal (`0`, `1`, … no leading zeros).
fn index_of(seg: &str) -> Option<Result<usize, ()>> {
    if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if seg.len() > 1 && seg.starts_with('0') {
        return Some(Err(()));
    }
    Some(seg.parse::<usize>().map_err(|_| ()))
}

fn arrays_from_indices(v: &mut Value, depth: usize) -> Result<(), ApiError> {
    let Value::Object(m) = v else { return Ok(()) };
    if depth > MAX_DEPTH {
        return Err(ApiError::invalid_parameter(
            "Parameters are nested too deeply.",
        ));
    }
    for (_, child) in m.iter_mut() {
        arrays_from_indices(child, depth + 1)?;
    }
    let numeric = m.keys().filter(|k| index_of(k).is_some()).count();
    if numeric == 0 {
        return Ok(());
    }
    let gap = || {
        ApiError::invalid_parameter(
            "Array indices of a flattened parameter must be contiguous from 0.",
        )
    };
    if numeric != m.len() {
        return Err(ApiError::invalid_parameter(
            "A flattened parameter mixes array indices and member names.",
        ));
    }
    let n = m.len();
    let mut slots: Vec<Option<Value>> = vec![None; n];
    for (k, child) in std::mem::take(m) {
        match index_of(&k) {
            Some(Ok(i)) if i < n => match slots.get_mut(i) {
                Some(slot) if slot.is_none() => *slot = Some(child),
                _ => return Err(gap()),
            },
            _ => return Err(gap()),
        }
    }
    let items: Option<Vec<Value>> = slots.into_iter().collect();
    *v = Value::Array(items.ok_or_else(gap)?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flatten_encryption_like_python() {
        let v = json!({"Name": "x", "Encryption": {"EncryptList": ["Name", "BankCard"],
            "Iv": "iv", "TagList": [], "Skip": null}, "CertType": 0, "Flag": true});
        let Value::Object(m) = v else { unreachable!() };
        assert_eq!(
            flatten(&m),
            pairs(&[
                ("Name", "x"),
                ("Encryption.EncryptList.0", "Name"),
                ("Encryption.EncryptList.1", "BankCard"),
                ("Encryption.Iv", "iv"),
                ("CertType", "0"),
                ("Flag", "True"),
            ])
        );
    }

    #[test]
    fn unflatten_rebuilds_arrays() {
        let m = unflatten(pairs(&[
            ("Name", "x"),
            ("Encryption.EncryptList.1", "BankCard"),
            ("Encryption.EncryptList.0", "Name"),
            ("Encryption.Iv", "iv"),
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"Name": "x", "Encryption": {"EncryptList": ["Name", "BankCard"], "Iv": "iv"}})
        );
    }

    #[test]
    fn unflatten_rejects_bad_shapes() {
        for bad in [
            &[("A.0", "x"), ("A.2", "y")][..],
            &[("A.1", "x")][..],
            &[("A.01", "x")][..],
            &[("A.0", "x"), ("A.b", "y")][..],
            &[("A", "x"), ("A.b", "y")][..],
            &[("A.b", "x"), ("A", "y")][..],
            &[("A", "x"), ("A", "y")][..],
            &[("A..b", "x")][..],
            &[("", "x")][..],
            &[("A.99999999999999999999999", "x")][..],
        ] {
            assert!(unflatten(pairs(bad)).is_err(), "{bad:?}");
        }
        let deep = vec!["a"; MAX_DEPTH + 1].join(".");
        assert!(unflatten(vec![(deep, "x".into())]).is_err());
    }
}
