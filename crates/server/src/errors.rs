//! The one map from every failure on the request path to a Tencent error code
//! (protocol.md §5, §6.5; design.md: "the single exhaustive map … lives here").
//!
//! Handlers return [`Failure`]; only [`Failure::into_api_error`] decides the code, and
//! it matches every variant of every source error without a wildcard, so a new variant
//! anywhere fails to compile until it is mapped.

use cardcheck_domain::EngineError;
use cardcheck_encryption::EncryptionError;
use cardcheck_store::{AccountStatus, StoreError};
use cardcheck_tc3::{ApiError, ErrorCode};

/// Why a request was not answered with a Result.
#[derive(Debug)]
pub enum Failure {
    /// Already a wire error (parse, signature, parameters).
    Api(ApiError),
    /// The store failed.
    Store(StoreError),
    /// The engine could not decide (attempt counter down).
    Engine(EngineError),
    /// The `Encryption` parameter could not be used.
    Encryption(EncryptionError),
    /// The calling account may not call the API in its current status.
    AccountStatus(AccountStatus),
    /// The SecretId does not exist or was revoked.
    UnknownSecretId,
    /// Missing, wrong or expired session token.
    Token,
    /// The account is over its request rate.
    RateLimited,
    /// The body is (or is announced by `Content-Length` as) larger than the limit.
    BodyTooLarge,
    /// The body could not be read as HTTP framing (a bad chunk size, a body cut short):
    /// not a size problem.
    MalformedBody,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}
impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::Engine(e)
    }
}
impl From<EncryptionError> for Failure {
    fn from(e: EncryptionError) -> Self {
        Failure::Encryption(e)
    }
}

impl Failure {
    /// Whether a retry of the same request should be processed afresh
    /// (verification.md §4: transient answers are not replayed).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Failure::RateLimited | Failure::Store(_) | Failure::Engine(_)
        )
    }

    /// The wire error. Internal details go to the log, never to the client.
    pub fn into_api_error(self) -> ApiError {
        match self {
            Failure::Api(e) => e,
            Failure::UnknownSecretId => ApiError::new(ErrorCode::AuthFailureSecretIdNotFound),
            Failure::Token => ApiError::new(ErrorCode::AuthFailureTokenFailure),
            Failure::RateLimited => ApiError::new(ErrorCode::RequestLimitExceeded),
            Failure::BodyTooLarge => ApiError::new(ErrorCode::RequestSizeLimitExceeded),
            // protocol.md §5: `InvalidRequest` is the malformed-body code (Tencent's
            // text names multipart; ours says what went wrong).
            Failure::MalformedBody => ApiError::localized(
                ErrorCode::InvalidRequest,
                "The request body is malformed and could not be read.",
                "请求 body 格式错误，无法读取。",
            ),
            Failure::AccountStatus(status) => ApiError::new(match status {
                // An active account never fails here; map it defensively.
                AccountStatus::Active => ErrorCode::UnauthorizedOperation,
                AccountStatus::Arrears => ErrorCode::UnauthorizedOperationArrears,
                AccountStatus::Nonactivated => ErrorCode::UnauthorizedOperationNonactivated,
                AccountStatus::Unverified => ErrorCode::UnauthorizedOperationNonAuthorize,
                AccountStatus::ChargeException => {
                    ErrorCode::UnauthorizedOperationChargeStatusException
                }
            }),
            Failure::Encryption(e) => match e {
                EncryptionError::UnknownAlgorithm => ApiError::localized(
                    ErrorCode::InvalidParameterValue,
                    "Encryption.Algorithm must be AES-256-CBC or SM4-GCM.",
                    "Encryption.Algorithm 的取值必须为 AES-256-CBC 或 SM4-GCM。",
                ),
                EncryptionError::UnsupportedField(field) => ApiError::with_detail(
                    ErrorCode::InvalidParameterUnsupportEncryptField,
                    format!("The field `{field}` does not support encryption."),
                ),
                EncryptionError::MissingField(field) => ApiError::missing_parameter(&field),
                EncryptionError::MalformedEnvelope(detail) => {
                    ApiError::invalid_parameter(format!("Invalid Encryption parameter: {detail}."))
                }
                EncryptionError::Decrypt => {
                    ApiError::new(ErrorCode::FailedOperationDecryptSystemError)
                }
                EncryptionError::Key(detail) => {
                    tracing::error!(error = %detail, "server encryption keys unusable");
                    ApiError::new(ErrorCode::InternalError)
                }
            },
            Failure::Store(e) => {
                match &e {
                    StoreError::NotFound(_)
                    | StoreError::Conflict(_)
                    | StoreError::Invalid(_)
                    | StoreError::MasterKeyMismatch
                    | StoreError::Corrupt(_)
                    | StoreError::Database(_)
                    | StoreError::Io(_) => tracing::error!(error = %e, "store failure"),
                }
                ApiError::new(ErrorCode::InternalError)
            }
            Failure::Engine(e) => {
                match &e {
                    EngineError::CounterUnavailable(c) => {
                        tracing::error!(error = %c, "attempt counter unavailable");
                    }
                }
                ApiError::new(ErrorCode::InternalError)
            }
        }
    }
}
