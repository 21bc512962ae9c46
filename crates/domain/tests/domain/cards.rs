//! Card numbers: verification.md §2 step 3, and `data/test_cards_public.csv` through the
//! pipeline (steps 5–6 with the Luhn policy of step 6).

use cardcheck_domain::{
    BinLookup, BinTable, CardFormatError, CardNumber, CardStatus, ResultCode, SourceAnswer,
};

use crate::common::{Scripted, card, csv_rows, decide, engine};

#[test]
fn separators_between_digit_groups_and_full_width_digits_are_accepted() {
    let cases = [
        ("6225768888888888", "6225768888888888"),
        ("  6225 7688 8888 8888\u{3000}", "6225768888888888"),
        ("6225-7688-8888-8888", "6225768888888888"),
        ("6225 - 7688  8888-8888", "6225768888888888"),
        ("６２２５７６８８８８８８８８８８", "6225768888888888"),
        ("６２２５ ７６８８-８８８８ ８８８８", "6225768888888888"),
        ("123456789012", "123456789012"),
        ("1234567890123456789", "1234567890123456789"),
    ];
    for (raw, digits) in cases {
        assert_eq!(CardNumber::parse(raw).unwrap().digits(), digits, "{raw:?}");
    }
}

#[test]
fn malformed_card_numbers_are_format_errors() {
    use CardFormatError::*;
    let cases: &[(&str, CardFormatError)] = &[
        ("", Empty),
        ("  \u{3000} ", Empty),
        ("12345678901", TooShort { digits: 11 }),
        ("12345678901234567890", TooLong),
        ("6225768888888888X", InvalidCharacter),
        ("-6225768888888888", InvalidCharacter),
        ("6225768888888888-", InvalidCharacter),
        ("6225_7688_8888_8888", InvalidCharacter),
        ("6225\u{3000}7688\u{3000}8888\u{3000}8888", InvalidCharacter),
        ("6225\t7688 8888 8888", InvalidCharacter),
        // Arabic-Indic and Devanagari digits are other scripts' digits.
        ("٦٢٢٥٧٦٨٨٨٨٨٨٨٨٨٨", InvalidCharacter),
        ("६२२५७६८८८८८८८८८८", InvalidCharacter),
        ("+6225768888888888", InvalidCharacter),
    ];
    for (raw, err) in cases {
        assert_eq!(CardNumber::parse(raw), Err(*err), "{raw:?}");
    }
}

#[test]
fn a_luhn_failure_is_never_a_format_error() {
    let c = CardNumber::parse("4242424242424241").unwrap();
    assert!(!c.luhn_valid());
}

#[test]
fn debug_display_and_errors_never_show_the_full_number() {
    let c = card("6225 7688 8888 8888");
    for shown in [format!("{c}"), format!("{c:?}"), c.masked()] {
        assert!(!shown.contains("6225768888888888"), "{shown}");
        assert!(shown.contains("622576******8888"), "{shown}");
    }
    let e = CardNumber::parse("62257688888888880000").unwrap_err();
    assert!(!e.to_string().contains("6225"));
}

#[tokio::test]
async fn every_public_test_card_is_decided_as_its_network_and_length_imply() {
    let rows = csv_rows("data/test_cards_public.csv");
    assert_eq!(rows.len(), 31);
    let table = BinTable::builtin();
    let source = Scripted::new(Ok(SourceAnswer::Match(CardStatus::Active)));
    for row in &rows {
        let number = &row["card_number"];
        let c = card(number);
        assert_eq!(c.len().to_string(), row["length"], "{number}");
        assert_eq!(c.luhn_valid(), row["luhn_valid"] == "yes", "{number}");

        // Step 5: issuer and network per the fixture's columns.
        let BinLookup::Found(entry) = table.lookup(&c) else {
            panic!("{number}: {:?}", table.lookup(&c));
        };
        assert_eq!(
            entry.network.name(),
            row["network_by_card_networks_csv"],
            "{number}"
        );
        assert_eq!(
            entry.bank_code.as_deref().unwrap_or(""),
            row["cn_bank_code_by_merged"],
            "{number}"
        );
        assert_eq!(
            entry.bank_name.as_deref().unwrap_or(""),
            row["cn_bank_name_by_merged"],
            "{number}"
        );
        if !row["cn_matched_prefix"].is_empty() {
            assert_eq!(entry.prefix, row["cn_matched_prefix"], "{number}");
            assert_eq!(
                entry.card_type.code(),
                row["cn_card_type_by_merged"],
                "{number}"
            );
        }

        // The oracle column: with the default Luhn policy every row reaches the source.
        assert!(
            row["decided_before_lookup"].starts_with("passes to source"),
            "{number}: fixture changed"
        );
        let lenient = decide(&engine(false), "Wei Xiaobao", number, &source).await;
        assert_eq!(lenient.result, ResultCode::Passed, "{number}");

        // With strict Luhn, exactly the Luhn failures become -7.
        let strict = decide(&engine(true), "Wei Xiaobao", number, &source).await;
        let expected = if c.luhn_valid() {
            ResultCode::Passed
        } else {
            ResultCode::InvalidCardNumber
        };
        assert_eq!(strict.result, expected, "{number} strict");
    }
}
