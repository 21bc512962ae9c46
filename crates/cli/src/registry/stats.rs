//! `cardcheck registry stats [--json]`: rows, by status, by issuing bank, file size.
//!
//! The store counts by BIN (the first six digits, all that the masked card keeps); the
//! issuing bank of a six-digit BIN comes from the built-in table: the longest issuer
//! prefix of at most six digits that it starts with, else the bank that every longer
//! issuer prefix starting with it agrees on, else the card network's range.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use cardcheck_domain::{BinOrigin, BinTable, CardStatus};
use serde::Serialize;

use super::{human_bytes, thousands};
use crate::store_args::StoreArgs;

/// One issuing bank's share.
#[derive(Debug, Clone, Serialize)]
struct BankCount {
    bank_code: Option<String>,
    bank_name: String,
    cards: u64,
}

/// One BIN's count with its bank.
#[derive(Debug, Serialize)]
struct BinCount {
    bin: String,
    bank_code: Option<String>,
    bank_name: String,
    cards: u64,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Report {
    store: String,
    total: u64,
    bytes: Option<u64>,
    by_status: BTreeMap<String, u64>,
    by_bank: Vec<BankCount>,
    by_bin6: Vec<BinCount>,
}

/// Issuer names by BIN prefix, for six-digit BINs.
struct BankIndex<'t> {
    table: &'t BinTable,
    /// Issuer prefixes of up to six digits → (code, name).
    short: HashMap<&'t str, (Option<&'t str>, &'t str)>,
    /// First six digits of longer issuer prefixes → the banks seen.
    long: HashMap<&'t str, Vec<(Option<&'t str>, &'t str)>>,
}

impl<'t> BankIndex<'t> {
    fn new(table: &'t BinTable) -> Self {
        let mut short = HashMap::new();
        let mut long: HashMap<&str, Vec<(Option<&str>, &str)>> = HashMap::new();
        for e in table.entries() {
            if e.origin == BinOrigin::Network {
                continue;
            }
            let Some(name) = e.bank_name.as_deref() else {
                continue;
            };
            let bank = (e.bank_code.as_deref(), name);
            if e.prefix.len() <= 6 {
                short.entry(e.prefix.as_str()).or_insert(bank);
            } else {
                let banks = long.entry(&e.prefix[..6]).or_default();
                if !banks.contains(&bank) {
                    banks.push(bank);
                }
            }
        }
        BankIndex { table, short, long }
    }

    /// `(code, name)` of the bank behind a six-digit BIN.
    fn bank(&self, bin6: &str) -> (Option<String>, String) {
        for k in (1..=bin6.len().min(6)).rev() {
            if let Some((code, name)) = self.short.get(&bin6[..k]) {
                return (code.map(str::to_owned), (*name).to_owned());
            }
        }
        match self.long.get(bin6).map(Vec::as_slice) {
            Some([(code, name)]) => return (code.map(str::to_owned), (*name).to_owned()),
            Some([_, _, ..]) => return (None, "(several banks)".to_owned()),
            _ => {}
        }
        match self.table.network_range_for_prefix(bin6) {
            Some(e) => (None, format!("{} (no Chinese issuer)", e.network)),
            None => (None, "(unknown issuer)".to_owned()),
        }
    }
}

/// One line per bank: the table can name one bank code in several ways (`COMM`: 交通银行
/// and 中国交通银行), which listed the bank twice. Rows with a code are merged under it,
/// named by the name that covers most of its cards; rows without a code stay by name.
fn merge_by_bank_code(banks: HashMap<(Option<String>, String), u64>) -> Vec<BankCount> {
    let mut by_code: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut out = Vec::new();
    for ((bank_code, bank_name), cards) in banks {
        match bank_code {
            Some(code) => by_code.entry(code).or_default().push((bank_name, cards)),
            None => out.push(BankCount {
                bank_code: None,
                bank_name,
                cards,
            }),
        }
    }
    for (code, mut names) in by_code {
        // Most cards first, then the name's order: deterministic whatever the map order.
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let cards = names.iter().map(|(_, n)| n).sum();
        let bank_name = names.swap_remove(0).0;
        out.push(BankCount {
            bank_code: Some(code),
            bank_name,
            cards,
        });
    }
    out
}

pub(super) async fn run(store: &StoreArgs, json: bool, top: usize) -> anyhow::Result<ExitCode> {
    let backend = store.open_existing().await?;
    let stats = backend.registry.stats().await;
    backend.close();
    let stats = stats?;

    let index = BankIndex::new(BinTable::builtin());
    let mut banks: HashMap<(Option<String>, String), u64> = HashMap::new();
    let mut by_bin6 = Vec::with_capacity(stats.by_bin6.len());
    for (bin, cards) in &stats.by_bin6 {
        let (bank_code, bank_name) = index.bank(bin);
        *banks
            .entry((bank_code.clone(), bank_name.clone()))
            .or_default() += cards;
        by_bin6.push(BinCount {
            bin: bin.clone(),
            bank_code,
            bank_name,
            cards: *cards,
        });
    }
    let mut by_bank = merge_by_bank_code(banks);
    by_bank.sort_by(|a, b| {
        b.cards
            .cmp(&a.cards)
            .then_with(|| a.bank_name.cmp(&b.bank_name))
    });
    // Every status word, zero included, so scripts can rely on the keys.
    let mut by_status: BTreeMap<String, u64> = CardStatus::ALL
        .iter()
        .map(|s| (s.as_word().to_owned(), 0))
        .collect();
    for (word, n) in &stats.by_status {
        *by_status.entry(word.clone()).or_default() += n;
    }

    if json {
        crate::admin::print_json(&Report {
            store: backend.description.clone(),
            total: stats.total,
            bytes: stats.bytes,
            by_status,
            by_bank,
            by_bin6,
        })?;
        return Ok(ExitCode::SUCCESS);
    }

    let size = stats
        .bytes
        .map(|b| format!(", {}", human_bytes(b)))
        .unwrap_or_default();
    println!(
        "registry: {} cards ({}{size})",
        thousands(stats.total),
        backend.description
    );
    let share = |n: u64| {
        if stats.total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / stats.total as f64
        }
    };
    println!("by status:");
    for s in CardStatus::ALL {
        let n = by_status.get(s.as_word()).copied().unwrap_or(0);
        println!(
            "  {:<21} {:>13}  {:>5.1}%  (Result {})",
            s.as_word(),
            thousands(n),
            share(n),
            s.result().code()
        );
    }
    for (word, n) in &by_status {
        if CardStatus::from_word(word).is_none() {
            println!("  {word:<21} {:>13}  (unknown status word)", thousands(*n));
        }
    }
    if !by_bank.is_empty() {
        let shown = by_bank.len().min(top);
        println!("by issuing bank ({shown} of {}):", by_bank.len());
        for b in by_bank.iter().take(shown) {
            let label = match &b.bank_code {
                Some(code) => format!("{} ({code})", b.bank_name),
                None => b.bank_name.clone(),
            };
            println!(
                "  {:>13}  {:>5.1}%  {label}",
                thousands(b.cards),
                share(b.cards)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digit_bins_map_to_their_banks() {
        let index = BankIndex::new(BinTable::builtin());
        assert_eq!(index.bank("622202").0.as_deref(), Some("ICBC"));
        assert_eq!(index.bank("622848").0.as_deref(), Some("ABC"));
        assert!(index.bank("424242").1.contains("Visa"));
    }

    /// `registry stats` listed 交通银行 and 中国交通银行 (both `COMM`) as two banks.
    #[test]
    fn one_bank_code_under_two_names_is_one_bank() {
        let mut banks = HashMap::new();
        banks.insert((Some("COMM".to_owned()), "交通银行".to_owned()), 70);
        banks.insert((Some("COMM".to_owned()), "中国交通银行".to_owned()), 30);
        banks.insert((Some("ICBC".to_owned()), "中国工商银行".to_owned()), 50);
        banks.insert((None, "Visa (no Chinese issuer)".to_owned()), 5);
        let mut merged = merge_by_bank_code(banks);
        merged.sort_by_key(|b| std::cmp::Reverse(b.cards));
        let rows: Vec<(Option<&str>, &str, u64)> = merged
            .iter()
            .map(|b| (b.bank_code.as_deref(), b.bank_name.as_str(), b.cards))
            .collect();
        assert_eq!(
            rows,
            vec![
                (Some("COMM"), "交通银行", 100),
                (Some("ICBC"), "中国工商银行", 50),
                (None, "Visa (no Chinese issuer)", 5),
            ]
        );
    }
}
