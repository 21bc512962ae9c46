//! Shape checks of the `Encryption` parameter (protocol.md §6.5) in both wire forms: the
//! JSON body (an object with arrays) and a GET/form request unflattened by the server
//! (protocol.md §2.3: every leaf a string, arrays as JSON arrays of strings, empty arrays
//! absent). The `Encryption` members are all strings or lists of strings, so the two
//! forms differ only in empty lists being absent; `null` is treated as absent too
//! (protocol.md §8.6).

use serde_json::{Map, Value};

use crate::error::echo;
use crate::{Algorithm, EncryptionError};

/// A well-formed, non-empty `Encryption` envelope.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// `EncryptList`: names of the fields that hold ciphertext, unique, non-empty.
    pub(crate) fields: Vec<String>,
    pub(crate) algorithm: Algorithm,
    /// `CiphertextBlob`, still Base64: it is also the cache key and the input of the
    /// pseudo key, and decoding it belongs to the crypto step (bad Base64 must end in the
    /// same `Decrypt` error as any other bad blob).
    pub(crate) blob: String,
    /// `Iv`, still in its wire form (Base64 or a 16-character string).
    pub(crate) iv: String,
    /// `TagList`: one Base64 tag per field for SM4-GCM; ignored for AES-256-CBC.
    pub(crate) tags: Vec<String>,
}

/// Validates `Encryption`. `Ok(None)` means an empty (or absent) `EncryptList`: the fields
/// are plaintext (the Node helper's response-only mode, protocol.md §7).
pub(crate) fn parse(
    encryption: &Value,
    allowed_fields: &[&str],
) -> Result<Option<Envelope>, EncryptionError> {
    let Value::Object(obj) = encryption else {
        return Err(EncryptionError::malformed("Encryption must be an object"));
    };
    let fields = string_list(obj, "EncryptList")?;
    // An empty Algorithm is treated as absent: Go's v1 signer sends empty values
    // (protocol.md §2.2 quirks) and an empty name cannot mean anything else.
    let algorithm = Algorithm::parse(optional_string(obj, "Algorithm")?.filter(|a| !a.is_empty()))?;
    let tags = string_list(obj, "TagList")?;
    if fields.is_empty() {
        return Ok(None);
    }

    for (i, field) in fields.iter().enumerate() {
        if fields[..i].contains(field) {
            return Err(EncryptionError::malformed(format!(
                "Encryption.EncryptList lists {} twice",
                echo(field)
            )));
        }
        if !allowed_fields.contains(&field.as_str()) {
            return Err(EncryptionError::unsupported_field(field));
        }
    }
    let blob = required_string(obj, "CiphertextBlob")?;
    let iv = required_string(obj, "Iv")?;
    if algorithm == Algorithm::Sm4Gcm && tags.len() != fields.len() {
        return Err(EncryptionError::malformed(
            "Encryption.TagList must hold one tag per Encryption.EncryptList entry",
        ));
    }
    Ok(Some(Envelope {
        fields,
        algorithm,
        blob,
        iv,
        tags,
    }))
}

/// The ciphertext strings of the listed fields, in `EncryptList` order.
pub(crate) fn ciphertexts<'p>(
    params: &'p Map<String, Value>,
    envelope: &Envelope,
) -> Result<Vec<&'p str>, EncryptionError> {
    envelope
        .fields
        .iter()
        .map(|field| match params.get(field) {
            None | Some(Value::Null) => Err(EncryptionError::missing_field(field)),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(EncryptionError::malformed(format!(
                "the encrypted field {} must be a string",
                echo(field)
            ))),
        })
        .collect()
}

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, EncryptionError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EncryptionError::malformed(format!(
            "Encryption.{name} must be a string"
        ))),
    }
}

fn required_string(obj: &Map<String, Value>, name: &str) -> Result<String, EncryptionError> {
    match optional_string(obj, name)? {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(EncryptionError::malformed(format!(
            "Encryption.{name} is required"
        ))),
    }
}

fn string_list(obj: &Map<String, Value>, name: &str) -> Result<Vec<String>, EncryptionError> {
    let not_a_list =
        || EncryptionError::malformed(format!("Encryption.{name} must be a list of strings"));
    match obj.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(not_a_list))
            .collect(),
        Some(_) => Err(not_a_list()),
    }
}
