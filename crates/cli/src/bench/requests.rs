//! The pre-signed request pool: request `i` of a run is a distinct, validly signed
//! BankCard2EVerification, serialised to the exact bytes sent on the wire.
//!
//! Distinctness: request `i` takes card `i mod K` of the card list and name variant
//! `i div K`; a variant adds leading and trailing spaces to the name (16 × 16 variants,
//! all normalising to the same name), or, for the default sandbox card (which passes for
//! any valid name), spells a generated Latin name. All requests of a pool carry the same
//! timestamp; v1 requests also get distinct nonces.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use cardcheck_tc3::SignMethod;
use cardcheck_tc3::sign::{Credential, SignInput, sign_request};
use serde_json::{Map, Value};

use super::encrypt::Encryptor;
use super::{HttpMethodArg, LoadArgs};

/// The sandbox card that answers Result 0 for any validly formatted name.
pub const SANDBOX_CARD: &str = "6225768888888888";
/// Leading × trailing space counts of a name variant.
const SPACE_VARIANTS: u64 = 16;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value as sent and signed (`host:port`).
    pub host: String,
}

/// Parses `http://host:port[/]`.
pub fn parse_endpoint(endpoint: &str) -> anyhow::Result<Target> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the bench endpoint must be http://HOST:PORT (no TLS)"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        bail!("the bench endpoint must be http://HOST:PORT with no path");
    }
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !host.ends_with(']')
    {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} resolves to no address"))?;
    Ok(Target {
        addr,
        host: host.to_owned(),
    })
}

/// Reads `name,card` rows (a header row whose second field is not digits is skipped).
pub fn read_cards(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut cards = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: bad CSV", path.display()))?;
        let (Some(name), Some(card)) = (row.get(0), row.get(1)) else {
            bail!("{}: line {}: expected name,card", path.display(), line + 1);
        };
        let card = card.trim();
        if line == 0 && !card.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        cards.push((
            name.trim_start_matches('\u{feff}').to_owned(),
            card.to_owned(),
        ));
    }
    if cards.is_empty() {
        bail!("{}: no name,card rows", path.display());
    }
    Ok(cards)
}

/// A generated Latin name for variant `v` (for the sandbox card): `Bench ` + base-26.
fn generated_name(mut v: u64) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'a' + (v % 26) as u8);
        v /= 26;
        if v == 0 {
            break;
        }
    }
    letters[0] = letters[0].to_ascii_uppercase();
    // Base-26 digits, least significant first: fine, only distinctness matters.
    format!("Bench {}", String::from_utf8_lossy(&letters))
}

/// Builds request bytes by index.
pub struct RequestBuilder {
    target: Target,
    credential: Credential,
    sign_method: SignMethod,
    http_get: bool,
    /// `None`: the sandbox card with generated names.
    cards: Option<Vec<(String, String)>>,
    encryptor: Option<Encryptor>,
    timestamp: i64,
    /// Added to every index, so that two runs in the same second do not collide.
    offset: u64,
}

impl RequestBuilder {
    /// From the load options.
    pub fn new(args: &LoadArgs, target: &Target) -> anyhow::Result<Self> {
        let (secret_id, secret_key) = match (&args.secret_id, &args.secret_key) {
            (Some(id), Some(key)) => (id.clone(), key.clone()),
            // The fixed-request mode talks to endpoints that check nothing.
            _ if args.fixed => ("AKIDbenchfixedrequest".to_owned(), "bench".to_owned()),
            _ => bail!(
                "--secret-id and --secret-key (or TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY) are required"
            ),
        };
        let cards = args.cards.as_deref().map(read_cards).transpose()?;
        let encryptor = match args.encrypt {
            Some(alg) => {
                let path = args
                    .public_key
                    .as_deref()
                    .ok_or_else(|| anyhow!("--encrypt needs --public-key"))?;
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Some(Encryptor::new(alg, &pem, args.fresh_key)?)
            }
            None => None,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| anyhow!("the system clock is before 1970"))?;
        Ok(RequestBuilder {
            target: target.clone(),
            credential: Credential {
                secret_id,
                secret_key,
                token: None,
            },
            sign_method: args.sign_method.into(),
            http_get: args.http_method == HttpMethodArg::Get,
            cards,
            encryptor,
            timestamp: now.as_secs() as i64,
            offset: u64::from(now.subsec_nanos()) * 7919,
        })
    }

    /// Distinct requests this builder can make (`u64::MAX`: no practical bound).
    pub fn distinct(&self) -> u64 {
        match &self.cards {
            None => u64::MAX,
            Some(c) => (c.len() as u64).saturating_mul(SPACE_VARIANTS * SPACE_VARIANTS),
        }
    }

    fn params(&self, i: u64) -> Map<String, Value> {
        let (name, card) = match &self.cards {
            None => (generated_name(i), SANDBOX_CARD.to_owned()),
            Some(cards) => {
                let k = cards.len() as u64;
                let i = i % self.distinct();
                let (name, card) = &cards[(i % k) as usize];
                let v = i / k;
                let lead = " ".repeat((v % SPACE_VARIANTS) as usize);
                let trail = " ".repeat(((v / SPACE_VARIANTS) % SPACE_VARIANTS) as usize);
                (format!("{lead}{name}{trail}"), card.clone())
            }
        };
        let mut params = Map::new();
        params.insert("Name".into(), Value::String(name));
        params.insert("BankCard".into(), Value::String(card));
        params
    }

    /// The wire bytes of request `i`.
    pub fn build_one(&self, i: u64) -> anyhow::Result<Box<[u8]>> {
        let i = i.wrapping_add(self.offset);
        let mut params = self.params(i);
        if let Some(enc) = &self.encryptor {
            enc.encrypt(&mut params)?;
        }
        let signed = sign_request(&SignInput {
            credential: &self.credential,
            host: &self.target.host,
            service: "faceid",
            action: "BankCard2EVerification",
            version: "2018-03-01",
            region: None,
            language: None,
            request_client: None,
            sign_method: self.sign_method,
            http_method: if self.http_get { "GET" } else { "POST" },
            timestamp: self.timestamp,
            // v1 Nonce: a positive integer, distinct per request.
            nonce: (i % 4_000_000_000) + 1,
            params: &params,
        });
        let mut out = Vec::with_capacity(256 + signed.path_and_query.len() + signed.body.len());
        out.extend_from_slice(signed.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(signed.path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (k, v) in &signed.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if signed.method != "GET" || !signed.body.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", signed.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&signed.body);
        Ok(out.into_boxed_slice())
    }

    /// Requests `range`, built on all cores.
    pub fn build(&self, range: Range<u64>) -> anyhow::Result<Vec<Box<[u8]>>> {
        let n = range.end.saturating_sub(range.start);
        if n > self.distinct() {
            bail!(
                "{n} requests asked for but the card list gives only {} distinct ones; pass more cards",
                self.distinct()
            );
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 16) as u64;
        let chunk = n.div_ceil(threads).max(1);
        let parts: Vec<anyhow::Result<Vec<Box<[u8]>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let start = range.start + t * chunk;
                    let end = (start + chunk).min(range.end);
                    scope.spawn(move || (start..end).map(|i| self.build_one(i)).collect())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a request-building thread panicked")))
                })
                .collect()
        });
        let mut out = Vec::with_capacity(n as usize);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let t = parse_endpoint("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.addr.port(), 8080);
        assert!(parse_endpoint("https://127.0.0.1:8080").is_err());
        assert!(parse_endpoint("http://127.0.0.1:8080/x").is_err());
    }

    #[test]
    fn generated_names_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for v in [0, 1, 25, 26, 27, 675, 676, 1_000_000, u64::MAX] {
            let name = generated_name(v);
            assert!(
                cardcheck_domain::CardholderName::parse(&name).is_ok(),
                "{name}"
            );
            assert!(seen.insert(name));
        }
    }
}
