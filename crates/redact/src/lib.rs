//! `cardcheck-redact`: redaction of text that could hold a card number — the one routine
//! that decides what a "digit run" is, used by the request log and error messages
//! (`cardcheck_tc3::error::sanitize_name`, six digits in a row) and the audit log
//! (`cardcheck_store::audit`, twelve). A leaf crate of its own so that `tc3` and
//! `domain` keep knowing nothing of each other (docs/design.md).
//!
//! A run is a span of decimal digits — ASCII, full-width (`０`–`９`) or any other
//! character Unicode counts as numeric — in which single separators (white space,
//! `-`, `.`, `_`, their full-width forms and the Unicode dashes U+2010–U+2015) may stand
//! between two digits: `6225-7688-8888-8888`, `6225 7688 8888 8888`, `6225.7688…`. A run
//! is replaced whole (from its first digit to its last) by a marker when it has the
//! caller's minimum of digits *in a row*, or [`CARD_MIN_DIGITS`] digits in all (a card
//! number written in groups); separators at its edges and everything else stay. So a
//! version such as `3.1.189.1` (six digits, never more than three in a row) is kept,
//! while `6225.7688.8888.8888` is not.

#![forbid(unsafe_code)]

use std::borrow::Cow;

/// The fewest digits a bank card number has (verification.md: 12 to 19): a run split
/// by separators is redacted once it holds this many.
pub const CARD_MIN_DIGITS: usize = 12;

/// The marker a redacted run becomes.
pub const REDACTED: &str = "(redacted)";

/// Whether `c` counts as a digit of a run: any Unicode numeric character (decimal
/// digits of every script, full-width digits, circled and superscript digits).
fn is_digit(c: char) -> bool {
    c.is_numeric()
}

/// Whether `c` may stand (alone) between two digits of one run.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '_' | '－' | '．' | '＿' | '\u{2010}'..='\u{2015}' | '\u{2212}'
        )
}

/// `text` with every digit run (see the module documentation) of at least
/// `min_digits` digits replaced by `marker`. Borrowed when nothing was redacted.
pub fn redact_digit_runs<'a>(text: &'a str, min_digits: usize, marker: &str) -> Cow<'a, str> {
    replace_digit_runs(text, min_digits, |_| marker.to_owned())
}

/// `text` with every card-length digit run ([`CARD_MIN_DIGITS`] digits or more, grouped
/// or not) masked as a card number is shown: its first 6 and last 4 digits kept, `*`
/// for the others, the separators dropped (`6225 7688 8888 8888` → `622576******8888`).
pub fn mask_digit_runs(text: &str) -> Cow<'_, str> {
    replace_digit_runs(text, CARD_MIN_DIGITS, |digits| {
        let n = digits.len();
        if n < 10 {
            return "*".repeat(n);
        }
        let mut out: String = digits[..6].iter().collect();
        out.extend(std::iter::repeat_n('*', n - 10));
        out.extend(&digits[n - 4..]);
        out
    })
}

/// `text` with every digit run (see the module documentation) of at least
/// `min_digits` digits replaced by `replace(the run's digits)`. Borrowed when nothing was replaced. The one
/// scanner behind [`redact_digit_runs`] and [`mask_digit_runs`].
pub fn replace_digit_runs<'a>(
    text: &'a str,
    min_digits: usize,
    mut replace: impl FnMut(&[char]) -> String,
) -> Cow<'a, str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out: Option<String> = None;
    // Byte offset in `text` up to which `out` holds the text (when it exists).
    let mut copied = 0;
    let mut digits: Vec<char> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i].1) {
            i += 1;
            continue;
        }
        // A run: digits, with single separators between digits.
        let start = i;
        let mut end = i; // one past the last digit
        digits.clear();
        let (mut in_a_row, mut most_in_a_row) = (0, 0);
        let mut j = i;
        while j < chars.len() {
            let c = chars[j].1;
            if is_digit(c) {
                digits.push(c);
                in_a_row += 1;
                most_in_a_row = most_in_a_row.max(in_a_row);
                j += 1;
                end = j;
            } else if is_separator(c) && chars.get(j + 1).is_some_and(|&(_, n)| is_digit(n)) {
                in_a_row = 0;
                j += 1;
            } else {
                break;
            }
        }
        if most_in_a_row >= min_digits || digits.len() >= min_digits.max(CARD_MIN_DIGITS) {
            let from = chars[start].0;
            let to = chars.get(end).map_or(text.len(), |&(at, _)| at);
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[copied..from]);
            buf.push_str(&replace(&digits));
            copied = to;
        }
        i = end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// Digit runs at least this long are redacted from echoed identifiers: shorter than
/// any card number, so that a card cut into pieces still goes.
pub const ECHO_MIN_DIGITS: usize = 6;

/// Most characters of an echoed identifier kept (`…` marks a cut).
pub const ECHO_MAX_CHARS: usize = 64;

/// Makes a client-supplied *identifier* (a parameter name, a field named in
/// `Encryption.EncryptList`, a SecretId, an Action, a RequestClient) safe to echo in an
/// error message or a log line: never anything that could be a card number, because a
/// malformed request may put a value where a name belongs — every run of
/// [`ECHO_MIN_DIGITS`] digits becomes [`REDACTED`] ([`redact_digit_runs`]) — control
/// characters and backquotes become `?`, and at most [`ECHO_MAX_CHARS`] characters are
/// kept. The one rule for every echo (the API's messages, the encryption errors, the
/// request log).
pub fn sanitize_echo(text: &str) -> String {
    let redacted = redact_digit_runs(text, ECHO_MIN_DIGITS, REDACTED);
    let mut out: String = redacted
        .chars()
        .take(ECHO_MAX_CHARS)
        .map(|c| if c.is_control() || c == '`' { '?' } else { c })
        .collect();
    if redacted.chars().count() > ECHO_MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str, min: usize) -> String {
        redact_digit_runs(text, min, REDACTED).into_owned()
    }

    #[test]
    fn card_length_runs_are_masked_six_and_four() {
        assert_eq!(
            mask_digit_runs("card 6225768888888888, 6225 7688 8888 8888."),
            "card 622576******8888, 622576******8888."
        );
        assert_eq!(
            mask_digit_runs("６２２５７６８８８８８８８８８８"),
            "６２２５７６******８８８８"
        );
        for keep in ["12345678901", "v3.1.189.1", "2026-12-04 18:29", "Result -4"] {
            assert!(matches!(mask_digit_runs(keep), Cow::Borrowed(_)), "{keep}");
        }
    }

    #[test]
    fn plain_digit_runs_at_the_minimum_are_redacted() {
        assert_eq!(r("6225768888888888", 6), "(redacted)");
        assert_eq!(r("x123456y", 6), "x(redacted)y");
        assert_eq!(r("x12345y", 6), "x12345y");
        assert_eq!(r("Encryption.TagList.10", 6), "Encryption.TagList.10");
        assert!(matches!(
            redact_digit_runs("SDK_PYTHON_3.1.179", 6, REDACTED),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn card_numbers_split_by_dashes_spaces_dots_or_underscores_are_redacted() {
        assert_eq!(r("6225-7688-8888-8888", 6), "(redacted)");
        assert_eq!(r("AKID6225 7688 8888 8888", 6), "AKID(redacted)");
        assert_eq!(r("card 6225.7688.8888.8888!", 6), "card (redacted)!");
        assert_eq!(r("6225_7688_8888_8888.csv", 6), "(redacted).csv");
        assert_eq!(r("6225\t7688\u{3000}8888\u{a0}8888", 6), "(redacted)");
        assert_eq!(r("6225－7688－8888－8888", 6), "(redacted)");
        // Grouped digits short of a card number (dates, versions) stay.
        assert_eq!(r("12-34-56", 6), "12-34-56");
        assert_eq!(r("2026-12-04", 6), "2026-12-04");
        // Two separators in a row end a run.
        assert_eq!(r("123 - 456", 6), "123 - 456");
        assert_eq!(r("123--456", 6), "123--456");
        // Separators at the edges stay.
        assert_eq!(r("-123456-", 6), "-(redacted)-");
    }

    #[test]
    fn full_width_and_other_unicode_digits_are_redacted() {
        assert_eq!(r("６２２５７６８８８８８８８８８８", 6), "(redacted)");
        assert_eq!(r("name６２２５ ７６８８ ８８８８", 6), "name(redacted)");
        assert_eq!(r("name６２２５ ７６８８", 6), "name６２２５ ７６８８");
        // Arabic-Indic and Devanagari digits, and a mix with ASCII.
        assert_eq!(r("٦٢٢٥٧٦٨٨", 6), "(redacted)");
        assert_eq!(r("६२२५७६", 6), "(redacted)");
        assert_eq!(r("622５7６", 6), "(redacted)");
        assert_eq!(r("６２２５７", 6), "６２２５７");
    }

    #[test]
    fn the_minimum_is_the_callers() {
        let date = "inserted 1000000, updated 2 on 2026-12-04";
        assert_eq!(r(date, 12), date);
        assert_eq!(r("card 6225 7688 8888 8888!", 12), "card (redacted)!");
        assert_eq!(r("a 1234 5678 901 b", 12), "a 1234 5678 901 b");
        assert_eq!(r("a 1234 5678 9012 b", 12), "a (redacted) b");
    }

    #[test]
    fn redaction_keeps_multibyte_text_around_a_run() {
        assert_eq!(r("张三6225768888888888李四", 6), "张三(redacted)李四");
        assert_eq!(r("", 6), "");
        assert_eq!(r("1 2 3 4 5 6 a 1", 6), "1 2 3 4 5 6 a 1");
        assert_eq!(r("1 2 3 4 5 6 7 8 9 0 1 2 a", 6), "(redacted) a");
    }

    proptest::proptest! {
        /// Any text, any minimum: no panic, and what comes out holds no run of the
        /// minimum's ASCII digits in a row, nor a card-length run across separators.
        #[test]
        fn no_input_panics_and_no_long_run_survives(
            text in "[0-9０-９ .\\-_a-z张]{0,80}",
            min in 1usize..20,
        ) {
            let out = redact_digit_runs(&text, min, REDACTED);
            let mut in_a_row = 0;
            let mut in_run = 0;
            let chars: Vec<char> = out.chars().collect();
            for (k, &c) in chars.iter().enumerate() {
                if is_digit(c) {
                    in_a_row += 1;
                    in_run += 1;
                    proptest::prop_assert!(in_a_row < min, "{out:?}");
                    proptest::prop_assert!(in_run < min.max(CARD_MIN_DIGITS), "{out:?}");
                } else if is_separator(c) && chars.get(k + 1).is_some_and(|&n| is_digit(n)) {
                    in_a_row = 0;
                } else {
                    in_a_row = 0;
                    in_run = 0;
                }
            }
        }
    }
}
