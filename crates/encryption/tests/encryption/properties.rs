//! Property tests: decrypt_params never panics, whatever the params; tampering with a
//! SM4-GCM request never goes unnoticed.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cardcheck_encryption::{Decryptor, EncryptionError};
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::common::*;

fn decryptor() -> &'static Decryptor {
    static D: OnceLock<Decryptor> = OnceLock::new();
    D.get_or_init(|| Decryptor::new(test_ring()))
}

/// Plausible and implausible strings: real example values, Base64 of random bytes,
/// random text.
fn any_string() -> impl Strategy<Value = String> {
    let real: Vec<String> = ["aes", "sm4"]
        .iter()
        .flat_map(|s| {
            let r = &vectors()[*s]["request"];
            let e = &r["Encryption"];
            [
                r["Name"].clone(),
                r["BankCard"].clone(),
                e["CiphertextBlob"].clone(),
                e["Iv"].clone(),
                e["Algorithm"].clone(),
            ]
        })
        .chain(["Name", "BankCard", "IdCard", "SM4-GCM", "AES-256-CBC", ""].map(Value::from))
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    prop_oneof![
        proptest::sample::select(real),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|b| STANDARD.encode(b)),
        ".{0,40}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(any_string(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "EncryptList",
            "CiphertextBlob",
            "Iv",
            "Algorithm",
            "TagList"
        ])
        .prop_map(str::to_owned),
        any_string(),
    ]
}

/// Encryption objects whose members are real, random strings, lists of strings, or any
/// JSON.
fn any_encryption() -> impl Strategy<Value = Value> {
    let member = prop_oneof![
        any_string().prop_map(Value::from),
        proptest::collection::vec(any_string().prop_map(Value::from), 0..4).prop_map(Value::Array),
        any_json(),
    ];
    prop_oneof![
        4 => proptest::collection::btree_map(member_name(), member, 0..7)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => any_json(),
    ]
}

fn any_params() -> impl Strategy<Value = Map<String, Value>> {
    let top_name = prop_oneof![
        proptest::sample::select(vec!["Name", "BankCard", "IdCard"]).prop_map(str::to_owned),
        any_string(),
    ];
    (
        proptest::collection::btree_map(
            top_name,
            prop_oneof![any_string().prop_map(Value::from), any_json()],
            0..5,
        ),
        proptest::option::weighted(0.9, any_encryption()),
    )
        .prop_map(|(fields, encryption)| {
            let mut params: Map<String, Value> = fields.into_iter().collect();
            if let Some(e) = encryption {
                params.insert("Encryption".into(), e);
            }
            params
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decrypt_params_never_panics(params in any_params(), allowed in proptest::collection::vec(any_string(), 0..3)) {
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        for allowed in [&allowed[..], FIELDS] {
            let mut p = params.clone();
            match decryptor().decrypt_params(&mut p, allowed) {
                Ok(_) => prop_assert!(!p.contains_key("Encryption")),
                Err(_) => prop_assert_eq!(&p, &params),
            }
        }
    }

    #[test]
    fn mutated_example_requests_never_panic(
        sm4 in any::<bool>(),
        changes in proptest::collection::vec(
            (proptest::sample::select(vec![
                "Name", "BankCard", "EncryptList", "CiphertextBlob", "Iv", "Algorithm", "TagList",
            ]), prop_oneof![3 => any_string().prop_map(Value::from), 1 => any_json()]),
            1..3,
        ),
    ) {
        let mut params = example_request(if sm4 { "sm4" } else { "aes" });
        for (name, value) in changes {
            if matches!(name, "Name" | "BankCard") {
                params.insert(name.into(), value);
            } else {
                enc(&mut params).insert(name.into(), value);
            }
        }
        let mut p = params.clone();
        match decryptor().decrypt_params(&mut p, FIELDS) {
            Ok(_) => prop_assert!(!p.contains_key("Encryption")),
            Err(_) => prop_assert_eq!(&p, &params),
        }
    }

    #[test]
    fn tampered_sm4_requests_always_fail_with_decrypt(
        target in 0usize..5,
        byte in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut params = example_request("sm4");
        let slot: &mut Value = match target {
            0 => params.get_mut("Name").unwrap(),
            1 => params.get_mut("BankCard").unwrap(),
            2 => &mut enc(&mut params)["CiphertextBlob"],
            3 => &mut enc(&mut params)["TagList"][0],
            _ => &mut enc(&mut params)["Iv"],
        };
        let mut bytes = STANDARD.decode(slot.as_str().unwrap()).unwrap();
        let i = byte.index(bytes.len());
        bytes[i] ^= 1 << bit;
        *slot = Value::from(STANDARD.encode(bytes));
        let mut p = params.clone();
        prop_assert_eq!(decryptor().decrypt_params(&mut p, FIELDS), Err(EncryptionError::Decrypt));
    }
}
