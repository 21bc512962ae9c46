//! Cardholder names: verification.md §2 step 2 against `data/test_names.csv` and the
//! normalisation rules one by one.

use cardcheck_domain::{CardholderName, NameFormatError, NameScript};

use crate::common::csv_rows;

#[test]
fn every_row_of_test_names_csv_is_decided_as_expected() {
    let rows = csv_rows("data/test_names.csv");
    assert_eq!(rows.len(), 71);
    let mut failures = Vec::new();
    for row in &rows {
        let name = &row["name"];
        let expected_valid = match row["expected"].as_str() {
            "valid" => true,
            "invalid" => false,
            other => panic!("unexpected `expected` value {other:?}"),
        };
        let parsed = CardholderName::parse(name);
        if parsed.is_ok() != expected_valid {
            failures.push(format!(
                "{} ({}): {:?}",
                row["codepoints"], row["category"], parsed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "misjudged rows:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_middle_dot_look_alike_normalises_to_u00b7() {
    let canonical = CardholderName::parse("阿沛·阿旺晋美").unwrap();
    for dot in [
        '\u{00B7}', '\u{0387}', '\u{2022}', '\u{2027}', '\u{2219}', '\u{22C5}', '\u{30FB}',
        '\u{FF65}', '\u{FF0E}', '.',
    ] {
        for (l, r) in [
            ("", ""),
            (" ", ""),
            ("", " "),
            (" ", " "),
            ("\u{3000}", "  "),
        ] {
            let raw = format!("阿沛{l}{dot}{r}阿旺晋美");
            let n = CardholderName::parse(&raw)
                .unwrap_or_else(|e| panic!("U+{:04X} with spaces: {e}", u32::from(dot)));
            assert_eq!(
                n.normalized(),
                canonical.normalized(),
                "U+{:04X}",
                u32::from(dot)
            );
            assert_eq!(n.comparison_key(), canonical.comparison_key());
        }
    }
}

#[test]
fn white_space_is_trimmed_removed_between_han_and_collapsed_elsewhere() {
    let cases = [
        (" 王伟 ", "王伟"),
        ("\u{3000}王伟\u{3000}", "王伟"),
        ("\t王伟\n", "王伟"),
        ("王 伟", "王伟"),
        ("王\u{3000}伟", "王伟"),
        ("王   \u{3000} 伟", "王伟"),
        ("  Wang    Wei ", "Wang Wei"),
        ("Wang\u{3000}Wei", "Wang Wei"),
        ("Mary · Jane", "Mary·Jane"),
    ];
    for (raw, normal) in cases {
        assert_eq!(
            CardholderName::parse(raw).unwrap().normalized(),
            normal,
            "{raw:?}"
        );
    }
}

#[test]
fn full_width_latin_is_folded_and_latin_is_case_folded_for_comparison() {
    let a = CardholderName::parse("Ｗｅｉ　Ｘｉａｏｂａｏ").unwrap();
    assert_eq!(a.normalized(), "Wei Xiaobao");
    let b = CardholderName::parse("WEI xiaobao").unwrap();
    assert_eq!(a.comparison_key(), b.comparison_key());
    assert_eq!(a.comparison_key(), "wei xiaobao");
    assert_eq!(b.normalized(), "WEI xiaobao");
    assert!(a.matches(&b));
    assert_eq!(a.script(), NameScript::Latin);
}

#[test]
fn latin_names_allow_accents_apostrophes_hyphens_and_dots() {
    for raw in [
        "José García",
        "O'Brien",
        "O’Brien",
        "Jean-Luc Picard",
        "J. R. R. Tolkien",
        "Zoë Ødegård",
        "Nguyễn Văn An",
        "Li",
    ] {
        assert!(CardholderName::parse(raw).is_ok(), "{raw}");
    }
    assert_eq!(
        CardholderName::parse("O’Brien").unwrap().normalized(),
        "O'Brien"
    );
}

#[test]
fn han_names_beyond_the_bmp_and_compatibility_ideographs_are_valid() {
    let n = CardholderName::parse("赵孟𫖯").unwrap();
    assert_eq!(n.char_count(), 3);
    assert_eq!(n.script(), NameScript::Han);
    // Extension G and H, and a compatibility ideograph kept as is.
    for raw in ["王\u{30000}", "李\u{31350}", "金\u{F900}", "王\u{2F800}"] {
        let n = CardholderName::parse(raw).unwrap();
        assert_eq!(n.normalized(), raw);
    }
}

#[test]
fn invalid_names_and_their_reasons() {
    use NameFormatError::*;
    let cases: &[(&str, NameFormatError)] = &[
        ("", Empty),
        ("   \u{3000}", Empty),
        ("王伟1", InvalidCharacter),
        ("王伟😀", InvalidCharacter),
        ("??????", InvalidCharacter),
        ("王\u{0007}伟", InvalidCharacter),
        ("王\t伟", InvalidCharacter),
        ("王伟A", MixedScripts),
        ("Wang 伟", MixedScripts),
        ("·", MisplacedSeparator),
        ("•", MisplacedSeparator),
        ("·王伟", MisplacedSeparator),
        ("王伟·", MisplacedSeparator),
        ("阿沛··阿旺晋美", MisplacedSeparator),
        ("阿沛· ·阿旺晋美", MisplacedSeparator),
        ("Mary··Jane", MisplacedSeparator),
        ("--", NoLetter),
        ("A", TooShort),
        ("\u{301}abc", InvalidCharacter),
        ("Иван Петров", InvalidCharacter),
        ("王\u{3007}", InvalidCharacter),
    ];
    for (raw, reason) in cases {
        assert_eq!(CardholderName::parse(raw), Err(*reason), "{raw:?}");
    }
}

#[test]
fn length_limits() {
    let han50 = "王".repeat(50);
    assert!(CardholderName::parse(&han50).is_ok());
    assert_eq!(
        CardholderName::parse(&"王".repeat(51)),
        Err(NameFormatError::TooLong)
    );
    let latin100 = "a".repeat(100);
    assert!(CardholderName::parse(&latin100).is_ok());
    assert_eq!(
        CardholderName::parse(&"a".repeat(101)),
        Err(NameFormatError::TooLong)
    );
    assert_eq!(
        CardholderName::parse(&"a".repeat(1 << 20)),
        Err(NameFormatError::TooLong)
    );
}

#[test]
fn errors_and_debug_never_contain_the_name() {
    for raw in ["王伟1", "张三", "Wei Xiaobao", "王伟A"] {
        match CardholderName::parse(raw) {
            Ok(n) => assert!(!format!("{n:?}").contains(raw)),
            Err(e) => {
                assert!(!e.to_string().contains(raw));
                assert!(!e.to_string().contains('王'));
            }
        }
    }
}

#[test]
fn latin_comparison_uses_full_case_folding() {
    let a = CardholderName::parse("Weiß").unwrap();
    let b = CardholderName::parse("WEISS").unwrap();
    assert_eq!(a.comparison_key(), b.comparison_key());
    assert_eq!(a.normalized(), "Weiß");
}
