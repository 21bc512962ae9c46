//! Card status as a verification source reports it (verification.md §2 step 7), and
//! the 1:1 map from status to Result.

use std::fmt;

use crate::result::ResultCode;

/// The status of a card whose holder's name matched (verification.md §2 step 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardStatus {
    /// Usable: `0`.
    Active,
    /// Cardless payment not enabled: `-5`.
    CardlessNotEnabled,
    /// Confiscated: `-6`.
    Confiscated,
    /// Dormant or not initialised: `-9`.
    Dormant,
    /// Fraud / swallowed card: `-10`.
    Fraud,
    /// Reported lost: `-11`.
    Lost,
    /// Expired: `-12`.
    Expired,
    /// Restricted: `-13`.
    Restricted,
    /// PIN tries exceeded: `-14`.
    PinLocked,
    /// The issuer does not support the transaction: `-15`.
    IssuerUnsupported,
    /// Status exception: `-18`.
    StatusException,
    /// Declined for another reason: `-1`.
    Declined,
}

impl CardStatus {
    /// Every status.
    pub const ALL: [CardStatus; 12] = [
        CardStatus::Active,
        CardStatus::CardlessNotEnabled,
        CardStatus::Confiscated,
        CardStatus::Dormant,
        CardStatus::Fraud,
        CardStatus::Lost,
        CardStatus::Expired,
        CardStatus::Restricted,
        CardStatus::PinLocked,
        CardStatus::IssuerUnsupported,
        CardStatus::StatusException,
        CardStatus::Declined,
    ];

    /// The status's word as used in registry files and the admin CLI
    /// (`active`, `cardless-not-enabled`, …).
    pub fn as_word(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::CardlessNotEnabled => "cardless-not-enabled",
            CardStatus::Confiscated => "confiscated",
            CardStatus::Dormant => "dormant",
            CardStatus::Fraud => "fraud",
            CardStatus::Lost => "lost",
            CardStatus::Expired => "expired",
            CardStatus::Restricted => "restricted",
            CardStatus::PinLocked => "pin-locked",
            CardStatus::IssuerUnsupported => "issuer-unsupported",
            CardStatus::StatusException => "status-exception",
            CardStatus::Declined => "declined",
        }
    }

    /// Parses a status word (exact, lower case; see [`CardStatus::as_word`]).
    pub fn from_word(word: &str) -> Option<Self> {
        CardStatus::ALL.into_iter().find(|s| s.as_word() == word)
    }

    /// The Result this status decides when the name matched (§2 step 7).
    pub fn result(self) -> ResultCode {
        match self {
            CardStatus::Active => ResultCode::Passed,
            CardStatus::CardlessNotEnabled => ResultCode::CardlessPaymentNotEnabled,
            CardStatus::Confiscated => ResultCode::Confiscated,
            CardStatus::Dormant => ResultCode::Dormant,
            CardStatus::Fraud => ResultCode::Fraud,
            CardStatus::Lost => ResultCode::Lost,
            CardStatus::Expired => ResultCode::Expired,
            CardStatus::Restricted => ResultCode::Restricted,
            CardStatus::PinLocked => ResultCode::PinTriesExceeded,
            CardStatus::IssuerUnsupported => ResultCode::IssuerUnsupported,
            CardStatus::StatusException => ResultCode::StatusException,
            CardStatus::Declined => ResultCode::Failed,
        }
    }

    /// The status that yields `result`, if any (the inverse of [`CardStatus::result`]).
    pub fn for_result(result: ResultCode) -> Option<Self> {
        CardStatus::ALL.into_iter().find(|s| s.result() == result)
    }
}

impl fmt::Display for CardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_results_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for s in CardStatus::ALL {
            assert_eq!(CardStatus::from_word(s.as_word()), Some(s));
            assert!(seen.insert(s.result()));
            assert!(s.result().billed());
            assert_eq!(CardStatus::for_result(s.result()), Some(s));
        }
        assert_eq!(CardStatus::from_word("Active"), None);
    }
}
