//! Fuzz the form decoder and the flattening decoder (protocol.md §2.3): bytes →
//! `form::decode_pairs` (with and without duplicate rejection) → UTF-8 →
//! `flatten::unflatten`. Whatever unflattens must survive the way back: `flatten` →
//! `unflatten` gives the same parameters, and `urlencode` → `decode_pairs` gives the
//! same pairs (the signer's encoding and the server's decoding agree).
#![no_main]

use cardcheck_tc3::flatten::{flatten, unflatten};
use cardcheck_tc3::form::{decode_pairs, has_key, urlencode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = has_key(data, b"Signature");
    for reject_duplicates in [true, false] {
        let Ok(pairs) = decode_pairs(data, reject_duplicates) else {
            continue;
        };
        let strings: Option<Vec<(String, String)>> = pairs
            .into_iter()
            .map(|(k, v)| Some((String::from_utf8(k).ok()?, String::from_utf8(v).ok()?)))
            .collect();
        let Some(strings) = strings else {
            continue;
        };
        let Ok(params) = unflatten(strings) else {
            continue;
        };
        let flat = flatten(&params);
        let again = unflatten(flat.clone())
            .unwrap_or_else(|e| panic!("flatten output {flat:?} does not unflatten: {e:?}"));
        assert_eq!(again, params);
        let encoded = urlencode(&flat);
        let decoded = decode_pairs(encoded.as_bytes(), true)
            .unwrap_or_else(|e| panic!("urlencode output {encoded:?} does not decode: {e:?}"));
        let decoded: Vec<(String, String)> = decoded
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(decoded, flat);
    }
});
