//! Who is calling: SecretId → credential and account, cached briefly (design.md "Hot
//! path rules": credentials cached with a short TTL so revocation still reaches every
//! node within seconds), with the TC3 signing key derived once per (date, service).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardcheck_store::{Account, AccountStore, Credential, CredentialKind, StoreError};
use cardcheck_tc3::{ParsedRequest, RawRequest, SignMethod};
use subtle::ConstantTimeEq;

use crate::errors::Failure;

/// Entries kept at most; the cache is cleared when full (unknown SecretIds are cached
/// too, so a flood of random ones must not grow memory without bound).
const MAX_ENTRIES: usize = 100_000;

/// A credential with its account, as of when it was loaded.
pub struct Caller {
    /// The credential (SecretKey decrypted).
    pub credential: Credential,
    /// Its account.
    pub account: Account,
    /// TC3 kSigning for the last (date, service) seen.
    signing_key: Mutex<Option<(String, String, [u8; 32])>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("credential", &self.credential)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// Verifies the request's signature with this credential (§1.6 steps 5–8).
    pub fn verify(
        &self,
        parsed: &ParsedRequest,
        raw: &RawRequest<'_>,
        extra_hosts: &[&str],
    ) -> Result<(), Failure> {
        let secret_key = self.credential.secret_key.as_str();
        match (parsed.sign_method(), parsed.tc3_scope()) {
            (SignMethod::Tc3HmacSha256, Some((date, service))) => {
                let key = {
                    let mut cached = self
                        .signing_key
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match cached.as_ref() {
                        Some((d, s, k)) if d == date && s == service => *k,
                        _ => {
                            let k = cardcheck_tc3::tc3_signing_key(secret_key, date, service);
                            *cached = Some((date.to_owned(), service.to_owned(), k));
                            k
                        }
                    }
                };
                parsed.verify_with(
                    raw,
                    cardcheck_tc3::VerifyKey::Tc3SigningKey(&key),
                    extra_hosts,
                )
            }
            _ => parsed.verify_with(
                raw,
                cardcheck_tc3::VerifyKey::SecretKey(secret_key),
                extra_hosts,
            ),
        }
        .map_err(Failure::Api)
    }

    /// §1.6 step 9: temporary credentials need their token, unexpired; a token sent
    /// with a permanent key is wrong too.
    pub fn check_token(&self, token: Option<&str>, now_unix: i64) -> Result<(), Failure> {
        let token = token.filter(|t| !t.is_empty());
        match (self.credential.kind, token) {
            (CredentialKind::Permanent, None) => Ok(()),
            (CredentialKind::Permanent, Some(_)) | (CredentialKind::Temporary, None) => {
                Err(Failure::Token)
            }
            (CredentialKind::Temporary, Some(token)) => {
                let expected = self.credential.token_sha256.unwrap_or([0; 32]);
                let sent = cardcheck_store::credentials::token_sha256(token);
                let matches: bool = sent.ct_eq(&expected).into();
                let live = self.credential.expires_at.is_some_and(|at| now_unix < at);
                if matches && live && self.credential.token_sha256.is_some() {
                    Ok(())
                } else {
                    Err(Failure::Token)
                }
            }
        }
    }
}

/// A cache entry: when it was loaded, and the caller (`None`: unknown or revoked).
type Entry = (Instant, Option<Arc<Caller>>);

/// SecretId → caller, each entry trusted for `ttl`.
pub struct CredentialCache {
    accounts: Arc<dyn AccountStore>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl CredentialCache {
    /// A cache over `accounts` with entries trusted for `ttl`.
    pub fn new(accounts: Arc<dyn AccountStore>, ttl: Duration) -> Self {
        CredentialCache {
            accounts,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live caller for `secret_id`, or `AuthFailure.SecretIdNotFound` when it does
    /// not exist or was revoked.
    pub async fn caller(&self, secret_id: &str) -> Result<Arc<Caller>, Failure> {
        let now = Instant::now();
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(secret_id)
            .filter(|(at, _)| now.duration_since(*at) < self.ttl)
            .map(|(_, caller)| caller.clone());
        let caller = match cached {
            Some(caller) => caller,
            None => {
                let loaded = self.load(secret_id).await?;
                let mut entries = self
                    .entries
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(secret_id.to_owned(), (now, loaded.clone()));
                loaded
            }
        };
        caller.ok_or(Failure::UnknownSecretId)
    }

    async fn load(&self, secret_id: &str) -> Result<Option<Arc<Caller>>, StoreError> {
        let Some(credential) = self.accounts.credential(secret_id).await? else {
            return Ok(None);
        };
        if credential.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(account) = self.accounts.account(&credential.account).await? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Caller {
            credential,
            account,
            signing_key: Mutex::new(None),
        })))
    }
}
