//! Fuzz the card-number parser (verification.md §2 step 3): any UTF-8 string →
//! `CardNumber::parse`. An accepted number is 12–19 ASCII digits, parses to itself,
//! and its masked form (the only form stored or logged) hides the middle digits.
#![no_main]

use cardcheck_domain::CardNumber;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(card) = CardNumber::parse(raw) else {
        return;
    };
    let digits = card.digits();
    assert!((12..=19).contains(&digits.len()), "{} digits", digits.len());
    assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(card.len(), digits.len());
    let masked = card.masked();
    assert_eq!(masked.len(), digits.len());
    assert_eq!(masked[..6], digits[..6]);
    assert_eq!(masked[masked.len() - 4..], digits[digits.len() - 4..]);
    assert!(masked[6..masked.len() - 4].bytes().all(|b| b == b'*'));
    assert_ne!(masked, digits);
    let again = CardNumber::parse(digits).expect("the digits parse");
    assert_eq!(again.digits(), digits);
    let _ = card.luhn_valid();
});
