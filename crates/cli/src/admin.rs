//! Administration commands (docs/cli.md "Administration"): accounts, keys, the
//! sandbox catalogue and usage.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cardcheck_domain::{CATALOGUE, Lang, ResultCode, SandboxCard};
use cardcheck_encryption::KeyAlgorithm;
use cardcheck_store::audit::action;
use cardcheck_store::{Account, AccountStatus, AccountUpdate, IssuedCredential, UsageFilter};

use crate::audit::Auditor;
use crate::store_args::StoreArgs;

/// `cardcheck account …`
#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Create an account and its first SecretId/SecretKey (the key is shown once).
    Create {
        /// Account name: letters, digits, '-', '_', '.'.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Change an account's status or limits.
    #[command(group(
        clap::ArgGroup::new("change")
            .required(true)
            .multiple(true)
            .args(["status", "qps", "daily_attempts"])
    ))]
    Set {
        /// Account name.
        name: String,
        /// active | arrears | nonactivated | unverified | charge-exception
        #[arg(long, value_parser = parse_status)]
        status: Option<AccountStatus>,
        /// Requests per second (burst equal to the rate), at least 1; to stop an
        /// account, change its --status.
        #[arg(long, value_parser = parse_qps)]
        qps: Option<u32>,
        /// Verifications per card per Beijing day (0 = unlimited).
        #[arg(long)]
        daily_attempts: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `--qps`: 1 or more. 0 would refuse every request with `RequestLimitExceeded`
/// (which clients retry), unlike `--daily-attempts 0`, which means unlimited.
fn parse_qps(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err(
            "the rate is at least 1 request per second; to stop an account, \
                      set --status (e.g. arrears)"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "expected a whole number of requests per second from 1 to {}",
            u32::MAX
        )),
    }
}

fn parse_status(word: &str) -> Result<AccountStatus, String> {
    AccountStatus::parse(word).ok_or_else(|| {
        let words: Vec<_> = AccountStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("expected one of: {}", words.join(", "))
    })
}

/// `cardcheck key …`
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Issue another SecretId/SecretKey pair for an account.
    Create {
        /// Account name.
        account: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a SecretId (takes effect on running servers within seconds).
    Revoke {
        /// The SecretId.
        secret_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Issue temporary credentials: TmpSecretId, TmpSecretKey and Token.
    Token {
        /// Account name.
        account: String,
        /// Lifetime, e.g. 900s, 30m, 1h, 1d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: i64,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print the server's Encryption public key (PEM).
    Public {
        /// RSA (for AES-256-CBC) or SM2 (for SM4-GCM).
        #[arg(long, default_value = "RSA", value_parser = ["RSA", "SM2"])]
        algorithm: String,
        /// Print Base64 of the PEM (the form the Node/Java/Go helpers take).
        #[arg(long)]
        base64: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make new Encryption key pairs current; running servers pick them up within 10 s.
    Rotate {
        /// Older keys of each algorithm still accepted (the rotation overlap).
        #[arg(long, default_value_t = 1)]
        keep: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_ttl(text: &str) -> Result<i64, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = digits
        .parse()
        .map_err(|_| "expected a duration such as 900s, 30m, 1h".to_string())?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("units: s, m, h, d".into()),
    };
    match n.checked_mul(factor) {
        Some(secs) if secs > 0 && secs <= 366 * 86_400 => Ok(secs),
        _ => Err("a lifetime is between 1 second and 366 days".into()),
    }
}

/// Prints `value` as one JSON document.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_issued(issued: &IssuedCredential, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(issued);
    }
    println!("account:   {}", issued.account);
    println!("SecretId:  {}", issued.secret_id);
    println!("SecretKey: {}", issued.secret_key);
    if let Some(token) = &issued.token {
        println!("Token:     {token}");
    }
    if let Some(at) = issued.expires_at {
        println!("expires:   {} (Unix {at})", format_unix(at));
    }
    eprintln!("the SecretKey is shown only now; store it safely");
    Ok(())
}

fn format_unix(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| at.to_string())
}

/// Runs an admin command; errors become one line on stderr and exit 1.
pub async fn run<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> ExitCode {
    match f.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Arguments that parse but do not make sense together: exit status 2, like the
/// parser's own errors (spec/cli.md: 2 is a usage error).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The audit detail of a new account: its status and limits.
pub fn account_detail(account: &Account) -> String {
    format!(
        "status {}, qps {}, daily attempts {}",
        account.status, account.qps, account.daily_attempts
    )
}

/// The audit detail of an issued credential: its account, and a token's lifetime.
pub fn credential_detail(issued: &IssuedCredential, ttl: Option<i64>) -> String {
    match (ttl, issued.expires_at) {
        (Some(ttl), Some(at)) => format!(
            "account {}, temporary, ttl {ttl} s, expires {}",
            issued.account,
            format_unix(at)
        ),
        _ => format!("account {}", issued.account),
    }
}

/// Records a new account and its first key (`account create`, the demo account).
pub async fn audit_account_created(
    auditor: Auditor<'_>,
    account: &Account,
    issued: &IssuedCredential,
) -> anyhow::Result<()> {
    auditor
        .record(
            action::ACCOUNT_CREATE,
            &account.name,
            &account_detail(account),
            &format!(
                "account {} and key {} were created",
                account.name, issued.secret_id
            ),
        )
        .await?;
    auditor
        .record(
            action::KEY_CREATE,
            &issued.secret_id,
            &credential_detail(issued, None),
            &format!(
                "account {} and key {} were created",
                account.name, issued.secret_id
            ),
        )
        .await
}

/// What `account set` changed, `old → new` for each field it was given.
fn changes(old: Option<&Account>, new: &Account, update: &AccountUpdate) -> String {
    let was = |f: fn(&Account) -> String| old.map_or_else(|| "?".to_string(), f);
    let mut parts = Vec::new();
    if update.status.is_some() {
        parts.push(format!(
            "status {} → {}",
            was(|a| a.status.to_string()),
            new.status
        ));
    }
    if update.qps.is_some() {
        parts.push(format!("qps {} → {}", was(|a| a.qps.to_string()), new.qps));
    }
    if update.daily_attempts.is_some() {
        parts.push(format!(
            "daily attempts {} → {}",
            was(|a| a.daily_attempts.to_string()),
            new.daily_attempts
        ));
    }
    parts.join(", ")
}

pub async fn account(cmd: AccountCommand, actor: &str) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Create { name, store, json } => {
            let backend = store.open().await?;
            let auditor = Auditor::new(&backend, actor);
            let account = backend.accounts.create_account(&name).await?;
            let issued = match backend
                .accounts
                .create_credential(&account.name, None)
                .await
            {
                Ok(issued) => issued,
                Err(e) => {
                    // The account exists: record it before reporting the key's failure.
                    auditor
                        .record(
                            action::ACCOUNT_CREATE,
                            &account.name,
                            &account_detail(&account),
                            &format!("account {} was created (without a key)", account.name),
                        )
                        .await?;
                    backend.close();
                    return Err(e).context(format!(
                        "account {} was created, but its key was not",
                        account.name
                    ));
                }
            };
            let audited = audit_account_created(auditor, &account, &issued).await;
            backend.close();
            // The SecretKey is shown even when the audit failed: it exists now.
            print_issued(&issued, json)?;
            audited
        }
        AccountCommand::List { store, json } => {
            let backend = store.open_existing().await?;
            let accounts = backend.accounts.list_accounts().await?;
            if json {
                return print_json(&accounts);
            }
            println!(
                "{:<24} {:<17} {:>5} {:>14}  created",
                "ACCOUNT", "STATUS", "QPS", "DAILY_ATTEMPTS"
            );
            for a in &accounts {
                println!(
                    "{:<24} {:<17} {:>5} {:>14}  {}",
                    a.name,
                    a.status.as_str(),
                    a.qps,
                    a.daily_attempts,
                    format_unix(a.created_at)
                );
            }
            Ok(())
        }
        AccountCommand::Set {
            name,
            status,
            qps,
            daily_attempts,
            store,
            json,
        } => {
            let backend = store.open_existing().await?;
            let update = AccountUpdate {
                status,
                qps,
                daily_attempts,
            };
            let old = backend.accounts.account(&name).await?;
            let account = backend.accounts.update_account(&name, &update).await?;
            let audited = Auditor::new(&backend, actor)
                .record(
                    action::ACCOUNT_SET,
                    &account.name,
                    &changes(old.as_ref(), &account, &update),
                    &format!("account {} was changed", account.name),
                )
                .await;
            backend.close();
            if json {
                print_json(&account)?;
            } else {
                println!(
                    "{}: status {}, qps {}, daily attempts {}",
                    account.name, account.status, account.qps, account.daily_attempts
                );
            }
            audited
        }
    }
}

pub async fn key(cmd: KeyCommand, actor: &str) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            account,
            store,
            json,
        } => {
            let backend = store.open_existing().await?;
            let issued = backend.accounts.create_credential(&account, None).await?;
            let audited = Auditor::new(&backend, actor)
                .record(
                    action::KEY_CREATE,
                    &issued.secret_id,
                    &credential_detail(&issued, None),
                    &format!("key {} was created", issued.secret_id),
                )
                .await;
            backend.close();
            print_issued(&issued, json)?;
            audited
        }
        KeyCommand::Revoke { secret_id, store } => {
            let backend = store.open_existing().await?;
            // For the audit detail only: whose key, and whether it was revoked before.
            let before = backend
                .accounts
                .credential(&secret_id)
                .await
                .ok()
                .flatten()
                .map(|c| (c.account.clone(), c.revoked_at.is_some()));
            if !backend.accounts.revoke_credential(&secret_id).await? {
                // A card number passed by mistake is not echoed back.
                bail!(
                    "no such SecretId: {}",
                    cardcheck_tc3::error::sanitize_name(&secret_id)
                );
            }
            let detail = match before {
                Some((account, true)) => format!("account {account}, already revoked"),
                Some((account, false)) => format!("account {account}"),
                None => String::new(),
            };
            let audited = Auditor::new(&backend, actor)
                .record(
                    action::KEY_REVOKE,
                    &secret_id,
                    &detail,
                    &format!("key {secret_id} was revoked"),
                )
                .await;
            backend.close();
            println!("revoked {secret_id}");
            audited
        }
        KeyCommand::Token {
            account,
            ttl,
            store,
            json,
        } => {
            let backend = store.open_existing().await?;
            let issued = backend
                .accounts
                .create_credential(&account, Some(ttl))
                .await?;
            let audited = Auditor::new(&backend, actor)
                .record(
                    action::KEY_TOKEN,
                    &issued.secret_id,
                    &credential_detail(&issued, Some(ttl)),
                    &format!("temporary key {} was created", issued.secret_id),
                )
                .await;
            backend.close();
            print_issued(&issued, json)?;
            audited
        }
        KeyCommand::Public {
            algorithm,
            base64,
            store,
        } => {
            let backend = store.open_existing().await?;
            let ring = cardcheck_server::load_or_create_key_ring(&backend)
                .await
                .context("cannot load the server keys")?;
            let alg = KeyAlgorithm::parse(&algorithm).context("algorithm")?;
            if base64 {
                println!("{}", ring.public_pem_base64(alg));
            } else {
                print!("{}", ring.public_pem(alg));
            }
            Ok(())
        }
        KeyCommand::Rotate { keep, store } => {
            let backend = store.open_existing().await?;
            let mut ring = cardcheck_server::load_or_create_key_ring(&backend)
                .await
                .context("cannot load the server keys")?;
            ring.rotate(keep).context("cannot generate new keys")?;
            backend.keys.save_server_keys(&ring.to_bytes()).await?;
            let mut lines = Vec::new();
            let mut currents = Vec::new();
            for alg in [KeyAlgorithm::Rsa, KeyAlgorithm::Sm2] {
                let prints = ring.fingerprints(alg);
                let (current, older) = prints
                    .split_first()
                    .map_or(("", &[][..]), |(c, o)| (c.as_str(), o));
                currents.push(format!("{} {current}", alg.as_str()));
                lines.push(format!(
                    "{}: current {current}, also accepted: [{}]",
                    alg.as_str(),
                    older.join(", ")
                ));
            }
            let audited = Auditor::new(&backend, actor)
                .record(
                    action::SERVER_KEY_ROTATE,
                    "server-keys",
                    &format!("current {}; keep {keep} older", currents.join(", ")),
                    "the server keys were rotated",
                )
                .await;
            backend.close();
            for line in lines {
                println!("{line}");
            }
            eprintln!(
                "rotated; servers use the new keys within 10 seconds, and accept {keep} older key(s) per algorithm"
            );
            audited
        }
    }
}

/// `cardcheck sandbox list`
pub fn sandbox_list(json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&CATALOGUE);
    }
    // Column widths from the content: the longest description overflowed a fixed width.
    let described = |row: &SandboxCard| row.result.description(Lang::En);
    let card_width = CATALOGUE.iter().map(|r| r.card.len()).max().unwrap_or(0);
    let description_width = CATALOGUE
        .iter()
        .map(|r| described(r).chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "{:<card_width$}  {:>6}  {:<description_width$}  NOTE",
        "CARD", "RESULT", "DESCRIPTION"
    );
    for row in &CATALOGUE {
        println!(
            "{:<card_width$}  {:>6}  {:<description_width$}  {}",
            row.card,
            row.result.wire(),
            described(row),
            row.note_en
        );
    }
    Ok(())
}

/// `cardcheck usage` options.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Only this account.
    #[arg(long)]
    account: Option<String>,
    /// First Beijing day, YYYY-MM-DD.
    #[arg(long, value_parser = parse_day)]
    from: Option<i32>,
    /// Last Beijing day, YYYY-MM-DD.
    #[arg(long, value_parser = parse_day)]
    to: Option<i32>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    format: String,
    #[command(flatten)]
    store: StoreArgs,
}

fn epoch() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// A Beijing calendar date as the ledger's day number (days since 1970-01-01).
fn parse_day(text: &str) -> Result<i32, String> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| "expected a date as YYYY-MM-DD".to_string())?;
    i32::try_from(date.signed_duration_since(epoch()).num_days())
        .map_err(|_| "date out of range".into())
}

fn day_string(day: i32) -> String {
    (epoch() + chrono::Duration::days(i64::from(day)))
        .format("%Y-%m-%d")
        .to_string()
}

#[derive(serde::Serialize, Default)]
struct DayUsage {
    account: String,
    date: String,
    billed: u64,
    free: u64,
    total: u64,
    /// By Result code, in numeric order (`-17` after `-4`, not before it).
    results: BTreeMap<i32, u64>,
}

pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(UsageError("--from is after --to: no day is in that range".into()).into());
    }
    let backend = args.store.open_existing().await?;
    if let Some(name) = &args.account
        && backend.accounts.account(name).await?.is_none()
    {
        bail!("account {name} not found");
    }
    let rows = backend
        .ledger
        .usage(&UsageFilter {
            account: args.account.clone(),
            from_day: args.from,
            to_day: args.to,
        })
        .await?;
    match args.format.as_str() {
        "csv" => {
            let mut out = csv::Writer::from_writer(std::io::stdout());
            out.write_record([
                "account",
                "date",
                "result",
                "description",
                "billed",
                "count",
            ])?;
            for r in &rows {
                let description =
                    ResultCode::from_code(r.result).map_or("", |c| c.description(Lang::En));
                out.write_record([
                    r.account.as_str(),
                    &day_string(r.day),
                    &r.result.to_string(),
                    description,
                    if r.billed { "true" } else { "false" },
                    &r.count.to_string(),
                ])?;
            }
            out.flush()?;
            Ok(())
        }
        format => {
            let mut days: BTreeMap<(String, i32), DayUsage> = BTreeMap::new();
            for r in &rows {
                let d = days
                    .entry((r.account.clone(), r.day))
                    .or_insert_with(|| DayUsage {
                        account: r.account.clone(),
                        date: day_string(r.day),
                        ..DayUsage::default()
                    });
                if r.billed {
                    d.billed += r.count;
                } else {
                    d.free += r.count;
                }
                d.total += r.count;
                *d.results.entry(r.result).or_default() += r.count;
            }
            let days: Vec<DayUsage> = days.into_values().collect();
            if format == "json" {
                let billed: u64 = days.iter().map(|d| d.billed).sum();
                let free: u64 = days.iter().map(|d| d.free).sum();
                return print_json(&serde_json::json!({
                    "days": days,
                    "totals": {"billed": billed, "free": free, "total": billed + free},
                }));
            }
            println!(
                "{:<20} {:<10} {:>8} {:>8} {:>8}  results",
                "ACCOUNT", "DATE", "BILLED", "FREE", "TOTAL"
            );
            for d in &days {
                let results: Vec<String> =
                    d.results.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                println!(
                    "{:<20} {:<10} {:>8} {:>8} {:>8}  {}",
                    d.account,
                    d.date,
                    d.billed,
                    d.free,
                    d.total,
                    results.join(" ")
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units_and_bounds() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("2d"), Ok(172_800));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("99999999999999999999").is_err());
    }

    #[test]
    fn usage_days_round_trip_as_beijing_dates() {
        let day = parse_day("2026-12-04").unwrap();
        assert_eq!(day_string(day), "2026-12-04");
        // Beijing midnight of 2026-12-04 is 2026-12-03T16:00:00Z.
        assert_eq!(cardcheck_domain::beijing_day(1_796_313_600), day);
        assert!(parse_day("2026-13-01").is_err());
    }
}
