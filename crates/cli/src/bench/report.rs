//! The runner's summary: every scenario's figures with its ratio to the floor at the
//! same concurrency, the issue-10 targets judged, and the JSON results file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// `cardcheck bench report` options.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// JSON lines: `cardcheck bench --json` outputs, `cardcheck bench startup --json`
    /// outputs and `{"meta": {…}}` objects.
    #[arg(value_name = "FILE.jsonl")]
    input: PathBuf,
    /// Directory for the timestamped results file.
    #[arg(long, value_name = "DIR")]
    results_dir: Option<PathBuf>,
}

/// Label of the floor runs.
const FLOOR: &str = "floor";
/// Label of the peer (WireMock) runs.
const PEER: &str = "wiremock";
const REG_SMALL: &str = "registry-10k";
const REG_LARGE: &str = "registry-10M";
/// 150 MB in MiB.
const RSS_LIMIT_MIB: f64 = 150.0 * 1e6 / 1_048_576.0;

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_f64()
}

fn find<'a>(runs: &'a [Value], label: &str, conns: u64) -> Option<&'a Value> {
    runs.iter().find(|r| {
        r.get("label").and_then(Value::as_str) == Some(label)
            && r.get("concurrency").and_then(Value::as_u64) == Some(conns)
    })
}

/// Every run of one scenario at one connection count, in the order they ran.
fn runs_of<'a>(runs: &'a [Value], label: &str, conns: u64) -> Vec<&'a Value> {
    runs.iter()
        .filter(|r| {
            r.get("label").and_then(Value::as_str) == Some(label)
                && r.get("concurrency").and_then(Value::as_u64) == Some(conns)
        })
        .collect()
}

/// The middle value (of an even count, the lower middle), NaN-free input assumed.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// The run with the median throughput among a scenario's repeated runs: the one the
/// targets judge (the runner repeats the registry runs, which the machine's noise moves
/// most).
fn median_run<'a>(runs: &'a [Value], label: &str, conns: u64) -> Option<&'a Value> {
    let mut of = runs_of(runs, label, conns);
    of.sort_by(|a, b| {
        let t = |r: &Value| num(r, &["throughput_rps"]).unwrap_or(0.0);
        t(a).total_cmp(&t(b))
    });
    of.get(of.len().saturating_sub(1) / 2).copied()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

fn judge(runs: &[Value], startup: Option<&Value>) -> Vec<Target> {
    let mut out = Vec::new();
    let mut conns: Vec<u64> = runs
        .iter()
        .filter_map(|r| r.get("concurrency").and_then(Value::as_u64))
        .collect();
    conns.sort_unstable();
    conns.dedup();
    for &c in &conns {
        let floor = find(runs, FLOOR, c);
        let large = median_run(runs, REG_LARGE, c);
        let peer = find(runs, PEER, c);
        let tp = |r: Option<&Value>| r.and_then(|r| num(r, &["throughput_rps"]));
        let p99 = |r: Option<&Value>| r.and_then(|r| num(r, &["latency_ms", "p99"]));
        let ratio = tp(large).zip(tp(floor)).map(|(a, b)| a / b);
        out.push(Target {
            what: format!("c={c}: registry 10M throughput >= 40% of the floor"),
            measured: ratio.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
            met: ratio.map(|r| r >= 0.40),
        });
        let limit = if c >= 64 { 5.0 } else { 1.0 };
        if c == 4 || c == 64 {
            out.push(Target {
                what: format!("c={c}: registry 10M p99 <= {limit} ms"),
                measured: fmt(p99(large), 3) + " ms",
                met: p99(large).map(|p| p <= limit),
            });
        }
        // Each 10M run against the 10k run just before it (run.sh runs them in pairs).
        let pairs: Vec<f64> = runs_of(runs, REG_SMALL, c)
            .into_iter()
            .zip(runs_of(runs, REG_LARGE, c))
            .filter_map(|(small, large)| tp(Some(large)).zip(tp(Some(small))))
            .map(|(a, b)| a / b)
            .collect();
        let listed: Vec<String> = pairs.iter().map(|r| format!("{:.1}", r * 100.0)).collect();
        let scale = median(pairs.clone());
        out.push(Target {
            what: format!("c={c}: registry 10M throughput >= 80% of 10k"),
            measured: scale.map_or("-".into(), |r| {
                if pairs.len() > 1 {
                    format!("{:.1}% (median of pairs {})", r * 100.0, listed.join(", "))
                } else {
                    format!("{:.1}%", r * 100.0)
                }
            }),
            met: scale.map(|r| r >= 0.80),
        });
        let vs_tp = tp(large).zip(tp(peer)).map(|(a, b)| a / b);
        let vs_p99 = p99(large).zip(p99(peer)).map(|(a, b)| a / b);
        out.push(Target {
            what: format!("c={c}: ahead of WireMock (throughput ratio > 1, p99 ratio < 1)"),
            measured: format!("throughput x{}, p99 x{}", fmt(vs_tp, 2), fmt(vs_p99, 2)),
            met: vs_tp.zip(vs_p99).map(|(t, p)| t > 1.0 && p < 1.0),
        });
    }
    let rss = runs
        .iter()
        .filter(|r| r.get("label").and_then(Value::as_str) == Some(REG_LARGE))
        .filter_map(|r| {
            let a = num(r, &["server", "rss_max_mib"]);
            let b = num(r, &["server", "hwm_mib"]);
            match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        })
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    out.push(Target {
        what: "server RSS under load, 10M registry <= 150 MB".into(),
        measured: rss.map_or("-".into(), |m| {
            format!("{:.1} MB (peak)", m * 1_048_576.0 / 1e6)
        }),
        met: rss.map(|m| m <= RSS_LIMIT_MIB),
    });
    let median = startup.and_then(|s| num(s, &["median_ms"]));
    let max = startup.and_then(|s| num(s, &["max_ms"]));
    out.push(Target {
        what: "start-up to ready on the 10M data dir <= 300 ms (median)".into(),
        measured: format!("median {} ms, max {} ms", fmt(median, 1), fmt(max, 1)),
        met: median.map(|m| m <= 300.0),
    });
    out
}

/// The table and the targets as text.
fn render(runs: &[Value], targets: &[Target]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:>5} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7}",
        "scenario",
        "conns",
        "req/s",
        "xfloor",
        "p50 ms",
        "p90",
        "p99",
        "p99.9",
        "errors",
        "srv us/r",
        "gen us/r",
        "RSS MB"
    );
    for r in runs {
        let label = r.get("label").and_then(Value::as_str).unwrap_or("?");
        let c = r.get("concurrency").and_then(Value::as_u64).unwrap_or(0);
        let tp = num(r, &["throughput_rps"]);
        let floor_tp = find(runs, FLOOR, c).and_then(|f| num(f, &["throughput_rps"]));
        let ratio = tp.zip(floor_tp).map(|(a, b)| a / b);
        let rss = num(r, &["server", "rss_max_mib"]).map(|m| m * 1_048_576.0 / 1e6);
        let _ = writeln!(
            s,
            "{:<22} {:>5} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7}{}",
            label,
            c,
            fmt(tp, 0),
            fmt(ratio, 3),
            fmt(num(r, &["latency_ms", "p50"]), 3),
            fmt(num(r, &["latency_ms", "p90"]), 3),
            fmt(num(r, &["latency_ms", "p99"]), 3),
            fmt(num(r, &["latency_ms", "p999"]), 3),
            r.get("error_count").and_then(Value::as_u64).unwrap_or(0),
            fmt(num(r, &["server", "cpu_us_per_req"]), 1),
            fmt(num(r, &["generator_cpu_us_per_req"]), 1),
            fmt(rss, 1),
            if r.get("pool_exhausted").and_then(Value::as_bool) == Some(true) {
                "  (pool ran out: short window)"
            } else {
                ""
            }
        );
    }
    let mut results_lines = String::new();
    for r in runs {
        let label = r.get("label").and_then(Value::as_str).unwrap_or("?");
        let c = r.get("concurrency").and_then(Value::as_u64).unwrap_or(0);
        let results = r.get("results").cloned().unwrap_or(Value::Null);
        let errors = r.get("errors").cloned().unwrap_or(Value::Null);
        let _ = writeln!(
            results_lines,
            "  {label} c={c}: results {results} errors {errors}"
        );
    }
    let _ = writeln!(s, "\nanswers by Result / error:\n{results_lines}");
    let _ = writeln!(s, "targets (issue 10):");
    for t in targets {
        let verdict = match t.met {
            Some(true) => "MET   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        let _ = writeln!(s, "  [{verdict}] {:<62} {}", t.what, t.measured);
    }
    s
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let mut runs = Vec::new();
    let mut startup = None;
    let mut meta = serde_json::Map::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}: not JSON", args.input.display(), i + 1))?;
        if v.get("throughput_rps").is_some() {
            runs.push(v);
        } else if v.get("median_ms").is_some() {
            startup = Some(v);
        } else if let Some(Value::Object(m)) = v.get("meta") {
            meta.extend(m.clone());
        }
    }
    if runs.is_empty() {
        bail!("{}: no bench runs", args.input.display());
    }
    let targets = judge(&runs, startup.as_ref());
    print!("{}", render(&runs, &targets));
    if let Some(s) = &startup {
        println!(
            "start-up to ready ({}): trials {} ms",
            s.get("data_dir").and_then(Value::as_str).unwrap_or("?"),
            s.get("trials_ms").cloned().unwrap_or(Value::Null)
        );
    }
    if let Some(dir) = &args.results_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let path = dir.join(format!("{stamp}.json"));
        let doc = json!({
            "generated_at": chrono::Utc::now().to_rfc3339(),
            "meta": meta,
            "runs": runs.iter().map(|r| {
                let mut r = r.clone();
                let c = r.get("concurrency").and_then(Value::as_u64).unwrap_or(0);
                let floor = find(&runs, FLOOR, c).and_then(|f| num(f, &["throughput_rps"]));
                if let (Some(f), Some(t), Value::Object(m)) = (floor, num(&r, &["throughput_rps"]), &mut r) {
                    m.insert("ratio_to_floor".into(), json!(t / f));
                }
                r
            }).collect::<Vec<_>>(),
            "startup": startup,
            "targets": targets.iter().map(|t| json!({
                "target": t.what, "measured": t.measured, "met": t.met,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("results: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, conns: u64, rps: f64) -> Value {
        json!({"label": label, "concurrency": conns, "throughput_rps": rps,
               "latency_ms": {"p99": 1.0}})
    }

    fn target<'a>(targets: &'a [Target], what: &str) -> &'a Target {
        targets
            .iter()
            .find(|t| t.what == what)
            .unwrap_or_else(|| panic!("no target {what}"))
    }

    #[test]
    fn the_size_ratio_pairs_each_10m_run_with_the_10k_run_before_it() {
        let runs = vec![
            run(FLOOR, 64, 100_000.0),
            run(REG_SMALL, 64, 40_000.0),
            run(REG_LARGE, 64, 30_000.0), // 75%
            run(REG_SMALL, 64, 30_000.0),
            run(REG_LARGE, 64, 27_000.0), // 90%
            run(REG_SMALL, 64, 35_000.0),
            run(REG_LARGE, 64, 29_750.0), // 85%
        ];
        let targets = judge(&runs, None);
        let scale = target(&targets, "c=64: registry 10M throughput >= 80% of 10k");
        assert_eq!(scale.met, Some(true));
        assert_eq!(scale.measured, "85.0% (median of pairs 75.0, 90.0, 85.0)");
        // The floor ratio is judged on the 10M run of median throughput (29,750).
        let floor = target(
            &targets,
            "c=64: registry 10M throughput >= 40% of the floor",
        );
        assert_eq!(floor.measured, "29.8%");
        assert_eq!(floor.met, Some(false));
    }

    #[test]
    fn one_pair_is_reported_without_a_median() {
        let runs = vec![run(REG_SMALL, 4, 10_000.0), run(REG_LARGE, 4, 7_000.0)];
        let targets = judge(&runs, None);
        let scale = target(&targets, "c=4: registry 10M throughput >= 80% of 10k");
        assert_eq!(scale.measured, "70.0%");
        assert_eq!(scale.met, Some(false));
    }
}
