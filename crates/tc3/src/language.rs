//! `X-TC-Language` / `Language` (protocol.md §3): selects the language of
//! `Error.Message` and of business descriptions. Absent ⇒ English.

use crate::error::{ApiError, ErrorCode};

/// A response language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Language {
    /// `zh-CN`.
    ZhCn,
    /// `en-US` (also the default when the parameter is absent).
    #[default]
    EnUs,
}

impl Language {
    /// Parses the raw parameter. Absent or empty ⇒ `EnUs` (Go's v1 signer sends
    /// `Language=` when unset, §2.2); `zh-CN` / `en-US` exactly; anything else ⇒
    /// `InvalidParameterValue` (the SDKs themselves reject other values).
    pub fn parse(raw: Option<&str>) -> Result<Language, ApiError> {
        match raw {
            None | Some("") => Ok(Language::EnUs),
            Some("zh-CN") => Ok(Language::ZhCn),
            Some("en-US") => Ok(Language::EnUs),
            Some(_) => Err(ApiError::localized(
                ErrorCode::InvalidParameterValue,
                "The value of parameter `Language` must be `zh-CN` or `en-US`.",
                "参数`Language`的取值必须为`zh-CN`或`en-US`。",
            )),
        }
    }

    /// The wire form, `zh-CN` or `en-US`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::EnUs => "en-US",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_values() {
        assert_eq!(Language::parse(None), Ok(Language::EnUs));
        assert_eq!(Language::parse(Some("")), Ok(Language::EnUs));
        assert_eq!(Language::parse(Some("zh-CN")), Ok(Language::ZhCn));
        assert_eq!(Language::parse(Some("en-US")), Ok(Language::EnUs));
        assert_eq!(
            Language::parse(Some("fr-FR")).map_err(|e| e.code()),
            Err(ErrorCode::InvalidParameterValue)
        );
    }
}
