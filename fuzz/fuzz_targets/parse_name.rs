//! Fuzz the cardholder-name parser (verification.md §2 step 2): any UTF-8 string →
//! `CardholderName::parse`. Besides "never panics", an accepted name must be stable:
//! its normal form parses to the same name, with the same comparison key, and stays
//! within the length bounds.
#![no_main]

use cardcheck_domain::{CardholderName, NameScript};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = CardholderName::parse(raw) else {
        return;
    };
    let count = name.char_count();
    match name.script() {
        NameScript::Han => assert!((1..=50).contains(&count), "{count} Han characters"),
        NameScript::Latin => assert!((2..=100).contains(&count), "{count} Latin characters"),
    }
    assert!(!name.normalized().starts_with(' ') && !name.normalized().ends_with(' '));
    let again = CardholderName::parse(name.normalized()).unwrap_or_else(|e| {
        panic!(
            "the normal form {:?} does not parse: {e}",
            name.normalized()
        )
    });
    assert_eq!(again.normalized(), name.normalized());
    assert_eq!(again.comparison_key(), name.comparison_key());
    assert!(name.matches(&again));
});
