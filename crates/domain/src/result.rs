//! Result codes of BankCard2EVerification (protocol.md §6.1) with their billing class
//! (verification.md §2 step 8) and descriptions in both languages.

use std::fmt;

/// Language of a `Description` (the request's `Language`: `zh-CN` → [`Lang::Zh`],
/// `en-US` or absent → [`Lang::En`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// Simplified Chinese (`zh-CN`).
    Zh,
    /// English (`en-US`, and the default when `Language` is absent).
    #[default]
    En,
}

/// A `Result` of BankCard2EVerification: `0` and `-1` … `-18`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultCode {
    /// `0` 认证通过: name and card belong together and the card is usable.
    Passed,
    /// `-1` 认证未通过: declined for another reason.
    Failed,
    /// `-2` 姓名校验不通过: the name failed the format check (not billed).
    InvalidName,
    /// `-3` 银行卡号格式有误: the card number failed the format check (not billed).
    InvalidCardFormat,
    /// `-4` 持卡人信息有误: the card is known but the name differs.
    HolderMismatch,
    /// `-5` 未开通无卡支付.
    CardlessPaymentNotEnabled,
    /// `-6` 此卡被没收.
    Confiscated,
    /// `-7` 无效卡号: wrong length, Luhn failure where mandated, or unknown card.
    InvalidCardNumber,
    /// `-8` 此卡无对应发卡行: no issuer in the BIN table.
    NoIssuer,
    /// `-9` 该卡未初始化或睡眠卡.
    Dormant,
    /// `-10` 作弊卡、吞卡.
    Fraud,
    /// `-11` 此卡已挂失.
    Lost,
    /// `-12` 该卡已过期.
    Expired,
    /// `-13` 受限制的卡.
    Restricted,
    /// `-14` 密码错误次数超限.
    PinTriesExceeded,
    /// `-15` 发卡行不支持此交易.
    IssuerUnsupported,
    /// `-16` 验证中心服务繁忙: the source is unavailable (not billed).
    SourceBusy,
    /// `-17` 验证次数超限，请次日重试: daily attempt limit (not billed).
    DailyLimitExceeded,
    /// `-18` 卡状态异常或卡号错误.
    StatusException,
}

impl ResultCode {
    /// Every Result, in code order `0, -1, …, -18`.
    pub const ALL: [ResultCode; 19] = [
        ResultCode::Passed,
        ResultCode::Failed,
        ResultCode::InvalidName,
        ResultCode::InvalidCardFormat,
        ResultCode::HolderMismatch,
        ResultCode::CardlessPaymentNotEnabled,
        ResultCode::Confiscated,
        ResultCode::InvalidCardNumber,
        ResultCode::NoIssuer,
        ResultCode::Dormant,
        ResultCode::Fraud,
        ResultCode::Lost,
        ResultCode::Expired,
        ResultCode::Restricted,
        ResultCode::PinTriesExceeded,
        ResultCode::IssuerUnsupported,
        ResultCode::SourceBusy,
        ResultCode::DailyLimitExceeded,
        ResultCode::StatusException,
    ];

    /// The numeric code, `0` … `-18`.
    pub fn code(self) -> i32 {
        match self {
            ResultCode::Passed => 0,
            ResultCode::Failed => -1,
            ResultCode::InvalidName => -2,
            ResultCode::InvalidCardFormat => -3,
            ResultCode::HolderMismatch => -4,
            ResultCode::CardlessPaymentNotEnabled => -5,
            ResultCode::Confiscated => -6,
            ResultCode::InvalidCardNumber => -7,
            ResultCode::NoIssuer => -8,
            ResultCode::Dormant => -9,
            ResultCode::Fraud => -10,
            ResultCode::Lost => -11,
            ResultCode::Expired => -12,
            ResultCode::Restricted => -13,
            ResultCode::PinTriesExceeded => -14,
            ResultCode::IssuerUnsupported => -15,
            ResultCode::SourceBusy => -16,
            ResultCode::DailyLimitExceeded => -17,
            ResultCode::StatusException => -18,
        }
    }

    /// The Result by its numeric code.
    pub fn from_code(code: i32) -> Option<Self> {
        ResultCode::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The Result by its wire string (`"0"`, `"-4"`, …).
    pub fn from_wire(wire: &str) -> Option<Self> {
        ResultCode::ALL.into_iter().find(|r| r.wire() == wire)
    }

    /// The wire form: the `Result` field is a JSON string (`"0"`, `"-4"`, …).
    pub fn wire(self) -> &'static str {
        match self {
            ResultCode::Passed => "0",
            ResultCode::Failed => "-1",
            ResultCode::InvalidName => "-2",
            ResultCode::InvalidCardFormat => "-3",
            ResultCode::HolderMismatch => "-4",
            ResultCode::CardlessPaymentNotEnabled => "-5",
            ResultCode::Confiscated => "-6",
            ResultCode::InvalidCardNumber => "-7",
            ResultCode::NoIssuer => "-8",
            ResultCode::Dormant => "-9",
            ResultCode::Fraud => "-10",
            ResultCode::Lost => "-11",
            ResultCode::Expired => "-12",
            ResultCode::Restricted => "-13",
            ResultCode::PinTriesExceeded => "-14",
            ResultCode::IssuerUnsupported => "-15",
            ResultCode::SourceBusy => "-16",
            ResultCode::DailyLimitExceeded => "-17",
            ResultCode::StatusException => "-18",
        }
    }

    /// Whether the Result is billed (verification.md §2 step 8): `0`, `-1`, `-4` … `-15`,
    /// `-18`; not billed: `-2`, `-3`, `-16`, `-17`.
    pub fn billed(self) -> bool {
        !matches!(
            self,
            ResultCode::InvalidName
                | ResultCode::InvalidCardFormat
                | ResultCode::SourceBusy
                | ResultCode::DailyLimitExceeded
        )
    }

    /// The `Description` in `lang`. Chinese texts are Tencent's, verbatim
    /// (protocol.md §6.1); English ones are faithful short translations.
    pub fn description(self, lang: Lang) -> &'static str {
        match lang {
            Lang::Zh => self.description_zh(),
            Lang::En => self.description_en(),
        }
    }

    fn description_zh(self) -> &'static str {
        match self {
            ResultCode::Passed => "认证通过",
            ResultCode::Failed => "认证未通过",
            ResultCode::InvalidName => "姓名校验不通过",
            ResultCode::InvalidCardFormat => "银行卡号格式有误",
            ResultCode::HolderMismatch => "持卡人信息有误",
            ResultCode::CardlessPaymentNotEnabled => "未开通无卡支付",
            ResultCode::Confiscated => "此卡被没收",
            ResultCode::InvalidCardNumber => "无效卡号",
            ResultCode::NoIssuer => "此卡无对应发卡行",
            ResultCode::Dormant => "该卡未初始化或睡眠卡",
            ResultCode::Fraud => "作弊卡、吞卡",
            ResultCode::Lost => "此卡已挂失",
            ResultCode::Expired => "该卡已过期",
            ResultCode::Restricted => "受限制的卡",
            ResultCode::PinTriesExceeded => "密码错误次数超限",
            ResultCode::IssuerUnsupported => "发卡行不支持此交易",
            ResultCode::SourceBusy => "验证中心服务繁忙",
            ResultCode::DailyLimitExceeded => "验证次数超限，请次日重试",
            ResultCode::StatusException => "卡状态异常或卡号错误",
        }
    }

    fn description_en(self) -> &'static str {
        match self {
            ResultCode::Passed => "Verification passed",
            ResultCode::Failed => "Verification failed",
            ResultCode::InvalidName => "Name verification failed",
            ResultCode::InvalidCardFormat => "Incorrect bank card number format",
            ResultCode::HolderMismatch => "Cardholder information is incorrect",
            ResultCode::CardlessPaymentNotEnabled => "Cardless payment is not enabled",
            ResultCode::Confiscated => "This card has been confiscated",
            ResultCode::InvalidCardNumber => "Invalid card number",
            ResultCode::NoIssuer => "No issuing bank for this card",
            ResultCode::Dormant => "The card is not initialised or is dormant",
            ResultCode::Fraud => "Fraudulent or swallowed card",
            ResultCode::Lost => "This card has been reported lost",
            ResultCode::Expired => "This card has expired",
            ResultCode::Restricted => "Restricted card",
            ResultCode::PinTriesExceeded => "PIN retry limit exceeded",
            ResultCode::IssuerUnsupported => "The issuer does not support this transaction",
            ResultCode::SourceBusy => "The verification service is busy",
            ResultCode::DailyLimitExceeded => {
                "Too many verification attempts; please retry tomorrow"
            }
            ResultCode::StatusException => "Abnormal card status or incorrect card number",
        }
    }
}

impl fmt::Display for ResultCode {
    /// The wire form (`0`, `-4`, …).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_zero_to_minus_eighteen_in_order() {
        for (i, r) in ResultCode::ALL.iter().enumerate() {
            assert_eq!(r.code(), -(i as i32));
            assert_eq!(r.wire(), r.code().to_string());
            assert_eq!(ResultCode::from_code(r.code()), Some(*r));
            assert_eq!(ResultCode::from_wire(r.wire()), Some(*r));
        }
        assert_eq!(ResultCode::from_code(1), None);
        assert_eq!(ResultCode::from_code(-19), None);
    }

    #[test]
    fn billing_classes() {
        let unbilled: Vec<i32> = ResultCode::ALL
            .iter()
            .filter(|r| !r.billed())
            .map(|r| r.code())
            .collect();
        assert_eq!(unbilled, vec![-2, -3, -16, -17]);
    }
}
