//! Cardholder names: normalisation and the format check (verification.md §2 step 2).
//!
//! "Parse, don't validate": a [`CardholderName`] exists only in normal form, so two
//! spellings of the same name (full-width letters, a bullet instead of `·`, an
//! ideographic space between Han characters) compare equal through
//! [`CardholderName::comparison_key`]. The type has no `Display` and its `Debug` prints
//! only the length, so a name cannot reach a log by accident.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// The one middle dot names are stored with (U+00B7, GB/T 15834-2011).
pub const MIDDLE_DOT: char = '\u{00B7}';

/// Most code points in a Han name, middle dots included (§2 step 2).
pub const MAX_HAN_CHARS: usize = 50;
/// Fewest code points in a Latin-script name (§2 step 2).
pub const MIN_LATIN_CHARS: usize = 2;
/// Most code points in a Latin-script name (§2 step 2).
pub const MAX_LATIN_CHARS: usize = 100;

/// A cardholder name in normal form (verification.md §2 step 2).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CardholderName {
    normalized: String,
    key: String,
    script: NameScript,
}

/// Which of the two accepted name shapes a name has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameScript {
    /// Han characters, optionally in parts joined by single `·`.
    Han,
    /// Latin letters (accented too), spaces, `'`, `-`, `.`, single `·`.
    Latin,
}

/// Why a name failed the format check (Result `-2`).
///
/// The messages never contain the name or any character of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameFormatError {
    /// Nothing but white space.
    #[error("name is empty")]
    Empty,
    /// A character that belongs in no name: digit, emoji, symbol, control character,
    /// `?` (mojibake), another script.
    #[error("name contains a character that is not allowed in a name")]
    InvalidCharacter,
    /// Han characters and Latin letters in one name.
    #[error("name mixes Han characters and Latin letters")]
    MixedScripts,
    /// A `·` at the start or end, doubled, or standing alone.
    #[error("name has a misplaced middle dot")]
    MisplacedSeparator,
    /// A Latin name without any letter.
    #[error("name contains no letter")]
    NoLetter,
    /// Shorter than the minimum for its script.
    #[error("name is too short")]
    TooShort,
    /// Longer than the maximum for its script.
    #[error("name is too long")]
    TooLong,
}

impl CardholderName {
    /// Normalises and checks a raw name as received (after decryption), per
    /// verification.md §2 step 2:
    ///
    /// 1. trim surrounding white space (ASCII, U+3000 and other Unicode spaces);
    /// 2. fold full-width ASCII (U+FF01..U+FF5E) and U+3000 to their ASCII forms with an
    ///    explicit width map — CJK compatibility ideographs are *not* folded;
    /// 3. map every middle-dot look-alike (U+00B7, U+0387, U+2022, U+2027, U+2219,
    ///    U+22C5, U+30FB, U+FF65, U+FF0E, and `.` between Han characters) to U+00B7;
    /// 4. drop spaces around `·` and between two Han characters; collapse other runs of
    ///    spaces to one;
    /// 5. Latin-script names only: Unicode NFC (so decomposed accents compare equal).
    ///    Han names are not NFC'd, because NFC maps compatibility ideographs to other
    ///    characters.
    ///
    /// Then the result must be a Han name (1..=50 code points) or a Latin name
    /// (2..=100 code points, at least one letter); see [`NameFormatError`] for the rest.
    ///
    /// Decision beyond the spec: U+2019 and U+02BC (typographic apostrophes, e.g.
    /// `O’Brien`) are read as `'`.
    pub fn parse(raw: &str) -> Result<Self, NameFormatError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NameFormatError::Empty);
        }
        // Cheap bound before allocating: no valid name has more than 100 code points
        // after trimming; inner space runs could collapse, so allow some slack.
        if trimmed.len() > 4 * 1024 {
            return Err(NameFormatError::TooLong);
        }

        // §2 step 2: width fold and middle-dot unification, character by character.
        let mapped: Vec<char> = trimmed.chars().map(map_char).collect();

        // `.` between two Han characters (ignoring spaces) is a middle dot.
        let mut chars = mapped.clone();
        for (i, c) in mapped.iter().enumerate() {
            if *c == '.' {
                let left = mapped[..i].iter().rev().find(|c| **c != ' ');
                let right = mapped[i + 1..].iter().find(|c| **c != ' ');
                if matches!((left, right), (Some(l), Some(r)) if is_han(*l) && is_han(*r)) {
                    chars[i] = MIDDLE_DOT;
                }
            }
        }

        // Spaces: drop around `·` and between Han characters, collapse elsewhere.
        let mut out = String::with_capacity(trimmed.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c != ' ' {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            let prev = if start > 0 {
                Some(chars[start - 1])
            } else {
                None
            };
            let next = chars.get(i).copied();
            let drop = match (prev, next) {
                (Some(p), Some(n)) => {
                    p == MIDDLE_DOT || n == MIDDLE_DOT || (is_han(p) && is_han(n))
                }
                // Cannot happen after trimming, but a space at an edge is never kept.
                _ => true,
            };
            if !drop {
                out.push(' ');
            }
        }

        if out.chars().any(is_han) {
            Self::judge_han(out)
        } else {
            Self::judge_latin(out.nfc().collect())
        }
    }

    fn judge_han(normalized: String) -> Result<Self, NameFormatError> {
        let mut count = 0usize;
        for c in normalized.chars() {
            count += 1;
            if !(is_han(c) || c == MIDDLE_DOT) {
                return Err(if is_latin_letter(c) {
                    NameFormatError::MixedScripts
                } else {
                    NameFormatError::InvalidCharacter
                });
            }
        }
        check_dots(&normalized)?;
        if count > MAX_HAN_CHARS {
            return Err(NameFormatError::TooLong);
        }
        Ok(CardholderName {
            key: normalized.clone(),
            normalized,
            script: NameScript::Han,
        })
    }

    fn judge_latin(normalized: String) -> Result<Self, NameFormatError> {
        let mut count = 0usize;
        let mut letters = 0usize;
        let mut prev: Option<char> = None;
        for c in normalized.chars() {
            count += 1;
            if is_latin_letter(c) {
                letters += 1;
            } else if is_combining_mark(c) {
                // A diacritic with no precomposed form must follow a letter.
                if !prev.is_some_and(|p| is_latin_letter(p) || is_combining_mark(p)) {
                    return Err(NameFormatError::InvalidCharacter);
                }
            } else if !matches!(c, ' ' | '\'' | '-' | '.' | MIDDLE_DOT) {
                return Err(NameFormatError::InvalidCharacter);
            }
            prev = Some(c);
        }
        check_dots(&normalized)?;
        if letters == 0 {
            return Err(NameFormatError::NoLetter);
        }
        if count < MIN_LATIN_CHARS {
            return Err(NameFormatError::TooShort);
        }
        if count > MAX_LATIN_CHARS {
            return Err(NameFormatError::TooLong);
        }
        let key = case_fold(&normalized);
        Ok(CardholderName {
            normalized,
            key,
            script: NameScript::Latin,
        })
    }

    /// The normal form (what a registry stores a keyed hash of, after
    /// [`comparison_key`](Self::comparison_key) folding).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The case-folded form used for matching and hashing: equal keys mean the same
    /// name. For Han names it equals [`normalized`](Self::normalized).
    pub fn comparison_key(&self) -> &str {
        &self.key
    }

    /// Whether this is a Han or a Latin-script name.
    pub fn script(&self) -> NameScript {
        self.script
    }

    /// Length of the normal form in code points.
    pub fn char_count(&self) -> usize {
        self.normalized.chars().count()
    }

    /// Whether two names are the same person's name by the §2 step 2 rules.
    pub fn matches(&self, other: &CardholderName) -> bool {
        self.key == other.key
    }
}

impl fmt::Debug for CardholderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardholderName(<{} chars>)", self.char_count())
    }
}

/// §2 step 2: case-fold Latin letters for comparison. Unicode full case folding for
/// the Latin script: lower case, plus the foldings lower-casing misses (`ß`/`ẞ` → `ss`,
/// `ſ` → `s`, `ẛ` → `ṡ`, `ŉ` → `'n`), then NFC so `ǰ`, `ẖ`… compare equal to what
/// upper-then-lower casing yields.
fn case_fold(normalized: &str) -> String {
    let mut folded = String::with_capacity(normalized.len());
    for c in normalized.chars() {
        match c {
            '\u{00DF}' | '\u{1E9E}' => folded.push_str("ss"),
            '\u{017F}' => folded.push('s'),
            '\u{1E9B}' => folded.push('\u{1E61}'),
            '\u{0149}' => folded.push_str("'n"),
            _ => folded.extend(c.to_lowercase()),
        }
    }
    folded.nfc().collect()
}

/// `·` must join two parts: not first, not last, not doubled (§2 step 2).
fn check_dots(normalized: &str) -> Result<(), NameFormatError> {
    if normalized.starts_with(MIDDLE_DOT)
        || normalized.ends_with(MIDDLE_DOT)
        || normalized.contains("\u{00B7}\u{00B7}")
    {
        return Err(NameFormatError::MisplacedSeparator);
    }
    Ok(())
}

/// Per-character part of §2 step 2: middle-dot look-alikes, width folding, spaces.
fn map_char(c: char) -> char {
    match c {
        // Middle-dot look-alikes listed in §2 step 2 (U+FF0E before the width fold).
        '\u{00B7}' | '\u{0387}' | '\u{2022}' | '\u{2027}' | '\u{2219}' | '\u{22C5}'
        | '\u{30FB}' | '\u{FF65}' | '\u{FF0E}' => MIDDLE_DOT,
        // Full-width ASCII variants → ASCII (the NFKC result for this block).
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        // Inner spaces: ideographic, no-break and the typographic spaces.
        '\u{3000}' | '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => ' ',
        // Typographic apostrophes (decision, see `parse`).
        '\u{2019}' | '\u{02BC}' => '\'',
        _ => c,
    }
}

/// CJK Unified Ideographs (incl. Extensions A–I) and compatibility ideographs.
pub(crate) fn is_han(c: char) -> bool {
    matches!(u32::from(c),
        0x3400..=0x4DBF        // Extension A
        | 0x4E00..=0x9FFF      // URO
        | 0xF900..=0xFAFF      // Compatibility Ideographs
        | 0x20000..=0x2A6DF    // Extension B
        | 0x2A700..=0x2B73F    // Extension C
        | 0x2B740..=0x2B81F    // Extension D
        | 0x2B820..=0x2CEAF    // Extension E
        | 0x2CEB0..=0x2EBEF    // Extension F
        | 0x2EBF0..=0x2EE5F    // Extension I
        | 0x2F800..=0x2FA1F    // Compatibility Ideographs Supplement
        | 0x30000..=0x3134F    // Extension G
        | 0x31350..=0x323AF    // Extension H
    )
}

/// Letters of the Latin script (Basic Latin, Latin-1, Extended-A/B/C/D/E, Additional).
fn is_latin_letter(c: char) -> bool {
    c.is_alphabetic()
        && matches!(u32::from(c),
            0x41..=0x5A | 0x61..=0x7A
            | 0xC0..=0x24F        // Latin-1 Supplement letters, Extended-A, Extended-B
            | 0x1E00..=0x1EFF     // Latin Extended Additional
            | 0x2C60..=0x2C7F     // Latin Extended-C
            | 0xA720..=0xA7FF     // Latin Extended-D
            | 0xAB30..=0xAB6F     // Latin Extended-E
        )
}

/// Combining Diacritical Marks (left over after NFC when no precomposed letter exists).
fn is_combining_mark(c: char) -> bool {
    matches!(u32::from(c), 0x300..=0x36F)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_name() {
        let n = CardholderName::parse("王伟").unwrap();
        assert_eq!(format!("{n:?}"), "CardholderName(<2 chars>)");
    }

    #[test]
    fn latin_nfc_and_case_fold() {
        let a = CardholderName::parse("Jose\u{301} Garci\u{301}a").unwrap();
        let b = CardholderName::parse("JOSÉ GARCÍA").unwrap();
        assert_eq!(a.normalized(), "José García");
        assert_eq!(a.comparison_key(), b.comparison_key());
    }

    #[test]
    fn compatibility_ideographs_are_not_folded() {
        let n = CardholderName::parse("王\u{F900}").unwrap();
        assert_eq!(n.normalized(), "王\u{F900}");
    }
}
