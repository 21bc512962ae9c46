//! The load loop: raw HTTP/1.1 keep-alive connections on single-threaded tokio
//! runtimes, one request in flight per connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::LoadArgs;
use super::procstat;
use super::requests::{RequestBuilder, parse_endpoint};
use super::stats::{Percentiles, Report, ServerUsage, Tally};

/// Largest response accepted.
const MAX_RESPONSE: usize = 4 << 20;
/// How long after the window in-flight requests may take before the run is cut.
const GRACE: Duration = Duration::from_secs(10);
/// Most pre-signed requests built for one run (about 0.5 KB each).
const MAX_POOL: u64 = 4_000_000;
/// How often the coordinator samples the server's RSS and checks for the end.
const POLL: Duration = Duration::from_millis(100);
/// Fewest pre-signed requests built after a probe (signing is cheap next to a cut
/// window).
const MIN_POOL: u64 = 100_000;
/// Probe window used to size the pool.
const PROBE: Duration = Duration::from_millis(800);

/// One keep-alive connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` belonging to the previous response (dropped on the next call).
    consumed: usize,
    filled: usize,
}

/// A parsed answer; ranges index the connection's buffer until the next round trip.
struct Answer {
    status: u16,
    kind: &'static str,
    value: std::ops::Range<usize>,
    keep_alive: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        if line[..colon].eq_ignore_ascii_case(name) {
            Some(line[colon + 1..].trim_ascii())
        } else {
            None
        }
    })
}

/// The string value of the first `"key": "…"` in `body`, as a range.
fn json_string(body: &[u8], key: &[u8]) -> Option<std::ops::Range<usize>> {
    let at = find(body, key)? + key.len();
    let mut i = at;
    while i < body.len() && (body[i] == b' ' || body[i] == b':' || body[i] == b'\t') {
        i += 1;
    }
    if body.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(start..start + len)
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; 16 * 1024],
            consumed: 0,
            filled: 0,
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= MAX_RESPONSE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response too large",
                ));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += n;
        Ok(())
    }

    async fn roundtrip(&mut self, request: &[u8]) -> io::Result<Answer> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        self.stream.write_all(request).await?;
        let header_end = loop {
            if let Some(p) = find(&self.buf[..self.filled], b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let head = &self.buf[..header_end];
        let status = head
            .get(9..12)
            .filter(|_| head.starts_with(b"HTTP/1."))
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("not an HTTP/1.x response"))?;
        let mut keep_alive =
            !header_value(head, b"connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let length = header_value(head, b"content-length")
            .map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or_else(|| bad("bad Content-Length"))
            })
            .transpose()?;
        let chunked = header_value(head, b"transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
        let body_end = if let Some(len) = length {
            if len > MAX_RESPONSE {
                return Err(bad("response too large"));
            }
            while self.filled < header_end + len {
                self.fill().await?;
            }
            header_end + len
        } else if chunked {
            // The body is scanned raw: enough to find the Result in a small JSON.
            loop {
                let body = &self.buf[header_end..self.filled];
                if body.starts_with(b"0\r\n\r\n") {
                    break header_end + 5;
                }
                if let Some(p) = find(body, b"\r\n0\r\n\r\n") {
                    break header_end + p + 7;
                }
                self.fill().await?;
            }
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            header_end
        } else {
            keep_alive = false;
            loop {
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break self.filled,
                    Err(e) => return Err(e),
                }
            }
        };
        self.consumed = body_end;
        let body = &self.buf[header_end..body_end];
        let (kind, value) = if status != 200 {
            ("HTTP", 9..12)
        } else if let Some(r) = json_string(body, b"\"Result\"") {
            ("Result", header_end + r.start..header_end + r.end)
        } else if let Some(r) = json_string(body, b"\"Code\"") {
            ("Error", header_end + r.start..header_end + r.end)
        } else {
            ("Unparsed", 0..0)
        };
        Ok(Answer {
            status,
            kind,
            value,
            keep_alive,
        })
    }
}

/// What all connections of a run share.
struct Shared {
    addr: SocketAddr,
    pool: Arc<Vec<Box<[u8]>>>,
    cycle: bool,
    next: AtomicUsize,
    exhausted: AtomicBool,
    /// Per-connection send interval (fixed rate) and the rate.
    rate: Option<f64>,
    concurrency: u32,
    warmup: Duration,
    duration: Duration,
    /// Set by the coordinator once every connection is open.
    start: OnceLock<Instant>,
}

#[derive(Default)]
struct ConnStats {
    latencies: Vec<u32>,
    service: Vec<u32>,
    tally: Tally,
    last_done: Option<Instant>,
}

fn nanos(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

async fn connection_loop(shared: Arc<Shared>, index: u32, first: Option<Conn>) -> ConnStats {
    let mut stats = ConnStats::default();
    let Some(&start) = shared.start.get() else {
        return stats;
    };
    let warm_end = start + shared.warmup;
    let end = warm_end + shared.duration;
    let interval = shared
        .rate
        .map(|r| Duration::from_secs_f64(f64::from(shared.concurrency) / r));
    let phase = shared
        .rate
        .map(|r| Duration::from_secs_f64(f64::from(index) / r));
    let mut conn = first;
    let mut sent: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let scheduled = match (interval, phase) {
            (Some(interval), Some(phase)) => {
                let at = start + phase + interval.saturating_mul(sent as u32);
                sent += 1;
                if at >= end {
                    break;
                }
                if at > now {
                    tokio::time::sleep_until(at.into()).await;
                }
                at
            }
            _ => now,
        };
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let request = if shared.cycle {
            &shared.pool[i % shared.pool.len()]
        } else {
            match shared.pool.get(i) {
                Some(r) => r,
                None => {
                    shared.exhausted.store(true, Ordering::Relaxed);
                    break;
                }
            }
        };
        if conn.is_none() {
            match Conn::connect(shared.addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    if Instant::now() >= warm_end {
                        stats.tally.add("IO", format!("{:?}", e.kind()).as_bytes());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent_at = Instant::now();
        let outcome = c.roundtrip(request).await;
        let done = Instant::now();
        let in_window = done >= warm_end && done <= end;
        match outcome {
            Ok(answer) => {
                if in_window {
                    stats.latencies.push(nanos(done - scheduled));
                    if interval.is_some() {
                        stats.service.push(nanos(done - sent_at));
                    }
                    let value = &c.buf[answer.value.clone()];
                    debug_assert!(answer.status != 200 || answer.kind != "HTTP");
                    stats.tally.add(answer.kind, value);
                    stats.last_done = Some(done);
                }
                if !answer.keep_alive {
                    conn = None;
                }
            }
            Err(e) => {
                conn = None;
                if in_window {
                    stats.tally.add("IO", format!("{:?}", e.kind()).as_bytes());
                    stats.last_done = Some(done);
                }
            }
        }
    }
    stats
}

/// One phase's outcome.
struct PhaseResult {
    stats: ConnStats,
    measured: Duration,
    exhausted: bool,
    generator_cpu_s: Option<f64>,
    server: Option<ServerUsage>,
    server_cpu_s: Option<f64>,
}

/// Runs `warmup + duration` over `concurrency` connections on `threads` threads.
fn run_phase(
    args: &LoadArgs,
    addr: SocketAddr,
    pool: Arc<Vec<Box<[u8]>>>,
    cycle: bool,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<PhaseResult> {
    let threads = args.threads.min(args.concurrency).max(1);
    let shared = Arc::new(Shared {
        addr,
        pool,
        cycle,
        next: AtomicUsize::new(0),
        exhausted: AtomicBool::new(false),
        rate: args.rate,
        concurrency: args.concurrency,
        warmup,
        duration,
        start: OnceLock::new(),
    });
    let finished = Arc::new(AtomicUsize::new(0));
    let connected = Arc::new(Barrier::new(threads as usize + 1));
    let go = Arc::new(Barrier::new(threads as usize + 1));
    let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let mut handles = Vec::new();
    for t in 0..threads {
        let shared = shared.clone();
        let connected = connected.clone();
        let go = go.clone();
        let failure = failure.clone();
        let finished = finished.clone();
        let mine: Vec<u32> = (0..args.concurrency).filter(|c| c % threads == t).collect();
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || -> ConnStats {
                // Counted on every way out, so the coordinator stops waiting.
                struct Finished(Arc<AtomicUsize>);
                impl Drop for Finished {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::Release);
                    }
                }
                let _finished = Finished(finished);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("cannot start a runtime: {e}"));
                        connected.wait();
                        go.wait();
                        return ConnStats::default();
                    }
                };
                runtime.block_on(async move {
                    let mut conns = Vec::new();
                    for _ in &mine {
                        match Conn::connect(shared.addr).await {
                            Ok(c) => conns.push(Some(c)),
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(format!("cannot connect to {}: {e}", shared.addr));
                                break;
                            }
                        }
                    }
                    connected.wait();
                    go.wait();
                    let Some(&start) = shared.start.get() else {
                        return ConnStats::default();
                    };
                    let mut tasks = tokio::task::JoinSet::new();
                    for (index, conn) in mine.into_iter().zip(conns) {
                        tasks.spawn(connection_loop(shared.clone(), index, conn));
                    }
                    let deadline = start + shared.warmup + shared.duration + GRACE;
                    let mut merged = ConnStats::default();
                    loop {
                        let next =
                            tokio::time::timeout_at(deadline.into(), tasks.join_next()).await;
                        match next {
                            Ok(Some(Ok(s))) => {
                                merged.latencies.extend(s.latencies);
                                merged.service.extend(s.service);
                                merged.tally.merge(s.tally);
                                merged.last_done = merged.last_done.max(s.last_done);
                            }
                            Ok(Some(Err(_))) => {}
                            Ok(None) => break,
                            Err(_) => {
                                tasks.abort_all();
                                merged.tally.add("IO", b"TimedOut");
                                break;
                            }
                        }
                    }
                    merged
                })
            })
            .context("cannot start a generator thread")?;
        handles.push(handle);
    }
    connected.wait();
    if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        // Let the threads go (without a start time they return at once), then fail.
        go.wait();
        for h in handles {
            let _ = h.join();
        }
        bail!(e);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let _ = shared.start.set(start);
    go.wait();

    // Sample CPU at the window's edges and RSS inside it.
    let server_pid = args.server_pid.map(|p| p.to_string());
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let all_done = || finished.load(Ordering::Acquire) >= threads as usize;
    while Instant::now() < warm_end && !all_done() {
        std::thread::sleep((warm_end.saturating_duration_since(Instant::now())).min(POLL));
    }
    let gen_cpu0 = procstat::cpu_seconds("self");
    let srv_cpu0 = server_pid.as_deref().and_then(procstat::cpu_seconds);
    let mut rss_max: Option<f64> = None;
    loop {
        if let Some(pid) = server_pid.as_deref()
            && let Some(rss) = procstat::vm_mib(pid, "VmRSS")
        {
            rss_max = Some(rss_max.map_or(rss, |m: f64| m.max(rss)));
        }
        let now = Instant::now();
        if now >= end || all_done() {
            break;
        }
        std::thread::sleep((end - now).min(POLL));
    }
    let gen_cpu1 = procstat::cpu_seconds("self");
    let srv_cpu1 = server_pid.as_deref().and_then(procstat::cpu_seconds);
    let hwm = server_pid
        .as_deref()
        .and_then(|pid| procstat::vm_mib(pid, "VmHWM"));

    let mut stats = ConnStats::default();
    for h in handles {
        let s = h
            .join()
            .map_err(|_| anyhow!("a generator thread panicked"))?;
        stats.latencies.extend(s.latencies);
        stats.service.extend(s.service);
        stats.tally.merge(s.tally);
        stats.last_done = stats.last_done.max(s.last_done);
    }
    let exhausted = shared.exhausted.load(Ordering::Relaxed);
    let measured = if exhausted {
        stats
            .last_done
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(warm_end))
    } else {
        duration
    };
    let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a).max(0.0));
    Ok(PhaseResult {
        stats,
        measured,
        exhausted,
        generator_cpu_s: delta(gen_cpu0, gen_cpu1),
        server_cpu_s: delta(srv_cpu0, srv_cpu1),
        server: args.server_pid.map(|pid| ServerUsage {
            pid,
            rss_max_mib: rss_max,
            hwm_mib: hwm,
            ..ServerUsage::default()
        }),
    })
}

/// A whole `cardcheck bench` load run: build (and size) the pool, warm up, measure.
pub fn run_load(args: &LoadArgs) -> anyhow::Result<Report> {
    let target = parse_endpoint(&args.endpoint)?;
    let builder = RequestBuilder::new(args, &target)?;
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let total = (warmup + duration).as_secs_f64();

    let built = Instant::now();
    let (pool, cycle) = if args.fixed {
        (vec![builder.build_one(0)?], true)
    } else if let Some(n) = args.requests {
        (builder.build(0..n as u64)?, false)
    } else {
        // Probe: a small pool run briefly at the asked concurrency gives the rate.
        let probe_n: u64 = if args.fresh_key { 400 } else { 20_000 };
        let probe_n = probe_n.min(builder.distinct());
        let probe_pool = Arc::new(builder.build(0..probe_n)?);
        let probe = run_phase(args, target.addr, probe_pool, false, Duration::ZERO, PROBE)?;
        let done = probe.stats.latencies.len() as f64;
        let secs = probe.measured.as_secs_f64().max(0.05);
        let rate = args.rate.unwrap_or(done / secs).max(10.0);
        // A cold server answers the probe slower than it will later: leave room.
        let need = (rate * total * if args.rate.is_some() { 1.1 } else { 2.5 }) as u64
            + 4 * u64::from(args.concurrency)
            + 1000;
        // And never fewer than MIN_POOL (cheap: about 0.3 s of signing, 50 MB).
        let floor = if args.fresh_key { 0 } else { MIN_POOL };
        let need = need
            .max(floor)
            .min(MAX_POOL)
            .min(builder.distinct() - probe_n);
        (builder.build(probe_n..probe_n + need)?, false)
    };
    let pool_size = pool.len();
    let pool_build_s = built.elapsed().as_secs_f64();

    let phase = run_phase(args, target.addr, Arc::new(pool), cycle, warmup, duration)?;
    let mut stats = phase.stats;
    let requests = stats.latencies.len() as u64;
    if requests == 0 && phase.exhausted {
        bail!("the pre-signed requests ran out during the warm-up; pass --requests N");
    }
    let secs = phase.measured.as_secs_f64();
    let (results, errors) = stats.tally.split();
    let error_count = errors.values().sum();
    let per_req = |cpu: Option<f64>| {
        cpu.filter(|_| requests > 0)
            .map(|c| c * 1e6 / requests as f64)
    };
    let server = phase.server.map(|mut s| {
        s.cpu_us_per_req = per_req(phase.server_cpu_s);
        s.cpu_cores = phase.server_cpu_s.map(|c| c / secs.max(1e-9));
        s
    });
    Ok(Report {
        label: args.label.clone(),
        endpoint: args.endpoint.clone(),
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        concurrency: args.concurrency,
        target_rate: args.rate,
        sign_method: format!("{:?}", args.sign_method),
        http_method: format!("{:?}", args.http_method).to_uppercase(),
        encrypt: args.encrypt.map(|e| format!("{e:?}")),
        fresh_key: args.fresh_key,
        fixed: args.fixed,
        duration_s: secs,
        requests,
        throughput_rps: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        latency_ms: Percentiles::of(&mut stats.latencies),
        service_ms: args.rate.map(|_| Percentiles::of(&mut stats.service)),
        results,
        errors,
        error_count,
        pool_size,
        pool_exhausted: phase.exhausted,
        pool_build_s,
        generator_cpu_us_per_req: per_req(phase.generator_cpu_s),
        server,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_values_and_headers() {
        let body = br#"{"Response":{"Result":"-4","Description":"x","RequestId":"r"}}"#;
        let r = json_string(body, b"\"Result\"").unwrap();
        assert_eq!(&body[r], b"-4");
        let body = br#"{"Response": {"Error": {"Code": "AuthFailure.SignatureFailure"}}}"#;
        assert!(json_string(body, b"\"Result\"").is_none());
        let r = json_string(body, b"\"Code\"").unwrap();
        assert_eq!(&body[r], b"AuthFailure.SignatureFailure");
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nconnection: Close\r\n\r\n";
        assert_eq!(header_value(head, b"content-length"), Some(&b"12"[..]));
        assert_eq!(header_value(head, b"Connection"), Some(&b"Close"[..]));
        assert_eq!(header_value(head, b"transfer-encoding"), None);
    }
}
