#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! Issue 9, done-when: a slowloris client (one byte per second of a request head) is
//! cut off within the header timeout (`--header-timeout 2`) while normal clients are
//! served; a client that sends its head but trickles the body gets the per-request
//! deadline (`--request-timeout 3`: an `InternalError` envelope), not a held
//! connection. A client that connects and sends nothing is cut off at the header
//! timeout too, and so is one that trickles its second request's head on a
//! keep-alive connection (counted from the first answer).

mod ops_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cardcheck_tc3::SignMethod;
use ops_common::*;
use serde_json::Value;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const SLOW_CLIENTS: usize = 8;

/// Sends a request head one byte per second; returns how long the server let it go
/// on before closing the connection (`None`: still open after 15 s).
fn slowloris(addr: SocketAddr) -> Option<Duration> {
    let stream = TcpStream::connect(addr).unwrap();
    trickle_head(stream, addr, Instant::now())
}

/// On a keep-alive connection, one normal request, then the next head one byte per
/// second; returns how long after the first answer the server hung up.
fn keepalive_slowloris(
    addr: SocketAddr,
    first: &cardcheck_tc3::sign::SignedRequest,
) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", first.method, first.path_and_query);
    for (k, v) in &first.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", first.body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&first.body).unwrap();
    // Read exactly one response (head, then Content-Length bytes).
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Response"]["Result"], "0", "{body}");
    trickle_head(stream, addr, Instant::now())
}

/// Writes a request head one byte per second on `stream`; returns how long after
/// `started` the server hung up (`None`: not within 15 s).
fn trickle_head(mut stream: TcpStream, addr: SocketAddr, started: Instant) -> Option<Duration> {
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(64)
    );
    stream
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    for byte in head.as_bytes() {
        if stream.write_all(&[*byte]).is_err() {
            return Some(started.elapsed());
        }
        // Wait a second for the next byte, watching for the server hanging up.
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            // EOF, or a response (an error page) followed by the close.
            Ok(_) => return Some(started.elapsed()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
        if started.elapsed() > Duration::from_secs(15) {
            return None;
        }
    }
    None
}

/// Connects and sends nothing; returns when the server hung up (`None`: not in 15 s).
fn silent(addr: SocketAddr) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        _ => Some(started.elapsed()),
    }
}

/// Sends a complete head announcing 100 body bytes, then one body byte per second;
/// returns the response body and when it came.
fn slow_body(addr: SocketAddr) -> (Duration, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    .unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    while started.elapsed() < Duration::from_secs(15) {
        let _ = stream.write_all(b" ");
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n")
                    && let Ok(body) = serde_json::from_slice::<Value>(&raw[split + 4..])
                {
                    return (started.elapsed(), body);
                }
            }
            Err(_) => {}
        }
    }
    panic!(
        "no answer to a slow body within 15 s: {:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn slowloris_is_cut_off_while_normal_clients_are_served() {
    let (_tmp, dir) = data_dir();
    let credential = create_account(&dir, "patient");
    let server = Server::start(
        &dir,
        &[
            "--demo",
            "--header-timeout",
            "2",
            "--request-timeout",
            "3",
            "--max-connections",
            "64",
        ],
        &[("CARDCHECK_LOG", "warn")],
    );
    let addr = server.addr;
    let done = Arc::new(AtomicBool::new(false));

    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| std::thread::spawn(move || slowloris(addr)))
        .collect();
    let quiet: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| std::thread::spawn(move || silent(addr)))
        .collect();
    let trickle = std::thread::spawn(move || slow_body(addr));
    let first = sign(
        &credential,
        &server.host(),
        &params("Wei Xiaobao", "6225768888888888"),
        SignMethod::Tc3HmacSha256,
        "POST",
        now() - 1000 / 4, // distinct from the normal client's requests
    );
    let keepalive = std::thread::spawn(move || keepalive_slowloris(addr, &first));

    // Normal clients meanwhile: every request answered, promptly.
    let host = server.host();
    let normal = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut n = 0i64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let req = sign(
                    &credential,
                    &host,
                    &params("Wei Xiaobao", "6225768888888888"),
                    SignMethod::Tc3HmacSha256,
                    "POST",
                    now() - n, // distinct requests, never replays
                );
                let started = Instant::now();
                let (status, body) = send(addr, &req, Duration::from_secs(5)).unwrap();
                latencies.push(started.elapsed());
                assert_eq!(status, 200);
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["Response"]["Result"], "0", "{body}");
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };

    for (kind, handle) in slow
        .into_iter()
        .map(|h| ("one byte per second", h))
        .chain(quiet.into_iter().map(|h| ("silent", h)))
        .chain(std::iter::once((
            "keep-alive one byte per second",
            keepalive,
        )))
    {
        let held = handle
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("a {kind} client was never cut off"));
        eprintln!("{kind} client cut off after {held:?}");
        assert!(
            held <= HEADER_TIMEOUT + Duration::from_millis(500),
            "a {kind} client held its connection for {held:?} (header timeout {HEADER_TIMEOUT:?})"
        );
        assert!(
            held >= HEADER_TIMEOUT - Duration::from_millis(500),
            "{kind}: {held:?}"
        );
    }
    let (after, body) = trickle.join().unwrap();
    eprintln!("slow body answered after {after:?}");
    assert_eq!(body["Response"]["Error"]["Code"], "InternalError", "{body}");
    assert!(
        after >= Duration::from_millis(2500) && after <= Duration::from_millis(4500),
        "slow body answered after {after:?} (request timeout 3 s)"
    );

    done.store(true, Ordering::Relaxed);
    let latencies = normal.join().unwrap();
    assert!(latencies.len() >= 10, "{latencies:?}");
    let worst = latencies.iter().max().unwrap();
    eprintln!(
        "{} normal requests served meanwhile, worst latency {worst:?}",
        latencies.len()
    );
    assert!(
        *worst < Duration::from_secs(1),
        "worst normal latency {worst:?}"
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("cardcheck_request_timeouts_total 1"),
        "{metrics}"
    );
    server.stop();
}
