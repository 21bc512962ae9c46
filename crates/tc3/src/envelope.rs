//! Response envelopes (protocol.md §4). Always HTTP 200 with `Content-Type:
//! application/json` exactly — a `; charset=utf-8` suffix makes the Python SDK treat
//! errors as successes [captured: py_err_authfail_ct_charset].

use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
use crate::language::Language;

/// The only Content-Type a response may carry.
pub const CONTENT_TYPE: &str = "application/json";

/// A fresh RequestId: a lower-case UUID, version 7 (RFC 9562): Tencent's RequestIds
/// are UUIDs and clients treat them as opaque strings, while a time-ordered UUID lets
/// the ledger's unique index on it grow at its right edge instead of dirtying a random
/// page per request (issue 10 profile). Ids from one process are strictly increasing.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `{"Response":{<fields…>,"RequestId":"…"}}`. `fields` must serialise to a JSON
/// object (field order kept; a `RequestId` field in it is replaced and moved last).
/// Anything else yields an `InternalError` envelope, so the reply is always valid.
pub fn success_body<T: Serialize>(fields: &T, request_id: &str) -> Vec<u8> {
    match serde_json::to_value(fields) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.shift_remove("RequestId");
            m.insert(
                "RequestId".to_owned(),
                serde_json::Value::String(request_id.to_owned()),
            );
            #[derive(Serialize)]
            struct Envelope {
                #[serde(rename = "Response")]
                response: serde_json::Map<String, serde_json::Value>,
            }
            serde_json::to_vec(&Envelope { response: m }).unwrap_or_default()
        }
        _ => error_body(
            &ApiError::new(ErrorCode::InternalError),
            Language::EnUs,
            request_id,
        ),
    }
}

/// `{"Response":{"Error":{"Code":"…","Message":"…"},"RequestId":"…"}}`.
pub fn error_body(err: &ApiError, lang: Language, request_id: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        #[serde(rename = "Response")]
        response: Response<'a>,
    }
    #[derive(Serialize)]
    struct Response<'a> {
        #[serde(rename = "Error")]
        error: Error<'a>,
        #[serde(rename = "RequestId")]
        request_id: &'a str,
    }
    #[derive(Serialize)]
    struct Error<'a> {
        #[serde(rename = "Code")]
        code: &'a str,
        #[serde(rename = "Message")]
        message: String,
    }
    let env = Envelope {
        response: Response {
            error: Error {
                code: err.code().as_str(),
                message: err.message(lang),
            },
            request_id,
        },
    };
    // Serialising plain strings cannot fail.
    serde_json::to_vec(&env).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_ids_are_uuids_that_increase_within_a_process() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        let parsed = uuid::Uuid::parse_str(&ids[0]).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }

    #[test]
    fn envelopes() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_lowercase());
        let body = success_body(&json!({"Result": "0", "Description": "认证通过"}), "rid");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"Response":{"Result":"0","Description":"认证通过","RequestId":"rid"}}"#
        );
        let body = error_body(
            &ApiError::new(ErrorCode::AuthFailureSignatureFailure),
            Language::EnUs,
            "rid",
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated. Please check your signature is correct."},"RequestId":"rid"}}"#
        );
        let body = success_body(&"not an object", "rid");
        assert!(String::from_utf8(body).unwrap().contains("InternalError"));
    }
}
