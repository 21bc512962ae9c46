#![allow(clippy::unwrap_used)] // tests may unwrap (project standard)

//! Issue 9, done-when: `kill -9` of the server under load, restart on the same data
//! directory, and the ledger holds a row for every response a client received (the
//! reply waits for its ledger row's commit). Five rounds on one data directory: each
//! round starts the server (a restart after the previous round's kill), loads it with
//! concurrent clients signing distinct requests, kills it with SIGKILL mid-load, then
//! opens the store and looks up every received RequestId. A last start checks that the
//! store still serves and that `cardcheck usage` counts at least every received row.

mod ops_common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardcheck_tc3::SignMethod;
use ops_common::*;
use serde_json::Value;

const ROUNDS: usize = 5;
const CLIENTS: usize = 4;
const PASS_CARD: &str = "6225768888888888";

/// A distinct, validly formatted Latin name for request `n` of client `c`.
fn name(c: usize, n: usize) -> String {
    let mut letters = String::new();
    let mut x = c * 1_000_000 + n;
    loop {
        letters.push((b'a' + (x % 26) as u8) as char);
        x /= 26;
        if x == 0 {
            break;
        }
    }
    format!("Crash Test {letters}")
}

#[test]
fn every_answered_request_survives_kill_9() {
    let (_tmp, dir) = data_dir();
    let credential = create_account(&dir, "crash");
    let mut all_received = 0usize;
    let mut all_cut = 0usize;
    for round in 0..ROUNDS {
        let server = Server::start(&dir, &["--demo"], &[("CARDCHECK_LOG", "warn")]);
        let host = server.host();
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        // Requests cut short by the kill (sent, no complete answer): proof of load.
        let cut = Arc::new(AtomicUsize::new(0));
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let methods = [
            (SignMethod::Tc3HmacSha256, "POST"),
            (SignMethod::HmacSha1, "GET"),
        ];
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (stop, answered, received, cut) = (
                    stop.clone(),
                    answered.clone(),
                    received.clone(),
                    cut.clone(),
                );
                let (credential, host) = (credential.clone(), host.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    // Keep sending until the server is gone (and a bit past the kill).
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let (method, http) = methods[n % methods.len()];
                        let req = sign(
                            &credential,
                            &host,
                            &params(&name(round * CLIENTS + c, n), PASS_CARD),
                            method,
                            http,
                            now(),
                        );
                        match send(addr, &req, Duration::from_secs(5)) {
                            Ok((200, body)) => {
                                let body: Value = serde_json::from_slice(&body).unwrap();
                                let r = &body["Response"];
                                assert_eq!(r["Result"], "0", "{body}");
                                received
                                    .lock()
                                    .unwrap()
                                    .push(r["RequestId"].as_str().unwrap().to_owned());
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((status, _)) => panic!("HTTP {status}"),
                            // Refused: the server is gone. Reset or cut short: the kill
                            // hit this request in flight.
                            Err(e) => {
                                if e.kind() != std::io::ErrorKind::ConnectionRefused {
                                    cut.fetch_add(1, Ordering::Relaxed);
                                }
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                })
            })
            .collect();

        // Kill at a different load point each round.
        let target = 60 + 30 * round;
        let started = Instant::now();
        while answered.load(Ordering::Relaxed) < target {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "round {round}: only {} answers in 20 s",
                answered.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        server.kill9();
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        let received = received.lock().unwrap().clone();
        assert!(received.len() >= target);

        // Every RequestId a client received has its ledger row.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (missing, rows) = runtime.block_on(async {
            let backend = cardcheck_store::open_sqlite(&dir).unwrap();
            let mut missing = Vec::new();
            for id in &received {
                if backend.ledger.count_request(id).await.unwrap() != 1 {
                    missing.push(id.clone());
                }
            }
            let usage = backend
                .ledger
                .usage(&cardcheck_store::UsageFilter::default())
                .await
                .unwrap();
            backend.close();
            (missing, usage.iter().map(|r| r.count).sum::<u64>() as usize)
        });
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} answered requests have no ledger row: {missing:?}",
            missing.len(),
            received.len()
        );
        let unique: BTreeSet<&String> = received.iter().collect();
        assert_eq!(unique.len(), received.len(), "RequestIds are unique");
        all_received += received.len();
        all_cut += cut.load(Ordering::Relaxed);
        eprintln!(
            "round {round}: killed after {} answers ({} requests cut in flight); all {} in \
             the ledger ({rows} rows in all)",
            received.len(),
            cut.load(Ordering::Relaxed),
            received.len(),
        );
        assert!(rows >= all_received);
    }
    assert!(all_cut > 0, "the kills never hit a request in flight");

    // The store still serves after five crashes, and usage counts every answer.
    let server = Server::start(&dir, &["--demo"], &[("CARDCHECK_LOG", "warn")]);
    let req = sign(
        &credential,
        &server.host(),
        &params("Wei Xiaobao", PASS_CARD),
        SignMethod::Tc3HmacSha256,
        "POST",
        now(),
    );
    let (status, body) = send(server.addr, &req, Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Response"]["Result"], "0", "{body}");
    server.stop();
    let usage: Value = serde_json::from_str(&run_ok(cardcheck(&[
        "usage",
        "--format",
        "json",
        "--data-dir",
        dir.to_str().unwrap(),
    ])))
    .unwrap();
    let total = usage["totals"]["total"].as_u64().unwrap() as usize;
    assert!(
        total > all_received,
        "usage total {total} < {} answered + 1",
        all_received
    );
}

/// A script may signal the server as soon as it read the `listening on` line: the
/// handlers are in place by then, so SIGTERM is always the graceful shutdown (exit 0).
#[test]
fn sigterm_right_after_the_listening_line_is_graceful() {
    let (_tmp, dir) = data_dir();
    for _ in 0..5 {
        Server::start(&dir, &["--demo"], &[("CARDCHECK_LOG", "warn")]).stop();
    }
}
