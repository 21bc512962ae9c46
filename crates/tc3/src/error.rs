//! Every error code this crate can put on the wire, with its English and Chinese
//! message, and [`ApiError`], the value that carries one code plus an optional detail.
//!
//! Codes: protocol.md §5 (Tencent common codes) and §6.5 (faceid codes). This is the
//! one code → message map of the project; messages quoted in protocol.md are the real
//! Tencent texts. Messages never contain secrets, signatures or parameter values —
//! only parameter *names* (see [`sanitize_name`]).

use std::fmt;

use crate::language::Language;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, $en:literal, $zh:literal; )*) => {
        /// A Tencent Cloud API 3.0 error code (`Response.Error.Code`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The code as it appears on the wire, e.g. `AuthFailure.SignatureFailure`.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The message used when the error carries no more specific detail.
            pub fn default_message(self, lang: Language) -> &'static str {
                match (self, lang) {
                    $(
                        (ErrorCode::$variant, Language::EnUs) => $en,
                        (ErrorCode::$variant, Language::ZhCn) => $zh,
                    )*
                }
            }

            /// Inverse of [`ErrorCode::as_str`] (exact, case-sensitive match).
            pub fn from_code(code: &str) -> Option<ErrorCode> {
                match code { $( $code => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    /// API retired.
    ActionOffline => "ActionOffline",
        "This API has been deprecated.", "接口已下线。";
    /// Authorization header malformed / not TC3 (§1.6 step 1).
    AuthFailureInvalidAuthorization => "AuthFailure.InvalidAuthorization",
        "The Authorization in the request header is invalid.",
        "请求头部的 Authorization 不符合腾讯云标准。";
    /// Key is not an API key type.
    AuthFailureInvalidSecretId => "AuthFailure.InvalidSecretId",
        "Invalid key (not a TencentCloud API key type).", "密钥非法（不是云 API 密钥类型）。";
    /// MFA failure.
    AuthFailureMfaFailure => "AuthFailure.MFAFailure", "MFA failed.", "MFA 错误。";
    /// Unknown or disabled SecretId (real en message, §5).
    AuthFailureSecretIdNotFound => "AuthFailure.SecretIdNotFound",
        "The SecretId is not found, please ensure that your SecretId is correct.",
        "SecretId不存在，请输入正确的密钥。";
    /// |Timestamp − server time| > 300 s.
    AuthFailureSignatureExpire => "AuthFailure.SignatureExpire",
        "Signature expired. Timestamp and server time cannot differ by more than 5 minutes.",
        "签名过期。Timestamp 和服务器时间相差不得超过五分钟，请检查本地时间是否和标准时间同步。";
    /// Signature mismatch (real en and zh messages, §5).
    AuthFailureSignatureFailure => "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated. Please check your signature is correct.",
        "请求签名验证失败，请检查您的签名计算是否正确。";
    /// Bad session token.
    AuthFailureTokenFailure => "AuthFailure.TokenFailure", "Token error.", "token 错误。";
    /// CAM denies.
    AuthFailureUnauthorizedOperation => "AuthFailure.UnauthorizedOperation",
        "The request is not authorized.", "请求未授权。";
    /// DryRun passed.
    DryRunOperation => "DryRunOperation",
        "DryRun operation: the request would have succeeded.",
        "DryRun 操作，代表请求将会是成功的，只是多传了 DryRun 参数。";
    /// Operation failed.
    FailedOperation => "FailedOperation", "Operation failed.", "操作失败。";
    /// Internal error.
    InternalError => "InternalError", "Internal error.", "内部错误。";
    /// Action does not exist.
    InvalidAction => "InvalidAction", "The API does not exist.", "接口不存在。";
    /// Bad parameter format or type.
    InvalidParameter => "InvalidParameter",
        "Incorrect parameter.", "参数错误（包括参数格式、类型等错误）。";
    /// Bad parameter value.
    InvalidParameterValue => "InvalidParameterValue",
        "Invalid parameter value.", "参数取值错误。";
    /// Malformed multipart body.
    InvalidRequest => "InvalidRequest",
        "The multipart format of the request body is incorrect.", "请求 body 的 multipart 格式错误。";
    /// IP in blacklist.
    IpInBlacklist => "IpInBlacklist", "Your IP is in the blacklist.", "IP地址在黑名单中。";
    /// IP not in whitelist.
    IpNotInWhitelist => "IpNotInWhitelist", "Your IP is not in the whitelist.", "IP地址不在白名单中。";
    /// Quota exceeded.
    LimitExceeded => "LimitExceeded", "Quota limit exceeded.", "超过配额限制。";
    /// Required parameter missing (use [`ApiError::missing_parameter`] to name it).
    MissingParameter => "MissingParameter",
        "The request is missing a required parameter.", "缺少必要参数。";
    /// Product does not exist.
    NoSuchProduct => "NoSuchProduct", "The product does not exist.", "产品不存在。";
    /// API version does not exist.
    NoSuchVersion => "NoSuchVersion", "The API version does not exist.", "接口版本不存在。";
    /// Rate limit (retried by the SDK retryers, §4).
    RequestLimitExceeded => "RequestLimitExceeded",
        "The number of requests exceeds the frequency limit.", "请求的次数超过了频率限制。";
    /// Rate limit, main account over all regions.
    RequestLimitExceededGlobalRegionUinLimitExceeded => "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
        "The main account exceeds the frequency limit.", "主账号超过频率限制。";
    /// Rate limit per IP.
    RequestLimitExceededIpLimitExceeded => "RequestLimitExceeded.IPLimitExceeded",
        "The number of requests from this IP exceeds the frequency limit.", "IP限频。";
    /// Rate limit per main account.
    RequestLimitExceededUinLimitExceeded => "RequestLimitExceeded.UinLimitExceeded",
        "The number of requests from this account exceeds the frequency limit.", "主账号限频。";
    /// Request too large (§5 limits).
    RequestSizeLimitExceeded => "RequestSizeLimitExceeded",
        "The request size exceeds the upper limit.", "请求包超过限制大小。";
    /// Resource in use.
    ResourceInUse => "ResourceInUse", "Resource is in use.", "资源被占用。";
    /// Resource insufficient.
    ResourceInsufficient => "ResourceInsufficient", "Insufficient resource.", "资源不足。";
    /// Resource not found.
    ResourceNotFound => "ResourceNotFound", "The resource does not exist.", "资源不存在。";
    /// Resource unavailable.
    ResourceUnavailable => "ResourceUnavailable", "Resource is unavailable.", "资源不可用。";
    /// Response too large.
    ResponseSizeLimitExceeded => "ResponseSizeLimitExceeded",
        "The response size exceeds the upper limit.", "返回包超过限制大小。";
    /// Service temporarily unavailable.
    ServiceUnavailable => "ServiceUnavailable",
        "Service is unavailable now.", "当前服务暂时不可用。";
    /// Unauthorized.
    UnauthorizedOperation => "UnauthorizedOperation", "Unauthorized operation.", "未授权操作。";
    /// Parameter not defined for the API (use [`ApiError::unknown_parameter`]).
    UnknownParameter => "UnknownParameter", "Unknown parameter.", "未知参数错误，用户多传未定义的参数会导致错误。";
    /// Unsupported operation.
    UnsupportedOperation => "UnsupportedOperation", "Unsupported operation.", "操作不支持。";
    /// HTTP method other than GET/POST (§1.6).
    UnsupportedProtocol => "UnsupportedProtocol",
        "HTTP(S) request protocol error; only GET and POST requests are supported.",
        "http(s) 请求协议错误，只支持 GET 和 POST 请求。";
    /// API not available in the region (never used for faceid, §3).
    UnsupportedRegion => "UnsupportedRegion",
        "API does not support the requested region.", "接口不支持所传地域。";

    // ---- faceid codes, protocol.md §6.5 ----
    /// Decryption of the Encryption envelope failed (§7).
    FailedOperationDecryptSystemError => "FailedOperation.DecryptSystemError",
        "Decryption failed.", "解密失败。";
    /// Encryption failed.
    FailedOperationEncryptSystemError => "FailedOperation.EncryptSystemError",
        "Encryption failed.", "加密失败。";
    /// Encryption failed (internal).
    InternalErrorEncryptSystemError => "InternalError.EncryptSystemError",
        "Encryption failed.", "加密失败。";
    /// A field listed in EncryptList may not be encrypted for this API.
    InvalidParameterUnsupportEncryptField => "InvalidParameter.UnsupportEncryptField",
        "Unsupported encrypted field.", "存在不加密的字段。";
    /// Unknown internal error.
    FailedOperationUnKnown => "FailedOperation.UnKnown", "Unknown internal error.", "内部未知错误。";
    /// Unknown internal error.
    InternalErrorUnKnown => "InternalError.UnKnown", "Unknown internal error.", "内部未知错误。";
    /// Call count limit reached.
    FailedOperationRequestLimitExceeded => "FailedOperation.RequestLimitExceeded",
        "The number of calls exceeds the limit.", "调用次数超出限制。";
    /// STS not authorised.
    FailedOperationStsUnAuthErrError => "FailedOperation.StsUnAuthErrError",
        "STS is not authorized.", "STS未授权。";
    /// Account in arrears.
    UnauthorizedOperationArrears => "UnauthorizedOperation.Arrears",
        "The account is in arrears.", "欠费。";
    /// Account has no real-name authentication.
    UnauthorizedOperationNonAuthorize => "UnauthorizedOperation.NonAuthorize",
        "The account has not completed identity verification.", "账号未实名。";
    /// Service not activated.
    UnauthorizedOperationNonactivated => "UnauthorizedOperation.Nonactivated",
        "The service has not been activated.", "未开通服务。";
    /// Service activation in progress.
    UnauthorizedOperationActivating => "UnauthorizedOperation.Activating",
        "The service is being activated.", "开通中。";
    /// Service activation failed.
    UnauthorizedOperationActivateError => "UnauthorizedOperation.ActivateError",
        "Service activation failed.", "开通异常。";
    /// Billing status abnormal.
    UnauthorizedOperationChargeStatusException => "UnauthorizedOperation.ChargeStatusException",
        "Abnormal billing status.", "计费状态异常。";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an [`ApiError`] says beyond its code.
#[derive(Clone, Debug, PartialEq)]
enum Detail {
    None,
    /// `MissingParameter` naming the parameter (real Tencent wording, §5).
    Missing(String),
    /// `UnknownParameter` naming the parameter (real Tencent wording, §5).
    Unknown(String),
    /// The same text in both languages.
    Text(String),
    /// Separate English and Chinese texts.
    Localized {
        en: String,
        zh: String,
    },
}

/// One API error: a code plus an optional detail that replaces the default message.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    code: ErrorCode,
    detail: Detail,
}

impl ApiError {
    /// The code with its default message.
    pub fn new(code: ErrorCode) -> Self {
        ApiError {
            code,
            detail: Detail::None,
        }
    }

    /// `MissingParameter`: "The request is missing a required parameter `Name`."
    pub fn missing_parameter(name: &str) -> Self {
        ApiError {
            code: ErrorCode::MissingParameter,
            detail: Detail::Missing(sanitize_name(name)),
        }
    }

    /// `UnknownParameter`: "The parameter `Name` is not recognized."
    pub fn unknown_parameter(name: &str) -> Self {
        ApiError {
            code: ErrorCode::UnknownParameter,
            detail: Detail::Unknown(sanitize_name(name)),
        }
    }

    /// `InvalidParameter` with a detail text (must not contain parameter values).
    pub fn invalid_parameter(detail: impl Into<String>) -> Self {
        Self::with_detail(ErrorCode::InvalidParameter, detail)
    }

    /// Any code with a detail text used in both languages (must not contain secrets or values).
    pub fn with_detail(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: Detail::Text(detail.into()),
        }
    }

    /// Any code with separate English and Chinese detail texts.
    pub fn localized(code: ErrorCode, en: impl Into<String>, zh: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: Detail::Localized {
                en: en.into(),
                zh: zh.into(),
            },
        }
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The `Response.Error.Message` text in `lang`.
    pub fn message(&self, lang: Language) -> String {
        match (&self.detail, lang) {
            (Detail::None, _) => self.code.default_message(lang).to_owned(),
            (Detail::Missing(n), Language::EnUs) => {
                format!("The request is missing a required parameter `{n}`.")
            }
            (Detail::Missing(n), Language::ZhCn) => format!("缺少必要参数`{n}`。"),
            (Detail::Unknown(n), Language::EnUs) => {
                format!("The parameter `{n}` is not recognized.")
            }
            (Detail::Unknown(n), Language::ZhCn) => format!("未知参数`{n}`。"),
            (Detail::Text(t), _) => t.clone(),
            (Detail::Localized { en, .. }, Language::EnUs) => en.clone(),
            (Detail::Localized { zh, .. }, Language::ZhCn) => zh.clone(),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message(Language::EnUs))
    }
}

impl std::error::Error for ApiError {}

/// Makes a client-supplied parameter *name* (or identifier: SecretId, Action,
/// RequestClient) safe to echo in a message or a log line: no digit run that could be
/// a card number, no control characters or backquotes, at most 64 characters
/// ([`cardcheck_redact::sanitize_echo`], the one rule for every echo).
pub fn sanitize_name(name: &str) -> String {
    cardcheck_redact::sanitize_echo(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(ErrorCode::from_code(c.as_str()), Some(c));
            assert!(!c.default_message(Language::EnUs).is_empty());
            assert!(!c.default_message(Language::ZhCn).is_empty());
        }
        assert_eq!(ErrorCode::ALL.len(), 52);
    }

    #[test]
    fn real_messages() {
        let e = ApiError::missing_parameter("Timestamp");
        assert_eq!(
            e.message(Language::EnUs),
            "The request is missing a required parameter `Timestamp`."
        );
        assert_eq!(
            ApiError::unknown_parameter("$schema").message(Language::EnUs),
            "The parameter `$schema` is not recognized."
        );
        assert_eq!(
            ApiError::new(ErrorCode::AuthFailureSignatureFailure).message(Language::ZhCn),
            "请求签名验证失败，请检查您的签名计算是否正确。"
        );
    }

    #[test]
    fn names_that_look_like_card_numbers_are_redacted() {
        assert_eq!(sanitize_name("6225768888888888"), "(redacted)");
        assert_eq!(
            sanitize_name("Encryption.TagList.10"),
            "Encryption.TagList.10"
        );
        assert!(sanitize_name(&"x".repeat(200)).chars().count() <= 65);
    }

    #[test]
    fn card_numbers_split_by_separators_or_in_full_width_digits_are_redacted() {
        assert_eq!(sanitize_name("6225-7688-8888-8888"), "(redacted)");
        assert_eq!(sanitize_name("AKID6225 7688 8888 8888"), "AKID(redacted)");
        assert_eq!(sanitize_name("6225.7688.8888.8888"), "(redacted)");
        assert_eq!(sanitize_name("6225_7688_8888_8888"), "(redacted)");
        assert_eq!(
            sanitize_name("\u{ff16}\u{ff12}\u{ff12}\u{ff15}\u{ff17}\u{ff16}\u{ff18}\u{ff18}"),
            "(redacted)"
        );
        assert_eq!(sanitize_name("6225\t7688\n8888 8888"), "(redacted)");
        // Ordinary identifiers stay as they are.
        assert_eq!(sanitize_name("SDK_PYTHON_3.1.179"), "SDK_PYTHON_3.1.179");
        // Versions stay readable: six digits, but never six in a row nor twelve in all.
        assert_eq!(
            sanitize_name("SDK_PYTHON_3.1.179; _CLI_3.1.189.1"),
            "SDK_PYTHON_3.1.179; _CLI_3.1.189.1"
        );
        assert_eq!(sanitize_name("6225.7688.8888.8888"), "(redacted)");
        // A run past the 64-character cut is still redacted, never half shown.
        let long = format!("{}6225768888888888", "x".repeat(60));
        assert!(
            !sanitize_name(&long).contains("6225"),
            "{}",
            sanitize_name(&long)
        );
    }
}
