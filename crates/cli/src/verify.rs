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
//! words plus server texts passed through [`server_text`] (also used for stdout and
//! the batch output).

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

/// Whether a UUID (`8-4-4-4-12` hex digits, the RequestId format) starts at `i`.
fn uuid_at(chars: &[char], i: usize) -> bool {
    const LEN: usize = 36;
    let Some(s) = chars.get(i..i + LEN) else {
        return false;
    };
    let bounded = |c: Option<&char>| c.is_none_or(|c| !c.is_alphanumeric() && *c != '-');
    s.iter().enumerate().all(|(k, c)| {
        if matches!(k, 8 | 13 | 18 | 23) {
            *c == '-'
        } else {
            c.is_ascii_hexdigit()
        }
    })
        // All digits: a card number grouped like a UUID, not a RequestId.
        && s.iter().any(|c| matches!(c, 'a'..='f' | 'A'..='F'))
        && bounded(i.checked_sub(1).and_then(|p| chars.get(p)))
        && bounded(chars.get(i + LEN))
}

/// `text` with every card-like digit run masked to its first 6 and last 4 digits
/// ([`cardcheck_redact::mask_digit_runs`], the one definition of a run). UUIDs
/// (RequestIds) are kept whole: their digit groups joined by `-` often add up to 12.
/// Only a UUID with at least one hex letter is kept: an all-digit one
/// (`62257688-8888-…`) may hold a card number and is masked like any run.
pub(crate) fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut segment = String::new();
    let mut i = 0;
    while i < chars.len() {
        if uuid_at(&chars, i) {
            out.push_str(&cardcheck_redact::mask_digit_runs(&segment));
            segment.clear();
            out.extend(&chars[i..i + 36]);
            i += 36;
        } else {
            segment.push(chars[i]);
            i += 1;
        }
    }
    out.push_str(&cardcheck_redact::mask_digit_runs(&segment));
    out
}

/// Whether `c` would break the line, rewrite the terminal or hide text when printed:
/// control characters (C0, DEL and C1 such as U+009B CSI: ANSI escapes),
/// line/paragraph separators, bidi marks, embeddings, overrides and isolates, and
/// zero-width characters (U+200B–U+200D, U+2060, U+FEFF). The one predicate of text
/// and `--json` output.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200b}'..='\u{200d}'
                | '\u{2060}'
                | '\u{feff}'
        )
}

/// Appends `c` to `out`, written visibly when [`is_unsafe_char`]: `\n`, `\t`, or
/// `\u{202e}` (as text).
fn push_visible(out: &mut String, c: char) {
    if !is_unsafe_char(c) {
        out.push(c);
    } else if matches!(c, '\n' | '\r' | '\t' | '\0') {
        out.extend(c.escape_debug());
    } else {
        out.extend(c.escape_unicode());
    }
}

/// The one way text that came from the server (Result, Description, RequestId, error
/// code and message) is shown, on stderr, stdout and in the batch output: the run's
/// secrets redacted ([`redact`]), card-like digit runs masked ([`mask_digit_runs`]) and
/// control characters written visibly (`\n`, `\u{1b}`), so it stays on one line and
/// cannot drive the terminal. A server is not trusted to keep cards out of its texts.
pub(crate) fn server_text(text: &str, secrets: &[&str]) -> String {
    let masked = mask_digit_runs(&redact(text, secrets));
    let mut out = String::with_capacity(masked.len());
    for c in masked.chars() {
        push_visible(&mut out, c);
    }
    out
}

/// A string of a `--json` `Response`: masked like [`server_text`]; C0 controls are
/// left to JSON's own escaping (`\u001b`), every other [`is_unsafe_char`] (DEL, C1,
/// bidi, zero-width — which serde_json writes raw) is written visibly (`\u{202e}` as
/// text).
fn json_text(text: &str, secrets: &[&str]) -> String {
    let masked = mask_digit_runs(&redact(text, secrets));
    let mut out = String::with_capacity(masked.len());
    for c in masked.chars() {
        if c < ' ' {
            out.push(c);
        } else {
            push_visible(&mut out, c);
        }
    }
    out
}

/// `--json` output of a server's `Response`: every string and key as [`json_text`].
fn masked_json(v: &serde_json::Value, secrets: &[&str]) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(json_text(s, secrets)),
        Value::Array(a) => Value::Array(a.iter().map(|x| masked_json(x, secrets)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (json_text(k, &[]), masked_json(x, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
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
    // Everything below that came from the server goes through `server_text`.
    let shown = |t: &str| server_text(t, &secrets);
    match client.send(&prepared).await {
        Reply::Answer {
            result,
            description,
            request_id,
            response,
        } => {
            if json {
                print_json(&masked_json(&response, &secrets));
            } else {
                println!("Result: {}", shown(&result));
                println!("Description: {}", shown(&description));
                println!("RequestId: {}", shown(&request_id));
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
                print_json(&masked_json(&response, &secrets));
            }
            eprintln!(
                "{}: {} ({})",
                shown(&code),
                shown(&message),
                shown(&request_id)
            );
            ExitCode::from(1)
        }
        Reply::Http { status, reason } => fail(&format!(
            "{} answered HTTP {status} {reason} without a Tencent Cloud API response",
            client.endpoint()
        )),
        Reply::Network { message } => fail(&shown(&message)),
        Reply::Invalid { message } => fail(&format!(
            "unexpected answer from {}: {}",
            client.endpoint(),
            shown(&message)
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masking() {
        assert_eq!(mask_card("6225768888888888"), "622576******8888");
        assert_eq!(mask_card("abc"), "***");
        assert_eq!(mask_card("6225-7688-8888-8888"), "622576******8888");
    }

    /// Regression: server text was printed raw (newlines, ANSI escapes, unmasked card
    /// numbers). `server_text` makes it one visible line with card-like runs masked.
    #[test]
    fn server_text_is_one_line_with_controls_escaped_and_cards_masked() {
        assert_eq!(
            server_text(
                "bad card 6225768888888888\nsecond line \x1b[31mred",
                &["6225768888888888"]
            ),
            r"bad card 622576******8888\nsecond line \u{1b}[31mred"
        );
        // Not a secret of the run: masked as a digit run, grouped or not.
        assert_eq!(
            server_text("x 6217000000000000012\x1b[2J\r\t\u{202e}", &[]),
            r"x 621700*********0012\u{1b}[2J\r\t\u{202e}"
        );
        assert_eq!(
            server_text("6225 7688 8888 8888 / 6225-7688-8888-8888", &[]),
            "622576******8888 / 622576******8888"
        );
        // Short numbers, versions, dates and request ids stay.
        for keep in [
            "Result -4, 12345678901 digits",
            "v3.1.189.1 at 2026-12-04 18:29",
            "0c6d1c0e-8a1b-4f2e-9d3c-5b7a6e4f1a2b",
            "RequestId 01a24251-1234-7684-8123-456789012345.",
            "张三：银行卡号不一致",
        ] {
            assert_eq!(server_text(keep, &[]), keep);
        }
        assert!(!server_text("key abcdefghijkl", &["abcdefghijkl"]).contains("abcdefghijkl"));
        // Not UUID-shaped (a group too long): the run is masked.
        assert_eq!(
            server_text("01a24251-1234-7684-8123-4567890123456", &[]),
            "01a242511********************3456"
        );
    }

    /// Broke: a UUID-shaped run was kept whole even when all digits, so a card number
    /// grouped like a UUID (`62257688-8888-…`) reached the output unmasked.
    #[test]
    fn an_all_digit_uuid_shaped_run_is_masked() {
        let text = "62257688-8888-8888-8888-888888888888";
        let shown = server_text(text, &[]);
        assert_ne!(shown, text);
        assert!(!shown.contains("62257688-8888"), "{shown}");
        assert!(!shown.contains("888888888888"), "{shown}");
        // One hex letter (upper case too) and it is a RequestId again.
        for keep in [
            "62257688-8888-8888-8888-88888888888a",
            "62257688-8888-8888-8888-88888888888A",
        ] {
            assert_eq!(server_text(keep, &[]), keep);
        }
    }

    /// Broke: `--json` wrote C1 controls (U+009B CSI), bidi overrides and zero-width
    /// characters raw (serde_json escapes C0 only), and text mode wrote zero-width
    /// characters raw. Both must write all of them visibly.
    #[test]
    fn json_and_text_output_escape_c1_bidi_and_zero_width_characters() {
        let raw =
            "a\u{9b}31m\u{202e}b\u{2066}c\u{200b}d\u{200c}\u{200d}\u{2060}\u{feff}\u{7f}e\u{1b}";
        let text = server_text(raw, &[]);
        assert_eq!(
            text,
            r"a\u{9b}31m\u{202e}b\u{2066}c\u{200b}d\u{200c}\u{200d}\u{2060}\u{feff}\u{7f}e\u{1b}"
        );
        let v = masked_json(
            &serde_json::json!({"Description": raw, "List": [raw], "k\u{202e}": 1}),
            &[],
        );
        let printed = serde_json::to_string(&v).unwrap();
        assert!(
            printed.chars().all(|c| !is_unsafe_char(c) || c == '\u{1b}'),
            "{printed:?}"
        );
        // C0 is left to JSON (`\u001b`); the rest is visible text.
        assert_eq!(
            v["Description"],
            "a\\u{9b}31m\\u{202e}b\\u{2066}c\\u{200b}d\\u{200c}\\u{200d}\\u{2060}\\u{feff}\\u{7f}e\u{1b}"
        );
        assert_eq!(v["List"][0], v["Description"]);
        assert_eq!(v["k\\u{202e}"], 1);
        assert!(printed.contains(r"e\u001b"), "{printed}");
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
