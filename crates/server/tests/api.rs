//! The signed API end to end through the router (issue 4 and issue 5 "Done when").
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

mod common;

use cardcheck_store::{AccountStatus, AccountUpdate, UsageFilter};
use cardcheck_tc3::SignMethod;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn doc_examples_pass_and_mismatch_with_every_sign_method_encoding_and_language() {
    let s = server().await;
    let issued = s.account("acme").await;
    let methods = [
        (SignMethod::Tc3HmacSha256, "POST"),
        (SignMethod::Tc3HmacSha256, "GET"),
        (SignMethod::HmacSha1, "GET"),
        (SignMethod::HmacSha1, "POST"),
        (SignMethod::HmacSha256, "POST"),
        (SignMethod::HmacSha256, "GET"),
    ];
    for (sign_method, http_method) in methods {
        for (language, pass, mismatch) in [
            (Some("zh-CN"), "认证通过", "持卡人信息有误"),
            (
                Some("en-US"),
                "Verification passed",
                "Cardholder information is incorrect",
            ),
            (
                None,
                "Verification passed",
                "Cardholder information is incorrect",
            ),
        ] {
            for (card, result, description) in [
                (DOC_CARD_PASS, "0", pass),
                (DOC_CARD_MISMATCH, "-4", mismatch),
            ] {
                let mut call = Call::new(&issued, "Wei Xiaobao", card);
                call.sign_method = sign_method;
                call.http_method = http_method;
                call.language = language;
                let (headers, body) = s.send(&call).await;
                let what = format!("{sign_method:?} {http_method} {language:?} {card}");
                assert_eq!(result_of(&body), result, "{what}: {body}");
                assert_eq!(body["Response"]["Description"], description, "{what}");
                assert_eq!(headers["content-type"], "application/json");
                assert_eq!(headers["x-tc-requestid"], request_id_of(&body));
                // The ledger row exists before the reply (issue 4).
                assert_eq!(
                    s.backend
                        .ledger
                        .count_request(request_id_of(&body))
                        .await
                        .unwrap(),
                    1
                );
            }
        }
    }
}

#[tokio::test]
async fn authentication_and_parameter_errors_carry_their_exact_codes() {
    let s = server().await;
    let issued = s.account("acme").await;
    let base = Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS);

    let mut wrong_key = base.clone();
    wrong_key.credential.secret_key = "not-the-key".into();
    let mut unknown_id = base.clone();
    unknown_id.credential.secret_id = "AKIDunknownunknownunknownunknown0000".into();
    let mut stale = base.clone();
    stale.timestamp = Some(NOW - 600);
    let mut future = base.clone();
    future.timestamp = Some(NOW + 301);
    let mut missing_name = base.clone();
    missing_name.params.remove("Name");
    let mut missing_card = base.clone();
    missing_card.params.remove("BankCard");
    let mut numeric_card = base.clone();
    numeric_card
        .params
        .insert("BankCard".into(), json!(6225768888888888u64));
    let mut unknown_action = base.clone();
    unknown_action.action = "BankCard4EVerification".into();
    let mut old_version = base.clone();
    old_version.version = "2017-01-01".into();
    let mut unknown_param = base.clone();
    unknown_param
        .params
        .insert("IdCard".into(), json!("110101199003070000"));
    let mut bad_language = base.clone();
    bad_language.language = Some("fr-FR");
    let mut bad_encryption = base.clone();
    bad_encryption.params.insert(
        "Encryption".into(),
        json!({"Algorithm": "DES", "EncryptList": ["Name"], "CiphertextBlob": "x", "Iv": "y"}),
    );

    for (call, code) in [
        (wrong_key, "AuthFailure.SignatureFailure"),
        (unknown_id, "AuthFailure.SecretIdNotFound"),
        (stale, "AuthFailure.SignatureExpire"),
        (future, "AuthFailure.SignatureExpire"),
        (missing_name, "MissingParameter"),
        (missing_card, "MissingParameter"),
        (numeric_card, "InvalidParameter"),
        (unknown_action, "InvalidAction"),
        (old_version, "NoSuchVersion"),
        (unknown_param, "UnknownParameter"),
        (bad_language, "InvalidParameterValue"),
        (bad_encryption, "InvalidParameterValue"),
    ] {
        let (_, body) = s.send(&call).await;
        assert_eq!(error_of(&body), code, "{body}");
        assert!(
            body["Response"]["Error"]["Message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Nothing above was a verification: the ledger is empty.
    assert!(s.usage_rows().await.is_empty());
}

#[tokio::test]
async fn empty_name_and_card_are_results_not_errors() {
    let s = server().await;
    let issued = s.account("acme").await;
    let (_, body) = s.send(&Call::new(&issued, "", DOC_CARD_PASS)).await;
    assert_eq!(result_of(&body), "-2");
    let (_, body) = s.send(&Call::new(&issued, "Wei Xiaobao", "")).await;
    assert_eq!(result_of(&body), "-3");
}

#[tokio::test]
async fn other_methods_and_garbage_get_envelopes_and_the_trace_id_is_echoed() {
    let s = server().await;
    let put = http::Request::builder()
        .method("PUT")
        .uri("/")
        .header("x-tc-traceid", "trace-123")
        .body(axum::body::Body::empty())
        .unwrap();
    let (headers, bytes) = s.send_request(put).await;
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_of(&body), "UnsupportedProtocol");
    assert_eq!(headers["x-tc-traceid"], "trace-123");
    let garbage = http::Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/json")
        .header("authorization", "TC3-HMAC-SHA256 nonsense")
        .body(axum::body::Body::from(vec![0xff, 0x00, 0x12]))
        .unwrap();
    let (_, bytes) = s.send_request(garbage).await;
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_of(&body), "AuthFailure.InvalidAuthorization");
}

#[tokio::test]
async fn each_account_status_has_its_error_code_and_revocation_takes_effect() {
    let s = server().await;
    let issued = s.account("acme").await;
    let call = Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS);
    for (status, code) in [
        (AccountStatus::Arrears, "UnauthorizedOperation.Arrears"),
        (
            AccountStatus::Nonactivated,
            "UnauthorizedOperation.Nonactivated",
        ),
        (
            AccountStatus::Unverified,
            "UnauthorizedOperation.NonAuthorize",
        ),
        (
            AccountStatus::ChargeException,
            "UnauthorizedOperation.ChargeStatusException",
        ),
    ] {
        let update = AccountUpdate {
            status: Some(status),
            ..Default::default()
        };
        s.backend
            .accounts
            .update_account("acme", &update)
            .await
            .unwrap();
        let (_, body) = s.send(&call).await;
        assert_eq!(error_of(&body), code);
    }
    let update = AccountUpdate {
        status: Some(AccountStatus::Active),
        ..Default::default()
    };
    s.backend
        .accounts
        .update_account("acme", &update)
        .await
        .unwrap();
    let mut fresh = call.clone();
    fresh.params.insert("Name".into(), json!("Wei  Xiaobao"));
    assert_eq!(result_of(&s.send(&fresh).await.1), "0");
    s.backend
        .accounts
        .revoke_credential(&issued.secret_id)
        .await
        .unwrap();
    fresh.params.insert("Name".into(), json!("WEI XIAOBAO"));
    assert_eq!(
        error_of(&s.send(&fresh).await.1),
        "AuthFailure.SecretIdNotFound"
    );
}

#[tokio::test]
async fn temporary_credentials_need_their_token_until_expiry() {
    let s = server().await;
    let permanent = s.account("acme").await;
    let temp = s
        .backend
        .accounts
        .create_credential("acme", Some(600))
        .await
        .unwrap();
    let call = Call::new(&temp, "Wei Xiaobao", DOC_CARD_PASS);
    assert_eq!(result_of(&s.send(&call).await.1), "0");

    let mut no_token = call.clone();
    no_token.credential.token = None;
    no_token.params.insert("Name".into(), json!("Wei Xiao bao"));
    assert_eq!(
        error_of(&s.send(&no_token).await.1),
        "AuthFailure.TokenFailure"
    );
    let mut wrong_token = call.clone();
    wrong_token.credential.token = Some("forged".into());
    assert_eq!(
        error_of(&s.send(&wrong_token).await.1),
        "AuthFailure.TokenFailure"
    );
    let mut token_on_permanent = Call::new(&permanent, "Wei Xiaobao", DOC_CARD_PASS);
    token_on_permanent.credential.token = temp.token.clone();
    assert_eq!(
        error_of(&s.send(&token_on_permanent).await.1),
        "AuthFailure.TokenFailure"
    );

    // After expiry (the injected clock moves past it) the same token fails.
    let after_expiry = temp.expires_at.unwrap() + 1;
    s.clock.set(after_expiry);
    let mut late = call.clone();
    late.timestamp = Some(after_expiry);
    assert_eq!(error_of(&s.send(&late).await.1), "AuthFailure.TokenFailure");
}

#[tokio::test]
async fn the_eleventh_attempt_on_one_card_gets_minus_17_until_the_next_beijing_day() {
    let s = server().await;
    let issued = s.account("acme").await;
    let update = AccountUpdate {
        daily_attempts: Some(10),
        ..Default::default()
    };
    s.backend
        .accounts
        .update_account("acme", &update)
        .await
        .unwrap();
    for i in 0..11 {
        // Distinct requests (the name's spacing differs), so none is a replay.
        let name = format!("Wei{}Xiaobao", " ".repeat(i + 1));
        let (_, body) = s.send(&Call::new(&issued, &name, DOC_CARD_PASS)).await;
        let expected = if i < 10 { "0" } else { "-17" };
        assert_eq!(result_of(&body), expected, "attempt {}", i + 1);
    }
    // Another card is not affected.
    let (_, body) = s
        .send(&Call::new(&issued, "Wei Xiaobao", DOC_CARD_MISMATCH))
        .await;
    assert_eq!(result_of(&body), "-4");
    // Beijing midnight is 12 h after NOW.
    s.clock.advance(12 * 3600);
    let mut next_day = Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS);
    next_day.timestamp = Some(NOW + 12 * 3600);
    assert_eq!(result_of(&s.send(&next_day).await.1), "0");
    let rows = s.usage_rows().await;
    let free: u64 = rows.iter().filter(|r| !r.billed).map(|r| r.count).sum();
    assert_eq!(free, 1, "-17 is not billed: {rows:?}");
}

#[tokio::test]
async fn an_identical_retry_gets_the_identical_body_and_one_ledger_row() {
    let s = server().await;
    let issued = s.account("acme").await;
    let call = Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS);
    let (first_headers, first) = s.send_raw(&call).await;
    let (second_headers, second) = s.send_raw(&call).await;
    assert_eq!(first, second);
    // The replay's X-TC-RequestId header was a new id while its body carried the first
    // one: both now name the first answer's RequestId.
    let body: Value = serde_json::from_slice(&second).unwrap();
    assert_eq!(second_headers["x-tc-requestid"], request_id_of(&body));
    assert_eq!(
        second_headers["x-tc-requestid"],
        first_headers["x-tc-requestid"]
    );
    let rows = s.usage_rows().await;
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 1);
    // The same body asked in another language is another request.
    let mut chinese = call.clone();
    chinese.language = Some("zh-CN");
    let (_, third) = s.send(&chinese).await;
    assert_eq!(third["Response"]["Description"], "认证通过");
}

/// A client that disconnected while its answer was being made: the answer was cut off
/// after its ledger row was queued, its replay entry stayed "in flight" for 30 s, and
/// the client's identical retry waited, timed out, and (later) was billed a second
/// time. The answer now runs to the end and the retry gets it from the replay cache.
#[tokio::test]
async fn a_request_whose_client_disconnects_is_answered_once_and_replayed_to_its_retry() {
    use std::future::Future;
    use tower::ServiceExt;
    let s = server().await;
    let issued = s.account("acme").await;
    let call = Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS);
    // The client goes away: its request is polled once, then dropped.
    let mut gone = Box::pin(cardcheck_server::app(s.state.clone()).oneshot(s.sign(&call)));
    std::future::poll_fn(|cx| {
        let _ = gone.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
    drop(gone);

    let started = std::time::Instant::now();
    let (headers, body) = s.send(&call).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the retry waited {:?}",
        started.elapsed()
    );
    assert_eq!(result_of(&body), "0", "{body}");
    assert_eq!(headers["x-tc-requestid"], request_id_of(&body));
    let rows = s.usage_rows().await;
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 1, "{rows:?}");
    assert_eq!(
        s.backend
            .ledger
            .count_request(request_id_of(&body))
            .await
            .unwrap(),
        1,
        "the retry's answer is the first one, with its ledger row"
    );
}

#[tokio::test]
async fn over_the_rate_requests_get_request_limit_exceeded_and_are_not_billed() {
    let s = server().await;
    let issued = s.account("busy").await;
    let other = s.account("calm").await;
    for name in ["busy", "calm"] {
        let update = AccountUpdate {
            qps: Some(20),
            ..Default::default()
        };
        s.backend
            .accounts
            .update_account(name, &update)
            .await
            .unwrap();
    }
    let (mut answered, mut limited) = (0, 0);
    for i in 0..100 {
        let name = format!("Wei{}Xiaobao", " ".repeat(i + 1));
        let (_, body) = s.send(&Call::new(&issued, &name, DOC_CARD_PASS)).await;
        match body["Response"]["Error"]["Code"].as_str() {
            None => answered += 1,
            Some("RequestLimitExceeded") => limited += 1,
            Some(code) => panic!("unexpected {code}"),
        }
    }
    // Burst 20 plus at most one second's refill (issue 5).
    assert!((20..=40).contains(&answered), "answered {answered}");
    assert_eq!(answered + limited, 100);
    let (_, body) = s
        .send(&Call::new(&other, "Wei Xiaobao", DOC_CARD_PASS))
        .await;
    assert_eq!(result_of(&body), "0", "another account is not limited");
    let busy = UsageFilter {
        account: Some("busy".into()),
        ..Default::default()
    };
    let rows = s.backend.ledger.usage(&busy).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), answered);
}

#[tokio::test]
async fn a_retry_after_request_limit_exceeded_is_processed_afresh() {
    let s = server().await;
    let issued = s.account("acme").await;
    let update = AccountUpdate {
        qps: Some(1),
        ..Default::default()
    };
    s.backend
        .accounts
        .update_account("acme", &update)
        .await
        .unwrap();
    let first = Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS);
    assert_eq!(result_of(&s.send(&first).await.1), "0");
    let second = Call::new(&issued, "Wei Xiaobao", DOC_CARD_MISMATCH);
    assert_eq!(error_of(&s.send(&second).await.1), "RequestLimitExceeded");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(result_of(&s.send(&second).await.1), "-4");
}

#[tokio::test]
async fn encrypted_fields_give_the_same_result_and_bad_ciphertext_its_code() {
    use cardcheck_encryption::{Algorithm, BANK_CARD_2E_FIELDS, KeyAlgorithm, encrypt_params};
    let s = server().await;
    let issued = s.account("acme").await;
    for alg in [Algorithm::Aes256Cbc, Algorithm::Sm4Gcm] {
        let key_alg = if alg == Algorithm::Sm4Gcm {
            KeyAlgorithm::Sm2
        } else {
            KeyAlgorithm::Rsa
        };
        let pem = s.state.public_key_pem(key_alg);
        for (card, result) in [(DOC_CARD_PASS, "0"), (DOC_CARD_MISMATCH, "-4")] {
            let mut call = Call::new(&issued, "Wei Xiaobao", card);
            encrypt_params(&mut call.params, BANK_CARD_2E_FIELDS, alg, &pem).unwrap();
            assert_ne!(call.params["BankCard"], json!(card));
            assert_eq!(result_of(&s.send(&call).await.1), result, "{alg:?}");
            // Tampered ciphertext: one code, whatever broke.
            let mut tampered = call.clone();
            let ct = tampered.params["BankCard"].as_str().unwrap().to_owned();
            let first = if ct.starts_with('A') { "B" } else { "A" };
            let flipped = format!("{first}{}", &ct[1..]);
            tampered.params.insert("BankCard".into(), json!(flipped));
            assert_eq!(
                error_of(&s.send(&tampered).await.1),
                "FailedOperation.DecryptSystemError"
            );
        }
    }
}

/// Broke: a request with two Host lines was answered like any other (the first one was
/// taken as the signed host). RFC 9112 §3.2 requires 400, and two values leave it
/// unclear which host the signature covers.
#[tokio::test]
async fn a_request_with_two_host_headers_is_answered_400_and_not_billed() {
    use tower::ServiceExt;
    let s = server().await;
    let issued = s.account("acme").await;
    // Correctly signed for its first Host: only the second line is wrong.
    let mut request = s.sign(&Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS));
    request.headers_mut().append(
        http::header::HOST,
        http::HeaderValue::from_static("other.example.com"),
    );
    let response = cardcheck_server::app(s.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
    assert!(response.headers().contains_key("x-tc-requestid"));
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert!(body.is_empty(), "{body:?}");
    let rows = s.usage_rows().await;
    assert!(rows.is_empty(), "{rows:?}");
    // The same call with one Host is answered.
    let (_, body) = s
        .send(&Call::new(&issued, "Wei Xiaobao", DOC_CARD_PASS))
        .await;
    assert_eq!(result_of(&body), "0", "{body}");
}
