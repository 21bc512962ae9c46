//! The request's way through (design.md): parse → SecretId → timestamp → signature →
//! token → account → Action/Version → replay cache → rate limit → parameters →
//! Encryption → engine → ledger → envelope. protocol.md §1.6 and §5 ("suggested order
//! of checks") fix the order of the authentication steps; verification.md §2 the rest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cardcheck_domain::{Lang, ResultCode, VerificationInput, beijing_day};
use cardcheck_encryption::BANK_CARD_2E_FIELDS;
use cardcheck_store::{AccountStatus, LedgerEntry, ReplayBegin};
use cardcheck_tc3::{ApiError, ErrorCode, Language, Limits, ParsedRequest, RawRequest};
use serde_json::{Map, Value};
use sha2::Digest;

use crate::auth::Caller;
use crate::errors::Failure;
use crate::state::AppState;

/// The one action and version this service implements (protocol.md §6.1).
pub const ACTION: &str = "BankCard2EVerification";
/// The API version.
pub const VERSION: &str = "2018-03-01";
/// Business parameters of the action.
const KNOWN_PARAMS: [&str; 3] = ["Name", "BankCard", "Encryption"];
/// How long a retry waits for an identical request still in flight.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(30);

/// One response body and what it was, for metrics and logs.
pub struct Answer {
    /// The JSON envelope.
    pub body: Vec<u8>,
    /// `("result", "0")`, `("error", "AuthFailure.SignatureFailure")` or `("replay", …)`.
    pub outcome: (&'static str, String),
    /// Who asked for what, once the request parsed (for the request log line).
    pub who: Option<Who>,
    /// The RequestId the body carries when it is not this request's: a replayed answer
    /// is the first answer byte for byte, and its `X-TC-RequestId` header and log line
    /// must name the same RequestId (api.md), not the one minted for the retry.
    pub replayed_request_id: Option<String>,
}

/// The request log line's identity fields (issue 9): never a secret or a card.
pub struct Who {
    /// The SecretId.
    pub secret_id: String,
    /// The Action.
    pub action: String,
    /// The SDK's `RequestClient`.
    pub client: Option<String>,
}

#[derive(serde::Serialize)]
struct Verdict<'a> {
    #[serde(rename = "Result")]
    result: &'a str,
    #[serde(rename = "Description")]
    description: &'a str,
}

fn lang_of(language: Language) -> Lang {
    match language {
        Language::ZhCn => Lang::Zh,
        Language::EnUs => Lang::En,
    }
}

/// Language for an answer given before the parameters were parsed: the header, if it
/// is valid, else English.
fn header_language(raw: &RawRequest<'_>) -> Language {
    raw.headers
        .get("x-tc-language")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Language::parse(Some(v)).ok())
        .unwrap_or_default()
}

/// The replay key of a signed request: same SecretId, signature and timestamp
/// (verification.md §4) — plus the parameters TC3 leaves unsigned that change the
/// answer (Action, Version, Language: protocol.md §1.6 "Not signed in TC3"), so that
/// the same body asked in `zh-CN` and `en-US` within one second is two requests.
fn replay_key(parsed: &ParsedRequest) -> [u8; 32] {
    let p = parsed.params();
    let mut h = sha2::Sha256::new();
    for part in [
        parsed.secret_id(),
        parsed.signature(),
        &p.action,
        &p.version,
        p.language.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(parsed.timestamp().to_be_bytes());
    h.finalize().into()
}

impl AppState {
    /// Answers one API request. Never fails: every failure is an error envelope.
    pub async fn answer(&self, raw: &RawRequest<'_>, request_id: &str, started: Instant) -> Answer {
        let parsed = match cardcheck_tc3::parse(raw, &Limits::default()) {
            Ok(p) => p,
            Err(e) => return self.error_answer(Failure::Api(e), header_language(raw), request_id),
        };
        // §1.6 step 2 here, so that the log line knows whether the SecretId is ours.
        let caller = self.callers.caller(parsed.secret_id()).await;
        let secret_id_matched = caller.is_ok();
        let mut answer = self
            .answer_parsed(caller, &parsed, raw, request_id, started)
            .await;
        let p = parsed.params();
        answer.who = Some(Who {
            secret_id: logged_secret_id(parsed.secret_id(), secret_id_matched),
            action: cardcheck_tc3::error::sanitize_name(&p.action),
            client: p
                .request_client
                .as_deref()
                .map(cardcheck_tc3::error::sanitize_name),
        });
        answer
    }

    async fn answer_parsed(
        &self,
        caller: Result<Arc<Caller>, Failure>,
        parsed: &ParsedRequest,
        raw: &RawRequest<'_>,
        request_id: &str,
        started: Instant,
    ) -> Answer {
        let language = Language::parse(parsed.params().language.as_deref());
        let lang = language.clone().unwrap_or_else(|_| header_language(raw));
        let caller = match self.authenticate(caller, parsed, raw) {
            Ok(c) => c,
            Err(f) => return self.error_answer(f, lang, request_id),
        };
        if let Err(e) = language {
            return self.error_answer(Failure::Api(e), lang, request_id);
        }
        if let Err(f) = check_account_and_action(&caller, parsed) {
            return self.error_answer(f, lang, request_id);
        }

        // verification.md §4: an identical retry gets the first final answer back.
        let key = replay_key(parsed);
        let waited_since = Instant::now();
        loop {
            match self.backend.replays.begin(&key).await {
                Ok(ReplayBegin::First) => break,
                Ok(ReplayBegin::Replay(body)) => {
                    self.metrics.record_replay();
                    let replayed_request_id = request_id_of(&body);
                    return Answer {
                        body,
                        outcome: ("replay", "final".into()),
                        who: None,
                        replayed_request_id,
                    };
                }
                Ok(ReplayBegin::InFlight) if waited_since.elapsed() < IN_FLIGHT_WAIT => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(ReplayBegin::InFlight) => {
                    return self.error_answer(Failure::RateLimited, lang, request_id);
                }
                Err(e) => return self.error_answer(Failure::Store(e), lang, request_id),
            }
        }
        let outcome = self
            .verify_card(&caller, parsed, raw, lang, request_id, started)
            .await;
        let final_body = match &outcome {
            Ok((result, body)) if *result != ResultCode::SourceBusy => Some(body.as_slice()),
            _ => None,
        };
        if let Err(e) = self.backend.replays.finish(&key, final_body).await {
            tracing::error!(error = %e, "replay cache update failed");
        }
        match outcome {
            Ok((result, body)) => Answer {
                body,
                outcome: ("result", result.wire().to_owned()),
                who: None,
                replayed_request_id: None,
            },
            Err(f) => self.error_answer(f, lang, request_id),
        }
    }

    /// §1.6 steps 2–9: SecretId (looked up by the caller of this), timestamp window,
    /// signature, token.
    fn authenticate(
        &self,
        caller: Result<Arc<Caller>, Failure>,
        parsed: &ParsedRequest,
        raw: &RawRequest<'_>,
    ) -> Result<Arc<Caller>, Failure> {
        let caller = caller?;
        let now = self.clock.now_unix();
        parsed.check_timestamp(now)?;
        let extra_hosts: Vec<&str> = self.config.extra_hosts.iter().map(String::as_str).collect();
        caller.verify(parsed, raw, &extra_hosts)?;
        caller.check_token(parsed.params().token.as_deref(), now)?;
        Ok(caller)
    }

    /// Rate limit, parameters, decryption, the engine and the ledger: a Result.
    async fn verify_card(
        &self,
        caller: &Caller,
        parsed: &ParsedRequest,
        raw: &RawRequest<'_>,
        lang: Language,
        request_id: &str,
        started: Instant,
    ) -> Result<(ResultCode, Vec<u8>), Failure> {
        let account = &caller.account;
        if !self
            .backend
            .limiter
            .acquire(&account.name, account.qps, account.qps)
            .await?
        {
            return Err(Failure::RateLimited);
        }
        let mut params = parsed.business_params(raw)?;
        self.decryptor
            .decrypt_params(&mut params, BANK_CARD_2E_FIELDS)?;
        if !self.config.allow_unknown_params
            && let Some(unknown) = params.keys().find(|k| !KNOWN_PARAMS.contains(&k.as_str()))
        {
            return Err(ApiError::unknown_parameter(unknown).into());
        }
        let name = string_param(&params, "Name")?;
        let card = string_param(&params, "BankCard")?;

        let input = VerificationInput {
            account: &account.name,
            name,
            card,
            daily_limit: account.daily_attempts,
        };
        let decision = self
            .engine
            .decide(&input, &self.sources, self.backend.attempts.as_ref())
            .await?;
        let now = self.clock.now_unix();
        // Recorded before the reply (issue 4): an answer the ledger lacks is never sent.
        self.backend
            .ledger
            .append(LedgerEntry {
                request_id: request_id.to_owned(),
                account: account.name.clone(),
                secret_id: caller.credential.secret_id.clone(),
                action: ACTION.to_owned(),
                result: decision.result,
                masked_card: decision.card.as_ref().map(|c| c.masked()),
                latency_us: started.elapsed().as_micros().try_into().unwrap_or(u64::MAX),
                ts_ms: now.saturating_mul(1000),
                day: beijing_day(now),
                attempted_card: decision.counted.then(|| decision.card.clone()).flatten(),
            })
            .await?;
        let body = cardcheck_tc3::envelope::success_body(
            &Verdict {
                result: decision.result.wire(),
                description: decision.result.description(lang_of(lang)),
            },
            request_id,
        );
        Ok((decision.result, body))
    }

    fn error_answer(&self, failure: Failure, lang: Language, request_id: &str) -> Answer {
        let error = failure.into_api_error();
        let code = error.code();
        Answer {
            body: cardcheck_tc3::envelope::error_body(&error, lang, request_id),
            outcome: ("error", code.as_str().to_owned()),
            who: None,
            replayed_request_id: None,
        }
    }
}

/// The request log line's SecretId: verbatim when it named a stored credential
/// (SecretIds are identifiers, not secrets, and a stored one was issued here, so a
/// digit run in it is not a card number), else sanitised like any client-supplied
/// text ([`cardcheck_tc3::error::sanitize_name`]): an unknown "SecretId" may be a card
/// number sent in the wrong place.
pub fn logged_secret_id(secret_id: &str, matched_a_credential: bool) -> String {
    if matched_a_credential {
        secret_id.to_owned()
    } else {
        cardcheck_tc3::error::sanitize_name(secret_id)
    }
}

/// The `Response.RequestId` of a stored answer body.
fn request_id_of(body: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    doc.get("Response")?
        .get("RequestId")?
        .as_str()
        .map(str::to_owned)
}

/// Account standing (issue 5), then Action and Version (§5 order: after the token).
fn check_account_and_action(caller: &Caller, parsed: &ParsedRequest) -> Result<(), Failure> {
    if caller.account.status != AccountStatus::Active {
        return Err(Failure::AccountStatus(caller.account.status));
    }
    let params = parsed.params();
    if params.action != ACTION {
        return Err(ApiError::new(ErrorCode::InvalidAction).into());
    }
    if params.version != VERSION {
        return Err(ApiError::new(ErrorCode::NoSuchVersion).into());
    }
    Ok(())
}

/// verification.md §1: absent → `MissingParameter`; present but not a string →
/// `InvalidParameter`; an empty string is a Result (`-2` / `-3`), not an error.
fn string_param<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, Failure> {
    match params.get(name) {
        None => Err(ApiError::missing_parameter(name).into()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::invalid_parameter(format!(
            "The value type of parameter `{name}` must be String."
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_secret_id_with_a_digit_run_is_logged_verbatim() {
        let id = "AKIDx7Q2123456mP9vZbL0kWc4Rt8YhN3sJd";
        assert_eq!(logged_secret_id(id, true), id);
    }

    #[test]
    fn an_unknown_secret_id_is_still_sanitised() {
        assert_eq!(
            logged_secret_id("AKID6225 7688 8888 8888", false),
            "AKID(redacted)"
        );
        assert_eq!(logged_secret_id("AKIDabc", false), "AKIDabc");
    }
}
