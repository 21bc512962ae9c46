//! Credential material, the same for every backend: the SecretId/SecretKey/token
//! formats, a token's lifetime rule, account-name rules and the sealing of a new
//! SecretKey. Backends only store what [`NewCredential::generate`] produced.

use zeroize::Zeroizing;

use crate::secrets::MasterKey;
use crate::{CredentialKind, IssuedCredential, StoreError};

/// Now, Unix seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `AKID` + 32 alphanumerics, as Tencent's SecretIds look; keys are 32 alphanumerics.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rand::fill(&mut buf[..]);
        // Rejection sampling keeps the distribution uniform (248 = 4 × 62).
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
        }
    }
    out
}

pub(crate) fn validate_account_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(StoreError::Invalid(
            "an account name is 1 to 64 characters of letters, digits, '-', '_' and '.'".into(),
        ));
    }
    // A name the audit log would redact as a possible card number (12+ digits) was
    // stored and listed in clear but audited as `x(redacted)`: ambiguous, so refused.
    let redacted = cardcheck_redact::redact_digit_runs(
        name,
        cardcheck_redact::CARD_MIN_DIGITS,
        cardcheck_redact::REDACTED,
    );
    if matches!(redacted, std::borrow::Cow::Owned(_)) {
        return Err(StoreError::Invalid(format!(
            "an account name may not hold {} or more digits (it would look like a card number)",
            cardcheck_redact::CARD_MIN_DIGITS
        )));
    }
    Ok(())
}

/// SHA-256 of a session token: tokens are checked, never stored.
pub fn token_sha256(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// A freshly generated credential, its SecretKey already sealed for storage.
pub(crate) struct NewCredential {
    pub(crate) secret_id: String,
    pub(crate) secret_key: Zeroizing<String>,
    pub(crate) kind: CredentialKind,
    pub(crate) token: Option<String>,
    pub(crate) token_sha256: Option<[u8; 32]>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) sealed: Vec<u8>,
}

impl NewCredential {
    /// A permanent pair, or with `ttl_seconds` a temporary one with a session token.
    pub(crate) fn generate(key: &MasterKey, ttl_seconds: Option<i64>) -> Result<Self, StoreError> {
        let secret_id = format!("AKID{}", random_alphanumeric(32));
        let secret_key = Zeroizing::new(random_alphanumeric(32));
        let (kind, token, expires_at) = match ttl_seconds {
            None => (CredentialKind::Permanent, None, None),
            Some(ttl) if ttl > 0 => (
                CredentialKind::Temporary,
                Some(random_alphanumeric(96)),
                Some(now_unix().saturating_add(ttl)),
            ),
            Some(_) => {
                return Err(StoreError::Invalid(
                    "a token's lifetime must be positive".into(),
                ));
            }
        };
        Ok(NewCredential {
            sealed: key.seal_secret(&secret_id, secret_key.as_bytes()),
            token_sha256: token.as_deref().map(token_sha256),
            secret_id,
            secret_key,
            kind,
            token,
            expires_at,
        })
    }

    /// What the operator is shown, once.
    pub(crate) fn issued(self, account: &str) -> IssuedCredential {
        IssuedCredential {
            account: account.to_string(),
            secret_id: self.secret_id,
            secret_key: self.secret_key.to_string(),
            token: self.token,
            expires_at: self.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `account create x6225768888888888` was stored and listed in clear while the audit
    /// log showed `x(redacted)`.
    #[test]
    fn an_account_name_that_holds_a_card_number_is_refused() {
        for name in ["x6225768888888888", "6225-7688-8888-8888", "a123456789012"] {
            let err = validate_account_name(name).map(|_| name);
            assert!(
                matches!(&err, Err(StoreError::Invalid(m)) if m.contains("card number")),
                "{name}: {err:?}"
            );
        }
        for name in ["acme", "tenant-2026-12-04", "shop.12345678901", "a_b-c.d"] {
            assert!(validate_account_name(name).is_ok(), "{name}");
        }
    }
}
