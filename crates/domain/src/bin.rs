//! The BIN table: which issuer and network a card number belongs to, and which lengths
//! and check-digit rule apply (verification.md §2 steps 5–6).
//!
//! Built into the binary from two data files (provenance in `data/SOURCES.md`):
//!
//! - `cn_bin_merged.csv`: Chinese issuer BINs, one row per (`bin_prefix`, `card_length`)
//!   with bank name, Alipay bank code and card type;
//! - `card_networks.csv`: card network ranges (`prefix_from..=prefix_to`, compared
//!   numerically over the first `len(prefix_from)` digits) with their lengths and
//!   whether the network mandates the Luhn digit.
//!
//! An operator can add an extra BIN file in the `cn_bin_merged.csv` format
//! ([`BinTable::with_extra_csv`]); on the same (prefix, length) its row replaces the
//! built-in one.
//!
//! # Matching rule (decided here, tested against `data/test_cards_public.csv`)
//!
//! 1. **Issuer BINs**, longest prefix first (10 digits down to 1): the first prefix that
//!    has a row whose `card_length` equals the card's length wins → [`BinLookup::Found`]
//!    with the bank's facts. A prefix that matches only with other lengths is remembered
//!    and the search goes on with shorter prefixes.
//! 2. Otherwise the **network ranges**, longest prefix first: the longest matching range
//!    decides. If it lists the card's length → [`BinLookup::Found`] with an entry that has
//!    a network but no Chinese bank (a Stripe Visa test card is not "no issuer"); if not →
//!    [`BinLookup::WrongLength`].
//! 3. Otherwise, if an issuer prefix matched with another length →
//!    [`BinLookup::WrongLength`] (`-7`); if nothing matched at all →
//!    [`BinLookup::NoIssuer`] (`-8`).
//!
//! So a 14-digit number under a 16-digit-only Chinese BIN in the UnionPay range passes
//! (UnionPay issues 14..=19 digits; the issuer tables are known to be incomplete on
//! lengths), while a 13-digit one, or a Visa-range number of 17 digits, is `-7`.
//!
//! # Network of a Chinese issuer BIN (decided here)
//!
//! A Chinese BIN row takes the network of the `card_networks.csv` range that covers its
//! prefix (longest match) — so `4…` Chinese BINs are Visa, `51…` Mastercard, `3528…`
//! JCB, `37…` Amex, all with the Luhn digit mandatory — **except** when the BIN has
//! fewer than 6 digits or the covering range is a catch-all (Maestro `6`/`63`/`67`/
//! `56`–`59`/`5000`…, UATP `1`): those are old domestic BINs (`103` ABC, `601382`
//! BOC, `9558` ICBC) and are UnionPay, like every BIN no network range covers.
//!
//! Lookups do not allocate: each prefix length has a `HashMap` keyed by the prefix's
//! integer value; a lookup computes the ten prefix values of the card once and probes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::card::{CardNumber, MAX_DIGITS, MIN_DIGITS};

/// `cn_bin_merged.csv`, built into the binary.
const CN_BIN_CSV: &str = include_str!("../data/cn_bin_merged.csv");
/// `card_networks.csv`, built into the binary.
const NETWORKS_CSV: &str = include_str!("../data/card_networks.csv");

/// Longest literal BIN prefix the table accepts.
pub const MAX_PREFIX_DIGITS: usize = 10;

/// Card type, with Alipay's codes as used by the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardType {
    /// `DC`: debit card (借记卡/储蓄卡).
    Debit,
    /// `CC`: credit card (贷记卡/信用卡).
    Credit,
    /// `SCC`: semi-credit card (准贷记卡).
    SemiCredit,
    /// `PC`: prepaid card (预付费卡).
    Prepaid,
    /// Empty in the data: unknown.
    Unknown,
}

impl CardType {
    /// All card types.
    pub const ALL: [CardType; 5] = [
        CardType::Debit,
        CardType::Credit,
        CardType::SemiCredit,
        CardType::Prepaid,
        CardType::Unknown,
    ];

    /// Parses an Alipay code (`DC`, `CC`, `SCC`, `PC`, or empty for unknown).
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "DC" => Some(CardType::Debit),
            "CC" => Some(CardType::Credit),
            "SCC" => Some(CardType::SemiCredit),
            "PC" => Some(CardType::Prepaid),
            "" => Some(CardType::Unknown),
            _ => None,
        }
    }

    /// The Alipay code (`""` for unknown).
    pub fn code(self) -> &'static str {
        match self {
            CardType::Debit => "DC",
            CardType::Credit => "CC",
            CardType::SemiCredit => "SCC",
            CardType::Prepaid => "PC",
            CardType::Unknown => "",
        }
    }

    /// Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            CardType::Debit => "借记卡",
            CardType::Credit => "贷记卡",
            CardType::SemiCredit => "准贷记卡",
            CardType::Prepaid => "预付费卡",
            CardType::Unknown => "未知",
        }
    }

    /// English name.
    pub fn name_en(self) -> &'static str {
        match self {
            CardType::Debit => "debit",
            CardType::Credit => "credit",
            CardType::SemiCredit => "semi-credit",
            CardType::Prepaid => "prepaid",
            CardType::Unknown => "unknown",
        }
    }
}

/// A card network (brand), as named in `card_networks.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Network {
    /// UnionPay, and every domestic Chinese BIN no other network covers.
    UnionPay,
    Visa,
    Mastercard,
    AmericanExpress,
    DinersClub,
    Discover,
    Jcb,
    Maestro,
    Mir,
    Elo,
    Hiper,
    Hipercard,
    Verve,
    Naranja,
    Troy,
    Dankort,
    Forbrugsforeningen,
    Uatp,
    Meeza,
    RuPay,
}

impl Network {
    /// All networks.
    pub const ALL: [Network; 20] = [
        Network::UnionPay,
        Network::Visa,
        Network::Mastercard,
        Network::AmericanExpress,
        Network::DinersClub,
        Network::Discover,
        Network::Jcb,
        Network::Maestro,
        Network::Mir,
        Network::Elo,
        Network::Hiper,
        Network::Hipercard,
        Network::Verve,
        Network::Naranja,
        Network::Troy,
        Network::Dankort,
        Network::Forbrugsforeningen,
        Network::Uatp,
        Network::Meeza,
        Network::RuPay,
    ];

    /// The name used in `card_networks.csv` (e.g. `American Express`).
    pub fn name(self) -> &'static str {
        match self {
            Network::UnionPay => "UnionPay",
            Network::Visa => "Visa",
            Network::Mastercard => "Mastercard",
            Network::AmericanExpress => "American Express",
            Network::DinersClub => "Diners Club",
            Network::Discover => "Discover",
            Network::Jcb => "JCB",
            Network::Maestro => "Maestro",
            Network::Mir => "Mir",
            Network::Elo => "Elo",
            Network::Hiper => "Hiper",
            Network::Hipercard => "Hipercard",
            Network::Verve => "Verve",
            Network::Naranja => "Naranja",
            Network::Troy => "Troy",
            Network::Dankort => "Dankort",
            Network::Forbrugsforeningen => "Forbrugsforeningen",
            Network::Uatp => "UATP",
            Network::Meeza => "Meeza",
            Network::RuPay => "RuPay",
        }
    }

    /// Parses a name as used in `card_networks.csv` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Network::ALL
            .into_iter()
            .find(|n| n.name().eq_ignore_ascii_case(name))
    }

    /// Whether the network mandates a valid Luhn digit (verification.md §2 step 6):
    /// every network except UnionPay (whose real cards, like domestic Chinese BINs,
    /// can fail Luhn).
    pub fn luhn_mandated(self) -> bool {
        self != Network::UnionPay
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a [`BinEntry`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOrigin {
    /// Built-in Chinese issuer BIN (`cn_bin_merged.csv`).
    Issuer,
    /// The operator's extra BIN file.
    Extra,
    /// Built-in network range (`card_networks.csv`): network known, no Chinese issuer.
    Network,
}

/// One row of the BIN table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinEntry {
    /// The literal BIN prefix (issuer rows), or the first prefix of a network range.
    pub prefix: String,
    /// Equal to `prefix` for issuer rows; the last prefix of a network range.
    pub prefix_to: String,
    /// Issuing bank's name (Chinese), if known.
    pub bank_name: Option<String>,
    /// Issuing bank's Alipay code (e.g. `ICBC`), if known.
    pub bank_code: Option<String>,
    /// Card type.
    pub card_type: CardType,
    /// Card network.
    pub network: Network,
    /// Card lengths this entry accepts (one for issuer rows).
    pub lengths: Vec<u8>,
    /// Whether a Luhn failure is `-7` regardless of `strict_luhn` (§2 step 6).
    pub luhn_required: bool,
    /// Where the entry came from.
    pub origin: BinOrigin,
}

impl BinEntry {
    /// Whether the entry accepts a card of `len` digits.
    pub fn accepts_length(&self, len: usize) -> bool {
        self.lengths.iter().any(|l| usize::from(*l) == len)
    }
}

/// The outcome of a BIN lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinLookup<'a> {
    /// No issuer BIN and no network range covers the number: Result `-8`.
    NoIssuer,
    /// A prefix is known but not with this length: Result `-7`.
    WrongLength(&'a BinEntry),
    /// The entry that decides issuer, network, card type and Luhn rule.
    Found(&'a BinEntry),
}

/// A BIN file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinError {
    /// The CSV itself is malformed.
    #[error("BIN file line {line}: malformed CSV: {message}")]
    Csv {
        /// 1-based line number (0 if unknown).
        line: u64,
        /// The parser's message.
        message: String,
    },
    /// A required column is missing from the header.
    #[error("BIN file has no `{0}` column")]
    MissingColumn(&'static str),
    /// A `bin_prefix` / `prefix_from` / `prefix_to` that is not 1..=10 digits.
    #[error("BIN file line {line}: prefix must be 1 to 10 digits")]
    InvalidPrefix {
        /// 1-based line number.
        line: u64,
    },
    /// A `card_length` / `lengths` value outside 12..=19.
    #[error("BIN file line {line}: card length must be a number from 12 to 19")]
    InvalidLength {
        /// 1-based line number.
        line: u64,
    },
    /// A `card_type` that is not `DC`, `CC`, `SCC`, `PC` or empty.
    #[error("BIN file line {line}: card_type must be DC, CC, SCC, PC or empty")]
    InvalidCardType {
        /// 1-based line number.
        line: u64,
    },
    /// An unknown network name or a malformed range in `card_networks.csv`.
    #[error("network file line {line}: {message}")]
    InvalidNetwork {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: &'static str,
    },
}

/// The BIN table (see the module documentation for the matching rule).
#[derive(Clone)]
pub struct BinTable {
    entries: Vec<BinEntry>,
    /// Index = prefix length; key = prefix value; value = entry indices (one per length).
    issuers: Vec<HashMap<u64, Vec<u32>>>,
    /// Index = prefix length; key = prefix value; value = network entry index.
    networks: Vec<HashMap<u64, u32>>,
}

impl fmt::Debug for BinTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinTable")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

static BUILTIN: OnceLock<Arc<BinTable>> = OnceLock::new();

impl BinTable {
    /// The built-in table, parsed once. The data is compiled in and a unit test proves it
    /// parses, so a failure here is a build defect.
    pub fn builtin() -> &'static BinTable {
        Self::builtin_shared_ref()
    }

    /// The built-in table as a shared handle (for [`crate::Engine::new`]).
    pub fn builtin_shared() -> Arc<BinTable> {
        Arc::clone(Self::builtin_shared_ref())
    }

    fn builtin_shared_ref() -> &'static Arc<BinTable> {
        BUILTIN.get_or_init(|| {
            #[allow(clippy::expect_used)]
            Arc::new(Self::build(None).expect("built-in BIN data (crates/domain/data) must parse"))
        })
    }

    /// The built-in table plus an operator-supplied BIN file in the `cn_bin_merged.csv`
    /// format (header row; columns `bin_prefix`, `card_length` required, `bank_name`,
    /// `bank_code`, `card_type` optional, others ignored). On the same prefix and
    /// length the extra row wins.
    pub fn with_extra_csv(extra_csv_text: &str) -> Result<BinTable, BinError> {
        Self::build(Some(extra_csv_text))
    }

    fn build(extra: Option<&str>) -> Result<BinTable, BinError> {
        let mut builder = Builder::default();
        builder.add_networks(NETWORKS_CSV)?;
        builder.add_issuers(CN_BIN_CSV, BinOrigin::Issuer)?;
        if let Some(extra) = extra {
            builder.add_issuers(extra, BinOrigin::Extra)?;
        }
        Ok(builder.finish())
    }

    /// Every entry (issuer rows, then network ranges, in no particular order).
    pub fn entries(&self) -> &[BinEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries (never true for a built table).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the entry deciding `card` (verification.md §2 steps 5–6; the rule is in the
    /// module documentation). Does not allocate.
    pub fn lookup(&self, card: &CardNumber) -> BinLookup<'_> {
        let digits = card.digits().as_bytes();
        let len = digits.len();
        // prefix_values[k] = the first k digits as an integer.
        let mut prefix_values = [0u64; MAX_PREFIX_DIGITS + 1];
        let max_k = len.min(MAX_PREFIX_DIGITS);
        for k in 1..=max_k {
            prefix_values[k] = prefix_values[k - 1] * 10 + u64::from(digits[k - 1] - b'0');
        }

        let mut known_prefix: Option<&BinEntry> = None;
        for k in (1..=max_k).rev() {
            if let Some(ids) = self.issuers[k].get(&prefix_values[k]) {
                let mut candidates = ids.iter().map(|&i| &self.entries[i as usize]);
                if let Some(e) = candidates.clone().find(|e| e.accepts_length(len)) {
                    return BinLookup::Found(e);
                }
                if known_prefix.is_none() {
                    known_prefix = candidates.next();
                }
            }
        }
        for k in (1..=max_k).rev() {
            if let Some(&i) = self.networks[k].get(&prefix_values[k]) {
                let e = &self.entries[i as usize];
                return if e.accepts_length(len) {
                    BinLookup::Found(e)
                } else {
                    BinLookup::WrongLength(known_prefix.unwrap_or(e))
                };
            }
        }
        match known_prefix {
            Some(e) => BinLookup::WrongLength(e),
            None => BinLookup::NoIssuer,
        }
    }

    /// The network range covering a literal prefix (longest range whose start is no
    /// longer than the prefix), if any.
    pub fn network_range_for_prefix(&self, prefix: &str) -> Option<&BinEntry> {
        network_range(&self.networks, &self.entries, prefix)
    }
}

fn network_range<'a>(
    networks: &[HashMap<u64, u32>],
    entries: &'a [BinEntry],
    prefix: &str,
) -> Option<&'a BinEntry> {
    let bytes = prefix.as_bytes();
    if !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let max_k = bytes.len().min(MAX_PREFIX_DIGITS);
    let mut values = [0u64; MAX_PREFIX_DIGITS + 1];
    for k in 1..=max_k {
        values[k] = values[k - 1] * 10 + u64::from(bytes[k - 1] - b'0');
    }
    (1..=max_k)
        .rev()
        .find_map(|k| networks[k].get(&values[k]))
        .map(|&i| &entries[i as usize])
}

#[derive(Default)]
struct Builder {
    entries: Vec<BinEntry>,
    networks: Vec<HashMap<u64, u32>>,
    /// (prefix, length) → entry index, so an extra row can replace a built-in one.
    issuer_keys: HashMap<(String, u8), usize>,
}

/// Column positions of an issuer BIN file.
struct IssuerColumns {
    prefix: usize,
    length: usize,
    bank_name: Option<usize>,
    bank_code: Option<usize>,
    card_type: Option<usize>,
}

impl Builder {
    fn add_networks(&mut self, text: &str) -> Result<(), BinError> {
        self.networks = vec![HashMap::new(); MAX_PREFIX_DIGITS + 1];
        // Width of the range currently owning each key: narrower wins a same-length tie
        // (e.g. Verve 506099..506127 inside Maestro 504176..506698).
        let mut widths: Vec<HashMap<u64, u64>> = vec![HashMap::new(); MAX_PREFIX_DIGITS + 1];
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let headers = reader.headers().map_err(csv_error)?.clone();
        let col = |name: &'static str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or(BinError::MissingColumn(name))
        };
        let (c_net, c_from, c_to, c_len, c_luhn) = (
            col("network")?,
            col("prefix_from")?,
            col("prefix_to")?,
            col("lengths")?,
            col("luhn")?,
        );
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            let line = line_of(&record);
            let field = |i: usize| record.get(i).unwrap_or("").trim();
            let network = Network::from_name(field(c_net)).ok_or(BinError::InvalidNetwork {
                line,
                message: "unknown network name",
            })?;
            let (from, to) = (field(c_from), field(c_to));
            let (Some(from_v), Some(to_v)) = (prefix_value(from), prefix_value(to)) else {
                return Err(BinError::InvalidPrefix { line });
            };
            if from.len() != to.len() || from_v > to_v {
                return Err(BinError::InvalidNetwork {
                    line,
                    message: "prefix_from and prefix_to must have the same length, from <= to",
                });
            }
            let lengths = parse_lengths(field(c_len), line)?;
            let luhn_required = match field(c_luhn) {
                "yes" => true,
                "not_always" | "no" => false,
                _ => {
                    return Err(BinError::InvalidNetwork {
                        line,
                        message: "luhn must be yes, no or not_always",
                    });
                }
            };
            let index = u32::try_from(self.entries.len()).map_err(|_| BinError::Csv {
                line,
                message: "too many rows".into(),
            })?;
            self.entries.push(BinEntry {
                prefix: from.to_owned(),
                prefix_to: to.to_owned(),
                bank_name: None,
                bank_code: None,
                card_type: CardType::Unknown,
                network,
                lengths,
                luhn_required,
                origin: BinOrigin::Network,
            });
            let width = to_v - from_v;
            let k = from.len();
            for v in from_v..=to_v {
                let owner_width = widths[k].get(&v).copied();
                if owner_width.is_none_or(|w| width < w) {
                    widths[k].insert(v, width);
                    self.networks[k].insert(v, index);
                }
            }
        }
        Ok(())
    }

    fn add_issuers(&mut self, text: &str, origin: BinOrigin) -> Result<(), BinError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(csv_error)?.clone();
        let find = |name: &str| headers.iter().position(|h| h.trim() == name);
        let cols = IssuerColumns {
            prefix: find("bin_prefix").ok_or(BinError::MissingColumn("bin_prefix"))?,
            length: find("card_length").ok_or(BinError::MissingColumn("card_length"))?,
            bank_name: find("bank_name"),
            bank_code: find("bank_code"),
            card_type: find("card_type"),
        };
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            let line = line_of(&record);
            let field = |i: usize| record.get(i).unwrap_or("").trim();
            let opt = |i: Option<usize>| i.map(field).filter(|s| !s.is_empty()).map(str::to_owned);
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            let prefix = field(cols.prefix);
            if prefix_value(prefix).is_none() {
                return Err(BinError::InvalidPrefix { line });
            }
            let length: u8 = match field(cols.length).parse::<u8>() {
                Ok(l) if (usize::from(l) >= MIN_DIGITS && usize::from(l) <= MAX_DIGITS) => l,
                // Built-in data: three flagged GDB rows claim 20 digits, impossible under
                // ISO/IEC 7812 and unreachable (§2 step 3 rejects >19): skip them.
                Ok(l) if origin == BinOrigin::Issuer && usize::from(l) > MAX_DIGITS => continue,
                _ => return Err(BinError::InvalidLength { line }),
            };
            let card_type = match cols.card_type {
                Some(i) => {
                    CardType::from_code(field(i)).ok_or(BinError::InvalidCardType { line })?
                }
                None => CardType::Unknown,
            };
            let network = issuer_network(&self.networks, &self.entries, prefix);
            let entry = BinEntry {
                prefix: prefix.to_owned(),
                prefix_to: prefix.to_owned(),
                bank_name: opt(cols.bank_name),
                bank_code: opt(cols.bank_code),
                card_type,
                network,
                lengths: vec![length],
                luhn_required: network.luhn_mandated(),
                origin,
            };
            match self.issuer_keys.get(&(prefix.to_owned(), length)) {
                // §2 step 5: the operator's row wins on the same prefix and length.
                Some(&i) => self.entries[i] = entry,
                None => {
                    self.issuer_keys
                        .insert((prefix.to_owned(), length), self.entries.len());
                    self.entries.push(entry);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> BinTable {
        let mut issuers: Vec<HashMap<u64, Vec<u32>>> = vec![HashMap::new(); MAX_PREFIX_DIGITS + 1];
        for (i, e) in self.entries.iter().enumerate() {
            if e.origin == BinOrigin::Network {
                continue;
            }
            if let (Some(v), Ok(i)) = (prefix_value(&e.prefix), u32::try_from(i)) {
                issuers[e.prefix.len()].entry(v).or_default().push(i);
            }
        }
        BinTable {
            entries: self.entries,
            issuers,
            networks: self.networks,
        }
    }
}

/// The network of a Chinese issuer BIN (rule in the module documentation).
fn issuer_network(networks: &[HashMap<u64, u32>], entries: &[BinEntry], prefix: &str) -> Network {
    if prefix.len() < 6 {
        return Network::UnionPay;
    }
    match network_range(networks, entries, prefix).map(|e| e.network) {
        Some(Network::Maestro | Network::Uatp) | None => Network::UnionPay,
        Some(n) => n,
    }
}

/// The integer value of a 1..=10-digit prefix.
fn prefix_value(prefix: &str) -> Option<u64> {
    if prefix.is_empty()
        || prefix.len() > MAX_PREFIX_DIGITS
        || !prefix.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    prefix.parse().ok()
}

fn parse_lengths(text: &str, line: u64) -> Result<Vec<u8>, BinError> {
    let mut out = Vec::new();
    for part in text.split(';') {
        match part.trim().parse::<u8>() {
            Ok(l) if (MIN_DIGITS..=MAX_DIGITS).contains(&usize::from(l)) => out.push(l),
            _ => return Err(BinError::InvalidLength { line }),
        }
    }
    Ok(out)
}

fn line_of(record: &csv::StringRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

fn csv_error(e: csv::Error) -> BinError {
    let line = e.position().map_or(0, csv::Position::line);
    BinError::Csv {
        line,
        message: e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_data_parses() {
        let table = BinTable::build(None).unwrap();
        // 3,265 issuer rows minus the three 20-digit rows, plus 180 network ranges.
        assert_eq!(table.len(), 3265 - 3 + 180);
    }

    #[test]
    fn network_tie_goes_to_the_narrower_range() {
        let t = BinTable::builtin();
        assert_eq!(
            t.network_range_for_prefix("506100").map(|e| e.network),
            Some(Network::Verve)
        );
        assert_eq!(
            t.network_range_for_prefix("601382").map(|e| e.network),
            Some(Network::Maestro)
        );
    }
}
