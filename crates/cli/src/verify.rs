//! `cardcheck verify`: signs and sends BankCard2EVerification requests — one
//! (`--name`/`--card`) or a CSV batch (`--input`/`--output`) — to cardcheck or to the
//! real `https://faceid.tencentcloudapi.com` (spec/cli.md "Client", issues 4 and 11).
//! User documentation: `docs/verify.md`.
//!
//! Layout:
//! - [`client`]: endpoint, signing (`cardcheck_tc3::sign`), `--encrypt`, sending and
//!   classifying answers.
//! - [`batch`]: the CSV batch (reader, workers, writer, summary).
//! - [`csvio`]: input parsing, the crash-safe output, the request journal.
//! - [`limiter`]: `--qps` pacing and retry backoff.
//! - [`progress`]: progress display and the summary.
//!
//! Card numbers and SecretKeys never reach stderr: messages are built from our own
//! words plus server texts passed through [`redact`].

mod batch;
mod client;
mod csvio;
mod limiter;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cardcheck_domain::CardNumber;
use cardcheck_encryption::Algorithm;
use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::Credential;
use clap::{ArgGroup, ValueEnum};

use client::{Client, ClientConfig, Endpoint, Reply};

/// Arguments of `cardcheck verify` (spec/cli.md "Client").
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["name", "input"])))]
#[command(
    after_help = "Single request: exit 0 for any Result, 1 for an API error \
    (printed as `Code: Message (RequestId)`) or a network failure, 2 for a usage error.\n\
    Batch: exit 0 when every row got a Result, 1 otherwise, 130 when interrupted. \
    See docs/verify.md."
)]
pub struct VerifyArgs {
    /// Cardholder name (single request).
    #[arg(long, value_name = "NAME", requires = "card", conflicts_with = "input")]
    name: Option<String>,

    /// Bank card number (single request); never printed.
    #[arg(
        long,
        value_name = "NUMBER",
        requires = "name",
        conflicts_with = "input"
    )]
    card: Option<String>,

    /// Service endpoint: http(s)://host[:port], or a bare host name meaning https.
    #[arg(
        long,
        value_name = "URL",
        env = "CARDCHECK_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    endpoint: String,

    /// SecretId.
    #[arg(
        long,
        value_name = "ID",
        env = "TENCENTCLOUD_SECRET_ID",
        hide_env_values = true
    )]
    secret_id: Option<String>,

    /// SecretKey (prefer the environment variable: command lines are visible to others).
    #[arg(
        long,
        value_name = "KEY",
        env = "TENCENTCLOUD_SECRET_KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,

    /// Session token of temporary credentials (`X-TC-Token` / `Token`).
    #[arg(
        long,
        value_name = "T",
        env = "TENCENTCLOUD_SESSION_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Signature method.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SignMethodArg::Tc3HmacSha256)]
    sign_method: SignMethodArg,

    /// HTTP method.
    #[arg(long, value_enum, ignore_case = true, default_value_t = HttpMethodArg::Post)]
    http_method: HttpMethodArg,

    /// Language of Description and error messages (not sent by default: the server
    /// answers in English).
    #[arg(long, value_enum)]
    language: Option<LanguageArg>,

    /// Region (optional for faceid; not sent by default).
    #[arg(long, value_name = "R", env = "TENCENTCLOUD_REGION")]
    region: Option<String>,

    /// Encrypt Name and BankCard (protocol.md §7) with the server's public key.
    #[arg(long, value_enum, value_name = "ALGORITHM", requires = "public_key")]
    encrypt: Option<EncryptArg>,

    /// The server's public key for --encrypt: RSA for AES-256-CBC, SM2 for SM4-GCM (PEM,
    /// or Base64 of the PEM; `cardcheck key public` prints them).
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    public_key: Option<PathBuf>,

    /// Single request: print the whole `Response` object as JSON. Batch: print the
    /// summary as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Seconds to wait for one answer.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_secs)]
    timeout: f64,

    /// Extra trusted root certificates (PEM), e.g. for a cardcheck serving TLS with a
    /// private CA.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,

    /// Batch: input CSV with a header naming the name and card columns.
    #[arg(long, value_name = "FILE.csv", requires = "output")]
    input: Option<PathBuf>,

    /// Batch: output CSV (Line, the input columns, Result, Description, RequestId,
    /// ErrorCode, ErrorMessage, Attempts, ElapsedMs, Time).
    #[arg(long, value_name = "FILE.csv", requires = "input")]
    output: Option<PathBuf>,

    /// Batch: requests per second, retries included.
    #[arg(long, default_value_t = 20.0, value_parser = positive_qps)]
    qps: f64,

    /// Batch: requests in flight at most.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,

    /// Batch: keep the rows of --output that have a final answer and do the rest.
    #[arg(long, requires = "input")]
    resume: bool,

    /// Batch: replace an existing --output instead of refusing.
    #[arg(long, requires = "input", conflicts_with = "resume")]
    overwrite: bool,

    /// Batch: attempts per row for transient failures (RequestLimitExceeded, Result
    /// -16, network errors, HTTP 5xx).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,

    /// Batch: name column (default: `name`, any case).
    #[arg(long, value_name = "COLUMN", requires = "input")]
    name_column: Option<String>,

    /// Batch: card column (default: `card`, `bank_card`, `BankCard` or `card_number`).
    #[arg(long, value_name = "COLUMN", requires = "input")]
    card_column: Option<String>,

    /// Batch: write the card column masked (first 6 and last 4 digits) in the output.
    #[arg(long, requires = "input")]
    mask_card: bool,

    /// Batch: no progress display (the summary is still printed).
    #[arg(long, short = 'q')]
    quiet: bool,

    /// Batch: seconds between progress lines when stderr is not a terminal.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_secs)]
    progress_interval: f64,
}

/// `--sign-method` (also `cardcheck bench`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SignMethodArg {
    #[value(name = "TC3-HMAC-SHA256")]
    Tc3HmacSha256,
    #[value(name = "HmacSHA1")]
    HmacSha1,
    #[value(name = "HmacSHA256")]
    HmacSha256,
}

impl From<SignMethodArg> for SignMethod {
    fn from(arg: SignMethodArg) -> Self {
        match arg {
            SignMethodArg::Tc3HmacSha256 => SignMethod::Tc3HmacSha256,
            SignMethodArg::HmacSha1 => SignMethod::HmacSha1,
            SignMethodArg::HmacSha256 => SignMethod::HmacSha256,
        }
    }
}

/// `--http-method` (also `cardcheck bench`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HttpMethodArg {
    #[value(name = "POST")]
    Post,
    #[value(name = "GET")]
    Get,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LanguageArg {
    #[value(name = "zh-CN")]
    ZhCn,
    #[value(name = "en-US")]
    EnUs,
}

/// `--encrypt` (also `cardcheck bench`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EncryptArg {
    #[value(name = "AES-256-CBC")]
    Aes256Cbc,
    #[value(name = "SM4-GCM")]
    Sm4Gcm,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err("expected a number of seconds above 0".to_owned()),
    }
}

fn positive_qps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.01..=10_000.0).contains(&v) => Ok(v),
        _ => Err("expected requests per second between 0.01 and 10000".to_owned()),
    }
}

/// Prints `error: <message>` and returns exit status 1 (spec/cli.md: one clear sentence).
pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// The masked form of a card number: first 6 and last 4 digits
/// ([`CardNumber::masked`]); a value that is not a card number is masked whole unless
/// it is long enough to keep the same ends.
pub(crate) fn mask_card(raw: &str) -> String {
    if let Ok(card) = CardNumber::parse(raw) {
        return card.masked();
    }
    let chars: Vec<char> = raw.chars().collect();
    let n = chars.len();
    if n >= 13 {
        let mut s: String = chars[..6].iter().collect();
        s.extend(std::iter::repeat_n('*', n - 10));
        s.extend(&chars[n - 4..]);
        s
    } else {
        "*".repeat(n)
    }
}

/// `text` with every occurrence of the given secrets replaced: card numbers by their
/// masked form, anything else (SecretKeys) by `<redacted>`. Strings shorter than 6 characters are left alone.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        let s = s.trim();
        if s.chars().count() < 6 {
            continue;
        }
        if out.contains(s) {
            // Card numbers keep their masked ends; anything else (a key) goes whole.
            let masked = match CardNumber::parse(s) {
                Ok(c) => c.masked(),
                Err(_) => "<redacted>".to_owned(),
            };
            out = out.replace(s, &masked);
        }
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 12 && digits != s && out.contains(&digits) {
            out = out.replace(&digits, &mask_card(&digits));
        }
    }
    out
}

/// Entry point, called by `main` for `cardcheck verify`.
pub async fn run(args: VerifyArgs) -> ExitCode {
    let endpoint = match Endpoint::parse(&args.endpoint) {
        Ok(e) => e,
        Err(e) => return usage(&e),
    };
    let secret_id = args.secret_id.clone().unwrap_or_default();
    let secret_key = args.secret_key.clone().unwrap_or_default();
    if secret_id.trim().is_empty() || secret_key.is_empty() {
        return usage(
            "no credentials: pass --secret-id and --secret-key, or set \
             TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY",
        );
    }
    let encryption = match (args.encrypt, &args.public_key) {
        (Some(alg), Some(path)) => {
            match crate::files::read_limited_text(path, crate::files::PUBLIC_KEY_MAX) {
                Ok(pem) => Some((
                    match alg {
                        EncryptArg::Aes256Cbc => Algorithm::Aes256Cbc,
                        EncryptArg::Sm4Gcm => Algorithm::Sm4Gcm,
                    },
                    pem,
                )),
                Err(e) => {
                    return fail(&format!(
                        "cannot read the public key {}: {}",
                        path.display(),
                        csvio::io_text(&e)
                    ));
                }
            }
        }
        _ => None,
    };
    let ca_pem = match &args.ca_cert {
        Some(path) => match crate::files::read_limited(path, crate::files::CA_BUNDLE_MAX) {
            Ok(b) => Some(b),
            Err(e) => {
                return fail(&format!(
                    "cannot read --ca-cert {}: {}",
                    path.display(),
                    csvio::io_text(&e)
                ));
            }
        },
        None => None,
    };
    let cfg = ClientConfig {
        endpoint,
        credential: Credential {
            secret_id,
            secret_key,
            token: args.token.clone().filter(|t| !t.is_empty()),
        },
        sign_method: args.sign_method.into(),
        get: matches!(args.http_method, HttpMethodArg::Get),
        language: args.language.map(|l| match l {
            LanguageArg::ZhCn => "zh-CN",
            LanguageArg::EnUs => "en-US",
        }),
        region: args.region.clone().filter(|r| !r.is_empty()),
        encryption,
        timeout: Duration::from_secs_f64(args.timeout),
        ca_pem,
        pool_size: usize::from(args.concurrency),
    };
    let client = match Client::new(cfg) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };

    match (args.input, args.output, args.name, args.card) {
        (Some(input), Some(output), _, _) => {
            let opts = batch::BatchOptions {
                input,
                output,
                qps: args.qps,
                concurrency: usize::from(args.concurrency),
                resume: args.resume,
                overwrite: args.overwrite,
                max_attempts: args.max_attempts,
                name_column: args.name_column,
                card_column: args.card_column,
                mask_card: args.mask_card,
                json: args.json,
                quiet: args.quiet,
                progress_interval: Duration::from_secs_f64(args.progress_interval),
            };
            batch::run(client, opts).await
        }
        (_, _, Some(name), Some(card)) => single(&client, &name, &card, args.json).await,
        // clap's groups make every other combination a usage error first.
        _ => usage("give --name and --card, or --input and --output"),
    }
}

/// One request (spec/cli.md): `Result:`/`Description:`/`RequestId:` lines or the
/// `Response` object with `--json`; exit 0 for any Result, 1 otherwise.
async fn single(client: &Client, name: &str, card: &str, json: bool) -> ExitCode {
    let secrets = [card, client.secret_key()];
    let prepared = match client.prepare(name, card, None) {
        Ok(p) => p,
        Err(e) => return fail(&redact(&e, &secrets)),
    };
    match client.send(&prepared).await {
        Reply::Answer {
            result,
            description,
            request_id,
            response,
        } => {
            if json {
                print_json(&response);
            } else {
                println!("Result: {result}");
                println!("Description: {description}");
                println!("RequestId: {request_id}");
            }
            ExitCode::SUCCESS
        }
        Reply::ApiError {
            code,
            message,
            request_id,
            response,
            ..
        } => {
            if json {
                print_json(&response);
            }
            eprintln!(
                "{}",
                redact(&format!("{code}: {message} ({request_id})"), &secrets)
            );
            ExitCode::from(1)
        }
        Reply::Http { status, reason } => fail(&format!(
            "{} answered HTTP {status} {reason} without a Tencent Cloud API response",
            client.endpoint()
        )),
        Reply::Network { message } => fail(&redact(&message, &secrets)),
        Reply::Invalid { message } => fail(&format!(
            "unexpected answer from {}: {}",
            client.endpoint(),
            redact(&message, &secrets)
        )),
    }
}

fn print_json(v: &serde_json::Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking() {
        assert_eq!(mask_card("6225768888888888"), "622576******8888");
        assert_eq!(mask_card("abc"), "***");
        assert_eq!(mask_card("6225-7688-8888-8888"), "622576******8888");
    }

    #[test]
    fn redaction() {
        let t = redact(
            "card 6225768888888888 key abcdefghijkl",
            &["6225768888888888", "abcdefghijkl"],
        );
        assert!(
            !t.contains("6225768888888888") && !t.contains("abcdefghijkl"),
            "{t}"
        );
        let t = redact("x 6225768888888888", &["6225 7688 8888 8888"]);
        assert!(!t.contains("6225768888888888"), "{t}");
    }
}
