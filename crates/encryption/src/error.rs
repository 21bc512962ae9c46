//! The one error type of the crate, grouped by who is at fault (protocol.md §7, "Server
//! side"). The server maps each variant to exactly one Tencent error code; the mapping
//! is given on every variant.

/// Everything that can go wrong while handling an `Encryption` envelope.
///
/// Messages never contain key material, ciphertext or plaintext: only parameter names
/// and the shape that was expected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EncryptionError {
    /// `Encryption.Algorithm` is neither `AES-256-CBC` nor `SM4-GCM`.
    /// Server: `InvalidParameterValue`.
    #[error("Encryption.Algorithm must be AES-256-CBC or SM4-GCM")]
    UnknownAlgorithm,

    /// A field listed in `Encryption.EncryptList` may not be encrypted for this action.
    /// Server: `InvalidParameter.UnsupportEncryptField`.
    #[error("the field {0} does not support encryption")]
    UnsupportedField(String),

    /// A field listed in `Encryption.EncryptList` is absent from the request.
    /// Server: `MissingParameter`.
    #[error("the encrypted field {0} is missing")]
    MissingField(String),

    /// The envelope does not have the documented shape (protocol.md §6.5): `Encryption`
    /// is not an object, `EncryptList`/`TagList` are not lists of strings, `CiphertextBlob`
    /// or `Iv` is missing, the SM4-GCM `TagList` does not pair up with `EncryptList`, a
    /// listed field is not a string. Server: `InvalidParameter`.
    #[error("invalid Encryption parameter: {0}")]
    MalformedEnvelope(String),

    /// Any cryptographic failure: bad Base64 in `CiphertextBlob`/`Iv`/a field, RSA or SM2
    /// unwrap failure, wrong data-key length, bad CBC padding, GCM tag mismatch, plaintext
    /// that is not UTF-8. Deliberately a single opaque variant, reached at the same point
    /// for every kind of bad ciphertext, so that it is no padding oracle (protocol.md §7).
    /// Server: `FailedOperation.DecryptSystemError`.
    #[error("decryption failed")]
    Decrypt,

    /// Server-side key problems: generation, (de)serialisation, an unusable public key
    /// given to [`crate::encrypt_params`], a failing random number generator. Not caused
    /// by a request. Server: `InternalError` / the CLI reports it.
    #[error("key error: {0}")]
    Key(String),
}

impl EncryptionError {
    pub(crate) fn unsupported_field(name: &str) -> Self {
        Self::UnsupportedField(echo(name))
    }

    pub(crate) fn missing_field(name: &str) -> Self {
        Self::MissingField(echo(name))
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::MalformedEnvelope(message.into())
    }

    pub(crate) fn key(message: impl Into<String>) -> Self {
        Self::Key(message.into())
    }
}

/// A client-supplied field name, safe to echo: a card number sent in `EncryptList`
/// (where a field name belongs) was echoed back in `UnsupportEncryptField`'s message;
/// [`cardcheck_redact::sanitize_echo`] redacts digit runs and control characters and
/// cuts at 64 characters, as every other echo does.
pub(crate) fn echo(name: &str) -> String {
    cardcheck_redact::sanitize_echo(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project standard)
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let name = "名".repeat(100);
        let EncryptionError::UnsupportedField(echoed) = EncryptionError::unsupported_field(&name)
        else {
            panic!("wrong variant");
        };
        assert_eq!(echoed.chars().count(), cardcheck_redact::ECHO_MAX_CHARS + 1);
        assert!(echoed.ends_with('…'));
        assert_eq!(echo("Name"), "Name");
    }

    /// `UnsupportEncryptField` echoed a card number listed in `EncryptList`.
    #[test]
    fn a_card_number_listed_as_a_field_is_not_echoed() {
        for listed in [
            "6225768888888888",
            "６２２５７６８８８８８８８８８８",
            "Name 6225 7688 8888 8888",
        ] {
            let EncryptionError::UnsupportedField(echoed) =
                EncryptionError::unsupported_field(listed)
            else {
                panic!("wrong variant");
            };
            assert!(!echoed.contains("8888"), "{echoed}");
            assert!(!echoed.contains("８８８８"), "{echoed}");
            assert!(echoed.contains("(redacted)"), "{echoed}");
        }
        assert_eq!(echo("Bank\nCard\u{1b}[2J`"), "Bank?Card?[2J?");
    }
}
