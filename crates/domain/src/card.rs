//! Card numbers: parsing (verification.md §2 step 3), masking and the Luhn check.
//!
//! A [`CardNumber`] can only be built by [`CardNumber::parse`], so code that holds one
//! knows it is 12..=19 ASCII digits. Its `Debug` and `Display` print the masked form
//! (first 6, last 4), so a card number cannot reach a log by accident; the digits are
//! reachable only through the explicit [`CardNumber::digits`].

use std::fmt;

/// Fewest digits a card number may have (verification.md §2 step 3).
pub const MIN_DIGITS: usize = 12;
/// Most digits a card number may have (ISO/IEC 7812; verification.md §2 step 3).
pub const MAX_DIGITS: usize = 19;

/// A syntactically valid bank card number: 12..=19 ASCII digits, separators removed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardNumber {
    digits: String,
}

/// Why a card number failed the format check (Result `-3`).
///
/// The messages never contain the number or any part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardFormatError {
    /// Nothing but white space.
    #[error("card number is empty")]
    Empty,
    /// A character other than a digit, or a space/hyphen between digit groups.
    #[error(
        "card number contains a character other than digits and separators between digit groups"
    )]
    InvalidCharacter,
    /// Fewer than 12 digits.
    #[error("card number has {digits} digits; at least 12 are required")]
    TooShort {
        /// How many digits were found.
        digits: usize,
    },
    /// More than 19 digits.
    #[error("card number has more than 19 digits")]
    TooLong,
}

impl CardNumber {
    /// Parses a raw card number as received (after decryption), per verification.md §2
    /// step 3:
    ///
    /// - surrounding white space (any Unicode white space, incl. U+3000) is trimmed;
    /// - full-width digits `０`–`９` are folded to ASCII;
    /// - runs of ASCII spaces and hyphens *between two digits* are removed (a leading or
    ///   trailing separator is not "between digit groups" and is rejected);
    /// - what remains must be 12..=19 ASCII digits.
    ///
    /// Anything else (letters, other scripts' digits, empty, too short or long) is an
    /// error, i.e. Result `-3`. The Luhn digit is **not** checked here: a Luhn failure is
    /// never `-3` (it is judged at step 6, see [`CardNumber::luhn_valid`]).
    pub fn parse(raw: &str) -> Result<Self, CardFormatError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(CardFormatError::Empty);
        }
        let mut digits = String::with_capacity(MAX_DIGITS);
        let mut count = 0usize;
        // A separator run is only accepted once a digit follows it.
        let mut pending_separator = false;
        for c in trimmed.chars() {
            let digit = match c {
                '0'..='9' => Some(c),
                // Full-width digits U+FF10..U+FF19 (§2 step 3: fold to ASCII).
                '\u{FF10}'..='\u{FF19}' => char::from_u32(u32::from(c) - 0xFF10 + u32::from('0')),
                _ => None,
            };
            match digit {
                Some(d) => {
                    pending_separator = false;
                    count += 1;
                    if count > MAX_DIGITS {
                        return Err(CardFormatError::TooLong);
                    }
                    digits.push(d);
                }
                None if (c == ' ' || c == '-') && count > 0 => pending_separator = true,
                None => return Err(CardFormatError::InvalidCharacter),
            }
        }
        if pending_separator {
            // Trailing hyphen (trailing spaces were trimmed above).
            return Err(CardFormatError::InvalidCharacter);
        }
        if count < MIN_DIGITS {
            return Err(CardFormatError::TooShort { digits: count });
        }
        Ok(CardNumber { digits })
    }

    /// The normalised digits (ASCII, no separators). Handle with care: this is the
    /// only way to the full number.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Number of digits (12..=19).
    pub fn len(&self) -> usize {
        self.digits.len()
    }

    /// Always `false` (a card number has at least 12 digits); present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    /// The masked form stored and logged: first 6 digits, one `*` per hidden digit,
    /// last 4 digits, e.g. `622576******8888`.
    pub fn masked(&self) -> String {
        let n = self.digits.len();
        let mut out = String::with_capacity(n);
        out.push_str(&self.digits[..6]);
        out.extend(std::iter::repeat_n('*', n - 10));
        out.push_str(&self.digits[n - 4..]);
        out
    }

    /// Whether the last digit is the correct Luhn (mod 10) check digit.
    pub fn luhn_valid(&self) -> bool {
        luhn_valid(&self.digits)
    }
}

/// Luhn (mod 10) check over a string of ASCII digits; non-digits make it `false`.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The Luhn check digit that completes `payload` (digits without the check digit).
/// Returns `None` if `payload` contains a non-digit.
pub fn luhn_check_digit(payload: &str) -> Option<char> {
    let mut sum = 0u32;
    for (i, b) in payload.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let mut d = u32::from(b - b'0');
        // The check digit will sit at position 0, so payload digits at even i double.
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    char::from_digit((10 - sum % 10) % 10, 10)
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masks_first_six_and_last_four() {
        let c = CardNumber::parse("6225768888888888").unwrap();
        assert_eq!(c.masked(), "622576******8888");
        assert_eq!(format!("{c}"), "622576******8888");
        assert_eq!(format!("{c:?}"), "CardNumber(622576******8888)");
        let c12 = CardNumber::parse("123456789012").unwrap();
        assert_eq!(c12.masked(), "123456**9012");
    }

    #[test]
    fn luhn_known_answers() {
        assert!(luhn_valid("4242424242424242"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(luhn_valid("6226090210146748"));
        assert_eq!(luhn_check_digit("424242424242424"), Some('2'));
        assert_eq!(luhn_check_digit("622609021014674"), Some('8'));
        assert!(!luhn_valid(""));
    }
}
