//! `cardcheck`: the server, the client and the admin tool in one binary.
//! The command-line contract is `docs/cli.md` (from `spec/cli.md`): keep it stable.
//! Exit status: 0 success, 1 operational failure, 2 usage error.

#![forbid(unsafe_code)]

mod admin;
mod audit;
mod bench;
mod files;
mod logbuf;
mod migrate;
mod registry;
mod serve;
mod store_args;
mod verify;

use std::process::ExitCode;

/// glibc's malloc cost about 13% of the server's CPU under load; mimalloc cut the
/// server's CPU per request by about a fifth (issue 10 profile, bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// cardcheck — a self-hostable Tencent Cloud faceid BankCard2EVerification service.
#[derive(Debug, Parser)]
#[command(name = "cardcheck", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr: `text` (human-readable) or `json` (one JSON object per
    /// line). Levels: CARDCHECK_LOG or RUST_LOG (e.g. `info`, `warn,cardcheck_server=debug`).
    #[arg(long, global = true, value_enum, env = "CARDCHECK_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Who runs the command, for the audit log of administrative actions (default:
    /// the OS user and host, e.g. `alice@ops-1`).
    #[arg(long, global = true, env = audit::ACTOR_ENV, value_name = "NAME")]
    actor: Option<String>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (fields at the top level).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server (and the admin listener).
    Serve(serve::ServeArgs),
    /// Sign and send BankCard2EVerification requests (one, or a CSV batch).
    Verify(verify::VerifyArgs),
    /// Accounts: create, list, set status and limits.
    #[command(subcommand)]
    Account(admin::AccountCommand),
    /// Credentials: create, revoke, temporary tokens, Encryption public keys.
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// The cardholder registry: import, generate, stats.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Load-generate signed requests against an endpoint and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Copy an embedded data directory into PostgreSQL (--database-url).
    Migrate(migrate::MigrateArgs),
    /// The sandbox's reserved test cards.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Billed and free verifications per account and day.
    Usage(admin::UsageArgs),
    /// The audit log of administrative actions: list, verify.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// List the reserved test cards and the Result each forces.
    List {
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// Logs go to stderr (stdout belongs to the command's output): `CARDCHECK_LOG` or
/// `RUST_LOG` filters (else `default_filter`), `--log-format json` (or
/// `CARDCHECK_LOG_FORMAT=json`) for JSON lines. The server logs at `info` (one line
/// per request); client and admin commands only warn, so that their own one-line
/// errors are not buried under library logs.
///
/// The server's lines are buffered and written every 50 ms ([`logbuf`]); the returned
/// guard writes out the rest when `main` returns.
fn init_logging(
    default_filter: &str,
    format: LogFormat,
    buffered: bool,
) -> Option<logbuf::FlushGuard> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CARDCHECK_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let (writer, guard) = if buffered {
        let (writer, guard) = logbuf::buffered_stderr();
        (BoxMakeWriter::new(writer), Some(guard))
    } else {
        (BoxMakeWriter::new(std::io::stderr), None)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    guard
}

/// Whether a panic message is the standard library's for a `println!` into a closed
/// pipe (`cardcheck audit list | head -1`).
fn is_stdout_broken_pipe(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("os error 32")
}

/// A reader that went away (`| head`) ends the command quietly with status 0, as
/// SIGPIPE would, instead of a panic and a backtrace: Rust ignores SIGPIPE, so
/// `println!` panics on the closed pipe (and `unsafe` to restore the signal is
/// forbidden here).
fn exit_quietly_on_broken_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_stdout_broken_pipe(message) {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}

/// Whether `e` is a write into a closed stdout pipe (e.g. the `csv` writer of `usage
/// --format csv | head -1`): the command then ends quietly, as after SIGPIPE.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<csv::Error>()
                    .and_then(|e| match e.kind() {
                        csv::ErrorKind::Io(io) => Some(io.kind()),
                        _ => None,
                    })
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    exit_quietly_on_broken_stdout();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // For `serve`, the config file's `[log]` section fills what flags and environment
    // leave open (a broken file is reported by `serve` itself, once logging is up).
    let file_log = match &cli.command {
        Command::Serve(args) => serve::log_settings(args),
        _ => serve::LogSettings::default(),
    };
    let format = cli
        .log_format
        .or(match file_log.format.as_deref() {
            Some("json") => Some(LogFormat::Json),
            Some("text") => Some(LogFormat::Text),
            _ => None,
        })
        .unwrap_or(LogFormat::Text);
    let serving = matches!(cli.command, Command::Serve(_));
    let _log_guard = init_logging(
        match (&cli.command, &file_log.level) {
            (Command::Serve(_), Some(level)) => level,
            (Command::Serve(_), None) => "info",
            _ => "warn,rustls_platform_verifier=off",
        },
        format,
        serving,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let actor = audit::resolve_actor(cli.actor.as_deref());
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                serve::run(args, matches.subcommand_matches("serve"), &actor).await
            }
            Command::Verify(args) => verify::run(args).await,
            Command::Account(cmd) => admin::run(admin::account(cmd, &actor)).await,
            Command::Key(cmd) => admin::run(admin::key(cmd, &actor)).await,
            Command::Sandbox(SandboxCommand::List { json }) => {
                admin::run(async move { admin::sandbox_list(json) }).await
            }
            Command::Usage(args) => admin::run(admin::usage(args)).await,
            Command::Registry(cmd) => registry::run(cmd, &actor).await,
            Command::Migrate(args) => migrate::run(args, &actor).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Audit(cmd) => audit::run(cmd).await,
        }
    })
}
