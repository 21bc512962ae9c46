//! Shared test helpers: reading raw `.http` captures into owned requests.
#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cardcheck_tc3::RawRequest;
use http::{HeaderMap, HeaderName, HeaderValue};

pub const SECRET_ID: &str = "AKIDEXAMPLE0000000000000000000000000";
pub const SECRET_KEY: &str = "examplesecretkey000000000000000000";
pub const NOW: i64 = 1_700_000_000;

/// An owned request parsed from a raw capture file.
#[derive(Clone, Debug)]
pub struct OwnedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    pub fn raw(&self) -> RawRequest<'_> {
        RawRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// Request line, headers (CRLF), blank line, body (protocol fixture format).
pub fn parse_http(raw: &[u8]) -> OwnedRequest {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = std::str::from_utf8(&raw[..split]).expect("head utf8");
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let mut rl = lines.next().unwrap().splitn(3, ' ');
    let method = rl.next().unwrap().to_owned();
    let target = rl.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    OwnedRequest {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures/http")
}

/// Every `.http` capture, sorted by name.
pub fn captures() -> Vec<(String, OwnedRequest)> {
    let mut out: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, parse_http(&std::fs::read(&p).unwrap()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn capture(name: &str) -> OwnedRequest {
    parse_http(&std::fs::read(fixtures().join(format!("{name}.http"))).unwrap())
}
