//! The audit log of administrative actions (issue 9; docs/operations.md "Audit log"):
//! who runs the commands ([`resolve_actor`]), recording an action after it succeeded
//! ([`Auditor`]), and `cardcheck audit list | verify`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use cardcheck_store::Backend;
use cardcheck_store::audit::{AuditEntry, AuditEvent, AuditFilter, ChainVerifier, verify_log_with};

use crate::store_args::StoreArgs;

/// Environment variable naming the actor (the `--actor` flag's).
pub const ACTOR_ENV: &str = "CARDCHECK_ACTOR";

/// Who is acting: `--actor` / `CARDCHECK_ACTOR` when given (as is), else the OS user
/// (`USER`, `LOGNAME`, else `uid:<n>`) plus `@host` when the host name is known.
pub fn resolve_actor(explicit: Option<&str>) -> String {
    if let Some(actor) = explicit.map(str::trim).filter(|a| !a.is_empty()) {
        return actor.to_string();
    }
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| {
            std::env::var(var)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
        .or_else(os_uid)
        .unwrap_or_else(|| "unknown".into());
    match hostname() {
        Some(host) => format!("{user}@{host}"),
        None => user,
    }
}

/// `uid:<n>` of this process: the owner of `/proc/self` (no libc call needed).
fn os_uid() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self")
            .ok()
            .map(|m| format!("uid:{}", m.uid()))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The host name from the kernel, `/etc/hostname` or `HOSTNAME`, if it looks like one.
fn hostname() -> Option<String> {
    let plausible = |name: &str| {
        let name = name.trim();
        ((1..=253).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
        .then(|| name.to_string())
    };
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.lines().next().and_then(plausible))
        })
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(|h| plausible(&h)))
}

/// Records administrative actions for one actor.
#[derive(Clone, Copy)]
pub struct Auditor<'a> {
    backend: &'a Backend,
    actor: &'a str,
}

impl<'a> Auditor<'a> {
    /// Records into `backend`'s audit log as `actor`.
    pub fn new(backend: &'a Backend, actor: &'a str) -> Self {
        Auditor { backend, actor }
    }

    /// Records one action that has been done. The error is one sentence that says the
    /// action *was* done (`done`, e.g. "key AKID… was created") and was not audited.
    pub async fn record(
        &self,
        action: &str,
        target: &str,
        detail: &str,
        done: &str,
    ) -> anyhow::Result<()> {
        match self
            .backend
            .audit
            .record(AuditEvent::new(self.actor, action, target, detail))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => bail!("{done}, but it could not be recorded in the audit log: {e}"),
        }
    }
}

/// `cardcheck audit …`
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List audit log entries (oldest first): id, time, actor, action, target, detail.
    List {
        /// Entries recorded at or after this time: RFC 3339 (2026-12-04T08:00:00Z), a
        /// UTC date (2026-12-04) or Unix seconds.
        #[arg(long, value_parser = parse_time, value_name = "TIME")]
        since: Option<i64>,
        /// Entries recorded before this time (same forms as --since).
        #[arg(long, value_parser = parse_time, value_name = "TIME")]
        until: Option<i64>,
        /// Actions starting with this text, e.g. `account` or `key.revoke`.
        #[arg(long, value_name = "PREFIX")]
        action: Option<String>,
        /// Only the newest N matching entries (N ≥ 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document (an array of entries, with their hashes).
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain: exit 0 when every entry is intact, 1 naming the first
    /// broken entry.
    Verify {
        /// A head printed by an earlier `audit verify` (hex prefix, at least 8 digits):
        /// also fail unless that entry is still in the chain (detects a cut tail or a
        /// rewritten log).
        #[arg(long, value_name = "HASH", value_parser = parse_hash_prefix)]
        expect: Vec<Vec<u8>>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// RFC 3339, a UTC date or Unix seconds → Unix milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| "Unix seconds out of range".to_string());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    Err("expected RFC 3339 (2026-12-04T08:00:00Z), a date (2026-12-04, UTC) or Unix seconds".into())
}

fn parse_hash_prefix(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if !(8..=64).contains(&text.len()) || !text.len().is_multiple_of(2) {
        return Err("expected 8 to 64 hex digits (an even number)".into());
    }
    hex::decode(text).map_err(|_| "expected hex digits".to_string())
}

/// Unix ms → `2026-12-04T08:59:37.123Z`.
fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// An entry as `audit list --json` prints it.
#[derive(serde::Serialize)]
struct JsonEntry<'a> {
    id: u64,
    time: String,
    ts_ms: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    detail: &'a str,
    prev_hash: String,
    hash: String,
}

impl<'a> From<&'a AuditEntry> for JsonEntry<'a> {
    fn from(e: &'a AuditEntry) -> Self {
        JsonEntry {
            id: e.id,
            time: format_ms(e.ts_ms),
            ts_ms: e.ts_ms,
            actor: &e.event.actor,
            action: &e.event.action,
            target: &e.event.target,
            detail: &e.event.detail,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

/// Runs an `audit` subcommand. Exit status: 0 success (an intact log for `verify`),
/// 1 failure or a broken log.
pub async fn run(cmd: AuditCommand) -> ExitCode {
    match audit(cmd).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::List {
            since,
            until,
            action,
            limit,
            store,
            json,
        } => {
            let (log, backend) = store.open_audit_log().await?;
            let entries = log
                .list(&AuditFilter {
                    since_ms: since,
                    until_ms: until,
                    action_prefix: action,
                    after_id: None,
                    limit,
                    latest: true,
                })
                .await
                .context("cannot read the audit log")?;
            if let Some(backend) = backend {
                backend.close();
            }
            if json {
                let out: Vec<JsonEntry<'_>> = entries.iter().map(JsonEntry::from).collect();
                crate::admin::print_json(&out)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>6}  {:<24}  {:<20}  {:<17}  {:<36}  DETAIL",
                "ID", "TIME (UTC)", "ACTOR", "ACTION", "TARGET"
            );
            for e in &entries {
                println!(
                    "{:>6}  {:<24}  {:<20}  {:<17}  {:<36}  {}",
                    e.id,
                    format_ms(e.ts_ms),
                    e.event.actor,
                    e.event.action,
                    e.event.target,
                    e.event.detail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            expect,
            store,
            json,
        } => {
            let (log, backend) = store.open_audit_log().await?;
            let mut verifier = ChainVerifier::new();
            for prefix in &expect {
                verifier.contains_hash(prefix);
            }
            let verdict = verify_log_with(log.as_ref(), &mut verifier)
                .await
                .context("cannot read the audit log")?;
            if let Some(backend) = backend {
                backend.close();
            }
            let missing: Vec<String> = verifier.missing_known().iter().map(hex::encode).collect();
            match verdict {
                Ok(head) if missing.is_empty() => {
                    let head_hex = (head.entries > 0).then(|| hex::encode(head.head));
                    if json {
                        crate::admin::print_json(&serde_json::json!({
                            "intact": true,
                            "entries": head.entries,
                            "last_id": head.last_id,
                            "head": head_hex,
                        }))?;
                    } else {
                        println!(
                            "audit log intact: {} {}, head {}",
                            head.entries,
                            if head.entries == 1 {
                                "entry"
                            } else {
                                "entries"
                            },
                            head_hex.as_deref().map_or("none", |h| &h[..16])
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Ok(head) => {
                    let reason = format!(
                        "the recorded head {} is not in the audit log ({} entries): entries were \
                         removed from its end, or the log was rewritten",
                        missing.join(", "),
                        head.entries
                    );
                    if json {
                        crate::admin::print_json(&serde_json::json!({
                            "intact": false,
                            "entries": head.entries,
                            "missing_heads": missing,
                            "reason": reason,
                        }))?;
                    }
                    eprintln!("error: {reason}");
                    Ok(ExitCode::from(1))
                }
                Err(broken) => {
                    if json {
                        crate::admin::print_json(&serde_json::json!({
                            "intact": false,
                            "broken_id": broken.id,
                            "reason": broken.reason,
                        }))?;
                    }
                    eprintln!("error: {broken}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_three_forms() {
        assert_eq!(parse_time("1796313600"), Ok(1_796_313_600_000));
        assert_eq!(parse_time("2026-12-03T16:00:00Z"), Ok(1_796_313_600_000));
        assert_eq!(
            parse_time("2026-12-04T00:00:00+08:00"),
            Ok(1_796_313_600_000)
        );
        assert_eq!(parse_time("2026-12-03"), Ok(1_796_256_000_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
        assert!(parse_time("99999999999999999999").is_err());
    }

    #[test]
    fn hash_prefixes() {
        assert_eq!(parse_hash_prefix("00ff00ff"), Ok(vec![0, 255, 0, 255]));
        assert!(parse_hash_prefix("00ff").is_err());
        assert!(parse_hash_prefix("00ff00f").is_err());
        assert!(parse_hash_prefix("zzzzzzzz").is_err());
    }

    #[test]
    fn an_explicit_actor_is_taken_as_is() {
        assert_eq!(resolve_actor(Some(" alice ")), "alice");
        let default = resolve_actor(Some(""));
        assert!(!default.is_empty());
        assert_eq!(default, resolve_actor(None));
    }
}
