//! Property tests: parsing never panics; valid names and cards are fixed points of
//! normalisation; an accepted card differs from its digits only by separators/width.

use cardcheck_domain::{BinTable, CardNumber, CardholderName};
use proptest::prelude::*;

/// Characters that exercise every branch of the name and card rules.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        any::<char>(),
        prop::sample::select(vec![
            ' ',
            '\u{3000}',
            '\t',
            '.',
            '·',
            '\u{0387}',
            '\u{2022}',
            '\u{2027}',
            '\u{2219}',
            '\u{22C5}',
            '\u{30FB}',
            '\u{FF65}',
            '\u{FF0E}',
            '-',
            '\'',
            '\u{2019}',
            '\u{301}',
            'a',
            'Z',
            'é',
            'Ａ',
            '０',
            '9',
            '王',
            '伟',
            '\u{F900}',
            '\u{2B5AF}',
            '😀',
            '?',
        ]),
        prop::char::range('\u{4E00}', '\u{9FFF}'),
        prop::char::range('\u{FF01}', '\u{FF5E}'),
    ]
}

fn messy_string() -> impl Strategy<Value = String> {
    prop::collection::vec(interesting_char(), 0..40).prop_map(|v| v.into_iter().collect())
}

fn han_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::char::range('\u{4E00}', '\u{9FFF}'),
        prop::char::range('\u{3400}', '\u{4DBF}'),
        prop::char::range('\u{20000}', '\u{2A6DF}'),
        prop::char::range('\u{2B820}', '\u{2CEAF}'),
        prop::char::range('\u{F900}', '\u{FA6D}'),
    ]
}

/// Han names in parts, with random look-alike dots and spaces as a user might type.
fn han_name() -> impl Strategy<Value = String> {
    let part = || prop::collection::vec(han_char(), 1..5);
    let sep = prop::sample::select(vec![
        "·",
        "•",
        "・",
        "．",
        "‧",
        "･",
        "·",
        ".",
        " · ",
        "\u{3000}•",
    ]);
    (
        part(),
        prop::collection::vec((sep, part()), 0..3),
        prop::sample::select(vec!["", " ", "\u{3000}"]),
    )
        .prop_map(|(first, rest, pad)| {
            let mut s = String::from(pad);
            s.extend(first);
            for (sep, part) in rest {
                s.push_str(sep);
                s.extend(part);
            }
            s.push_str(pad);
            s
        })
}

fn latin_name() -> impl Strategy<Value = String> {
    "[A-Za-zÀ-ÖØ-öø-ÿ]{1,12}([ '\\-.][A-Za-zÀ-ÖØ-öø-ÿ]{1,12}){0,3}"
        .prop_filter("2..=100 code points", |s| s.chars().count() >= 2)
}

proptest! {
    // 256 cases each by default; `PROPTEST_CASES=20000` for a deeper run.

    #[test]
    fn parsing_never_panics(s in messy_string(), t in any::<String>()) {
        let _ = CardholderName::parse(&s);
        let _ = CardholderName::parse(&t);
        let _ = CardNumber::parse(&s);
        if let Ok(c) = CardNumber::parse(&t) {
            let _ = BinTable::builtin().lookup(&c);
        }
    }

    #[test]
    fn accepted_names_are_fixed_points(s in messy_string()) {
        if let Ok(n) = CardholderName::parse(&s) {
            let again = CardholderName::parse(n.normalized()).unwrap();
            prop_assert_eq!(again.normalized(), n.normalized());
            prop_assert_eq!(again.comparison_key(), n.comparison_key());
        }
    }

    #[test]
    fn generated_han_names_are_valid_and_stable(s in han_name()) {
        let n = CardholderName::parse(&s).unwrap();
        prop_assert!(!n.normalized().contains(' '));
        prop_assert!(n.normalized().chars().all(|c| c == '·' || !c.is_ascii()));
        let again = CardholderName::parse(n.normalized()).unwrap();
        prop_assert_eq!(again.normalized(), n.normalized());
    }

    #[test]
    fn generated_latin_names_are_valid_and_stable(s in latin_name()) {
        let n = CardholderName::parse(&s).unwrap();
        let upper = CardholderName::parse(&s.to_uppercase());
        let again = CardholderName::parse(n.normalized()).unwrap();
        prop_assert_eq!(again.normalized(), n.normalized());
        if let Ok(u) = upper {
            prop_assert_eq!(u.comparison_key(), n.comparison_key());
        }
    }

    #[test]
    fn accepted_cards_differ_from_their_digits_only_by_separators_and_width(s in messy_string()) {
        if let Ok(c) = CardNumber::parse(&s) {
            let folded: String = s
                .trim()
                .chars()
                .filter(|ch| *ch != ' ' && *ch != '-')
                .map(|ch| match ch {
                    '０'..='９' => char::from_u32(u32::from(ch) - 0xFF10 + u32::from('0')).unwrap(),
                    other => other,
                })
                .collect();
            prop_assert_eq!(folded.as_str(), c.digits());
            prop_assert_eq!(CardNumber::parse(c.digits()).unwrap(), c);
        }
    }

    #[test]
    fn formatted_cards_parse_to_their_digits(
        digits in "[0-9]{12,19}",
        seps in prop::collection::vec(prop::sample::select(vec!["", " ", "-", "  ", " - "]), 19),
        wide in any::<bool>(),
    ) {
        let mut raw = String::from(" ");
        for (i, d) in digits.chars().enumerate() {
            if i > 0 {
                raw.push_str(seps[i]);
            }
            raw.push(if wide { char::from_u32(u32::from(d) - u32::from('0') + 0xFF10).unwrap() } else { d });
        }
        raw.push('\u{3000}');
        let c = CardNumber::parse(&raw).unwrap();
        prop_assert_eq!(c.digits(), digits.as_str());
        prop_assert_eq!(&CardNumber::parse(c.digits()).unwrap(), &c);
        let shown = format!("{:?}", c);
        prop_assert!(!shown.contains(&digits));
    }
}
