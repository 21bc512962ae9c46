//! `cardcheck serve` (docs/cli.md "Server"; configuration in docs/configuration.md).
//!
//! Every setting comes from, in order of precedence: a flag, its environment variable,
//! the `--config` TOML file, the built-in default. Without a config file the demo
//! profile is the default; with one, production (no sandbox) unless it says `demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cardcheck_domain::{BinTable, SystemClock};
use cardcheck_server::{AppState, ListenerConfig, ServerConfig};
use cardcheck_store::Backend;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::store_args::StoreArgs;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Longest header or request timeout, seconds: a day is already far beyond any client;
/// a value near `u64::MAX` overflowed the connection's deadline (a panic per connection).
const MAX_TIMEOUT_SECONDS: u64 = 86_400;
/// Longest time a loaded credential is trusted (docs/configuration.md): the bound on
/// how late a revocation takes effect.
const MAX_CREDENTIAL_CACHE_SECONDS: u64 = 5;

/// Prints one line on stdout and ignores a failure: the start-up lines are for whoever
/// started the server, and a reader that went away (a closed pipe) must not stop it
/// (`println!` would panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*).and_then(|()| out.flush());
    }};
}

/// `cardcheck serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// API listen address [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "CARDCHECK_LISTEN")]
    listen: Option<SocketAddr>,
    /// Health, readiness and metrics listen address [default: 127.0.0.1:9090].
    #[arg(long, env = "CARDCHECK_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "CARDCHECK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Demo profile: sandbox cards on, and on a fresh data directory a `demo` account
    /// whose credentials are printed once. The default without --config.
    #[arg(long, overrides_with = "no_demo")]
    demo: bool,
    /// Production profile: no sandbox cards, no demo account.
    #[arg(long, overrides_with = "demo")]
    no_demo: bool,
    /// TLS certificate chain (PEM) for the API listener.
    #[arg(
        long,
        env = "CARDCHECK_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        env = "CARDCHECK_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Extra BIN table (CSV in the built-in table's format) merged at start-up.
    #[arg(long, value_name = "FILE")]
    extra_bins: Option<PathBuf>,
    /// Treat Luhn failures as `-7` for UnionPay and domestic BINs too.
    #[arg(long)]
    strict_luhn: bool,
    /// Accept business parameters the action does not define (else `UnknownParameter`).
    #[arg(long)]
    allow_unknown_params: bool,
    /// Public host name(s) clients sign when a reverse proxy rewrites `Host`.
    #[arg(long = "public-host", value_name = "HOST")]
    public_hosts: Vec<String>,
    /// Seconds a client has to send a request head [default: 10; at most 86400].
    #[arg(long, env = "CARDCHECK_HEADER_TIMEOUT", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    header_timeout: Option<u64>,
    /// Seconds a request may take from its first byte to its answer [default: 10; at most 86400].
    #[arg(long, env = "CARDCHECK_REQUEST_TIMEOUT", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    request_timeout: Option<u64>,
    /// Connections served at once [default: 10000].
    #[arg(long, env = "CARDCHECK_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
}

/// The `--config` file. Unknown keys are errors, so a typo is caught at start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    redis_url: Option<String>,
    demo: Option<bool>,
    #[serde(default)]
    tls: Option<TlsSection>,
    #[serde(default)]
    verification: VerificationSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    log: LogSection,
}

/// `[log]`: what `--log-format` and `CARDCHECK_LOG` set, for when neither is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<String>,
    level: Option<String>,
}

/// The config file's `[log]` settings, read before logging starts.
#[derive(Debug, Default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: Option<String>,
    /// A log filter (`info`, `warn,cardcheck_server=debug`).
    pub level: Option<String>,
}

/// The `[log]` section of `serve`'s config file, if there is a valid one (an invalid
/// file is reported by `serve` with the rest of its checks).
pub fn log_settings(args: &ServeArgs) -> LogSettings {
    match args.config.as_deref().map(ConfigFile::load) {
        Some(Ok(file)) => LogSettings {
            format: file.log.format,
            level: file.log.level,
        },
        _ => LogSettings::default(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerificationSection {
    sandbox: Option<bool>,
    strict_luhn: Option<bool>,
    allow_unknown_params: Option<bool>,
    extra_bins: Option<PathBuf>,
    #[serde(default)]
    public_hosts: Vec<String>,
    credential_cache_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    header_timeout_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
}

impl ConfigFile {
    /// Reads and validates a config file; errors name the file and the mistake.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = crate::files::read_limited_text(path, crate::files::CONFIG_MAX)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let config: ConfigFile = toml::from_str(&text).map_err(|e| {
            // One line: the message and where, without toml's multi-line snippet.
            let at = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                let source: String = text
                    .lines()
                    .nth(line - 1)
                    .unwrap_or("")
                    .trim()
                    .chars()
                    .take(80)
                    .collect();
                format!(" (line {line}, column {column}: `{source}`)")
            });
            anyhow::anyhow!(
                "{}: {}{at}",
                path.display(),
                e.message().trim_end().replace('\n', " ")
            )
        })?;
        if config.database_url.is_some() != config.redis_url.is_some() {
            bail!("{}: database_url and redis_url go together", path.display());
        }
        for (name, value) in [
            (
                "limits.header_timeout_seconds",
                config.limits.header_timeout_seconds,
            ),
            (
                "limits.request_timeout_seconds",
                config.limits.request_timeout_seconds,
            ),
        ] {
            if let Some(v) = value
                && !(1..=MAX_TIMEOUT_SECONDS).contains(&v)
            {
                bail!(
                    "{}: {name} must be 1 to {MAX_TIMEOUT_SECONDS} seconds, not {v}",
                    path.display()
                );
            }
        }
        if let Some(v) = config.verification.credential_cache_seconds
            && v > MAX_CREDENTIAL_CACHE_SECONDS
        {
            bail!(
                "{}: verification.credential_cache_seconds must be at most \
                 {MAX_CREDENTIAL_CACHE_SECONDS} (the bound on how late a revoked key still works), not {v}",
                path.display()
            );
        }
        if config.limits.max_connections == Some(0) {
            bail!(
                "{}: limits.max_connections must be at least 1",
                path.display()
            );
        }
        if let Some(format) = &config.log.format
            && format != "text"
            && format != "json"
        {
            bail!(
                "{}: log.format must be \"text\" or \"json\", not {format:?}",
                path.display()
            );
        }
        if let Some(level) = &config.log.level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
        {
            bail!(
                "{}: log.level {level:?} is not a log filter ({e})",
                path.display()
            );
        }
        Ok(config)
    }
}

pub async fn run(args: ServeArgs, matches: Option<&clap::ArgMatches>, actor: &str) -> ExitCode {
    match serve(args, matches, actor).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether the user set `id` by flag or environment (not clap's default).
fn user_set(matches: Option<&clap::ArgMatches>, id: &str) -> bool {
    matches
        .and_then(|m| m.value_source(id))
        .is_some_and(|s| s != ValueSource::DefaultValue)
}

async fn serve(
    mut args: ServeArgs,
    matches: Option<&clap::ArgMatches>,
    actor: &str,
) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => Some(ConfigFile::load(path)?),
        None => None,
    };
    let file_ref = file.as_ref();
    if let Some(f) = file_ref {
        if !user_set(matches, "data_dir")
            && let Some(dir) = &f.data_dir
        {
            args.store.data_dir = dir.clone();
        }
        if args.store.database_url.is_none() {
            args.store.database_url = f.database_url.clone();
            args.store.redis_url = f.redis_url.clone();
        }
    }
    let demo = if args.demo {
        true
    } else if args.no_demo {
        false
    } else {
        file_ref.is_none_or(|f| f.demo.unwrap_or(false))
    };
    let verification = file_ref.map(|f| &f.verification);
    let limits = file_ref.map(|f| &f.limits);
    let listen = args
        .listen
        .or(file_ref.and_then(|f| f.listen))
        .unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))
        });
    let admin_listen = args
        .admin_listen
        .or(file_ref.and_then(|f| f.admin_listen))
        .unwrap_or_else(|| {
            DEFAULT_ADMIN_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9090)))
        });
    let tls_files = match (
        &args.tls_cert,
        &args.tls_key,
        file_ref.and_then(|f| f.tls.as_ref()),
    ) {
        (Some(c), Some(k), _) => Some((c.clone(), k.clone())),
        (_, _, Some(t)) => Some((t.cert.clone(), t.key.clone())),
        _ => None,
    };
    let tls = match &tls_files {
        Some((cert, key)) => {
            Some(cardcheck_server::load_tls(cert, key).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let extra_bins = args
        .extra_bins
        .clone()
        .or(verification.and_then(|v| v.extra_bins.clone()));
    let bins = match &extra_bins {
        None => BinTable::builtin_shared(),
        Some(path) => {
            let text = crate::files::read_limited_text(path, crate::files::BIN_TABLE_MAX)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Arc::new(
                BinTable::with_extra_csv(&text).with_context(|| format!("{}", path.display()))?,
            )
        }
    };
    let mut public_hosts = args.public_hosts.clone();
    public_hosts.extend(
        verification
            .map(|v| v.public_hosts.clone())
            .unwrap_or_default(),
    );
    let config = ServerConfig {
        sandbox: verification.and_then(|v| v.sandbox).unwrap_or(demo) || args.demo,
        strict_luhn: args.strict_luhn || verification.and_then(|v| v.strict_luhn).unwrap_or(false),
        allow_unknown_params: args.allow_unknown_params
            || verification
                .and_then(|v| v.allow_unknown_params)
                .unwrap_or(false),
        extra_hosts: public_hosts,
        credential_ttl: Duration::from_secs(
            verification
                .and_then(|v| v.credential_cache_seconds)
                // At most MAX_CREDENTIAL_CACHE_SECONDS: the config check refuses more.
                .unwrap_or(2),
        ),
        request_timeout: Duration::from_secs(
            args.request_timeout
                .or(limits.and_then(|l| l.request_timeout_seconds))
                .unwrap_or(10)
                .max(1),
        ),
        bins,
    };
    let listener_config = ListenerConfig {
        tls,
        header_read_timeout: Duration::from_secs(
            args.header_timeout
                .or(limits.and_then(|l| l.header_timeout_seconds))
                .unwrap_or(10)
                .max(1),
        ),
        max_connections: args
            .max_connections
            .and_then(|n| usize::try_from(n).ok())
            .or(limits.and_then(|l| l.max_connections))
            .unwrap_or(10_000)
            .max(1),
        ..ListenerConfig::default()
    };

    let shutdown = shutdown_signal();
    // Bound before the demo account is created: a busy port must not cost the demo
    // SecretKey, which is printed only when it is created.
    let api = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen} (admin)"))?;
    let backend = args.store.open().await?;
    // One server per embedded data directory: its rate limits, replay cache and daily
    // attempt counts live in the process. Held until `serve` returns.
    let _data_dir_lock = if args.store.database_url.is_none() {
        match lock_data_dir(&args.store.data_dir) {
            Ok(lock) => Some(lock),
            Err(e) => {
                backend.close();
                return Err(e);
            }
        }
    } else {
        None
    };
    let demo_credentials = if demo {
        create_demo_account(&backend, actor).await?
    } else {
        None
    };
    let state = AppState::new(backend.clone(), config, Arc::new(SystemClock))
        .await
        .context("cannot start")?;

    let api_addr = api.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let scheme = if listener_config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // The first stdout line is the contract scripts read the port from.
    say!("listening on {scheme}://{api_addr}");
    say!("admin on http://{admin_addr} (/healthz, /readyz, /metrics)");
    say!("store: {}", backend.description);
    if state.sandbox_enabled() {
        say!("sandbox cards enabled (cardcheck sandbox list)");
    }
    if let Some(issued) = demo_credentials {
        say!("demo account created; its SecretKey is shown only now:");
        say!("  SecretId:  {}", issued.secret_id);
        say!("  SecretKey: {}", issued.secret_key);
        say!("try:");
        say!(
            "  cardcheck verify --endpoint {scheme}://{api_addr} --secret-id {} --secret-key {} --name 'Wei Xiaobao' --card 6225768888888888",
            issued.secret_id,
            issued.secret_key
        );
    }
    tracing::info!(%api_addr, %admin_addr, store = %backend.description, "cardcheck serving");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let api_task = tokio::spawn(cardcheck_server::serve_with(
        api,
        cardcheck_server::app(state.clone()),
        listener_config,
        stopped(stop_rx.clone()),
    ));
    let admin_task = tokio::spawn(cardcheck_server::serve_with(
        admin,
        cardcheck_server::admin_app(state.clone()),
        ListenerConfig::default(),
        stopped(stop_rx),
    ));
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let api_result = api_task.await;
    let _ = admin_task.await;
    drop(state);
    // Every answered request's ledger row was committed before its reply; this
    // stops the ledger's writer and checkpointer threads.
    backend.close();
    api_result.context("server task failed")??;
    Ok(())
}

/// The lock file of a served embedded data directory.
const SERVE_LOCK_FILE: &str = "serve.lock";

/// Takes the exclusive lock on `data_dir`'s [`SERVE_LOCK_FILE`] (released when the
/// file is dropped or the process dies, `kill -9` included) and writes this process's
/// id into it. Another `serve` on the same directory is refused with one sentence:
/// two processes would each enforce the account limits (QPS, daily attempts) and
/// recognise replays on their own, so together they would allow twice as much.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = data_dir.join(SERVE_LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = (&file).take(64).read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if !holder.is_empty() && holder.bytes().all(|b| b.is_ascii_digit()) {
                format!(" (pid {holder})")
            } else {
                String::new()
            };
            bail!(
                "the data directory {} is already served by another cardcheck serve{by}; \
                 an embedded data directory has one server (several nodes share PostgreSQL + Redis, \
                 docs/scale-out.md)",
                data_dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Who holds it, for the message above; a failure here changes nothing else.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

/// On a data directory without accounts: the `demo` account and a key pair, recorded
/// in the audit log as `actor`'s.
async fn create_demo_account(
    backend: &Backend,
    actor: &str,
) -> anyhow::Result<Option<cardcheck_store::IssuedCredential>> {
    if !backend.accounts.list_accounts().await?.is_empty() {
        return Ok(None);
    }
    let account = match backend.accounts.create_account("demo").await {
        Ok(account) => account,
        // Another node starting on the same fresh store created it first.
        Err(cardcheck_store::StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let issued = backend.accounts.create_credential("demo", None).await?;
    let auditor = crate::audit::Auditor::new(backend, actor);
    if let Err(e) = crate::admin::audit_account_created(auditor, &account, &issued).await {
        // The key exists and is not shown again: show it now, then refuse to start.
        say!("demo account created; its SecretKey is shown only now:");
        say!("  SecretId:  {}", issued.secret_id);
        say!("  SecretKey: {}", issued.secret_key);
        return Err(e);
    }
    Ok(Some(issued))
}

/// Installs the SIGINT / SIGTERM handlers now and returns the future that resolves on
/// the first of them. Installed before the `listening on` line is printed, so that a
/// script that signals the server as soon as it read that line gets the graceful
/// shutdown (exit 0), not the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let wait = |kind: SignalKind| {
            let installed = signal(kind);
            async move {
                match installed {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        };
        let terminate = wait(SignalKind::terminate());
        let interrupt = wait(SignalKind::interrupt());
        async move {
            tokio::select! {
                () = terminate => {},
                () = interrupt => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ConfigFile> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cardcheck.toml");
        std::fs::write(&path, text)?;
        ConfigFile::load(&path)
    }

    #[test]
    fn the_documented_example_config_is_valid() {
        let doc = include_str!("../../../docs/configuration.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let config = parse(example).unwrap();
        assert_eq!(config.listen, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(config.limits.max_connections, Some(2000));
        assert_eq!(config.log.format.as_deref(), Some("json"));
        assert!(config.tls.is_some());
    }

    #[test]
    fn config_files_are_validated_with_one_clear_message() {
        let ok = parse(
            "listen = \"0.0.0.0:8443\"\ndemo = false\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             [verification]\nsandbox = true\npublic_hosts = [\"faceid.example.com\"]\n\
             [limits]\nmax_connections = 100\n",
        )
        .unwrap();
        assert_eq!(ok.listen, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(ok.verification.sandbox, Some(true));
        for (bad, needle) in [
            ("listen = \"nowhere\"", "listen"),
            ("lisen = \"127.0.0.1:1\"", "lisen"),
            ("[limits]\nmax_connections = 0", "max_connections"),
            ("database_url = \"postgres://x\"", "go together"),
            ("[tls]\ncert = \"c.pem\"", "key"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[log]\nlevel = \"info,=[\"", "log.level"),
            (
                "[limits]\nheader_timeout_seconds = 0",
                "header_timeout_seconds",
            ),
            // A header timeout near u64::MAX overflowed the connection deadline: every
            // connection panicked.
            (
                "[limits]\nheader_timeout_seconds = 18446744073709551615",
                "header_timeout_seconds must be 1 to 86400",
            ),
            (
                "[verification]\ncredential_cache_seconds = 99",
                "credential_cache_seconds must be at most 5",
            ),
            ("not toml at all [", ""),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
