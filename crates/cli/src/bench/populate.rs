//! A synthetic registry through the store API, for when `cardcheck registry import`
//! is not available: deterministic for a seed, real BINs with valid check digits, Han
//! names, every card `active` (so every hit answers Result 0). Writes a `name,card`
//! sample spread evenly over the rows, for `cardcheck bench --cards`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use cardcheck_domain::{BinLookup, BinTable, CardNumber, CardStatus, CardholderName};
use cardcheck_store::RegistryRecord;

/// `cardcheck bench populate` options.
#[derive(Debug, clap::Args)]
pub struct PopulateArgs {
    /// The data directory whose registry is filled.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Rows to add.
    #[arg(long)]
    count: u64,
    /// Where to write the `name,card` sample.
    #[arg(long, value_name = "FILE")]
    sample_out: PathBuf,
    /// Rows in the sample.
    #[arg(long, default_value_t = 200_000)]
    sample: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀", "英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "霞", "平", "刚", "桂", "华", "建", "国", "文", "辉", "玉", "兰", "红", "晨",
];
/// Candidate BINs and lengths; those the built-in table accepts are used.
const BINS: &[(&str, usize)] = &[
    ("621700", 19),
    ("622202", 19),
    ("622848", 19),
    ("622588", 16),
    ("436742", 16),
    ("622700", 19),
    ("621226", 19),
];

/// SplitMix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn usable_bins() -> Vec<(&'static str, usize)> {
    let table = BinTable::builtin();
    BINS.iter()
        .copied()
        .filter(|(bin, len)| {
            let payload = format!("{bin}{}", "1".repeat(len - bin.len() - 1));
            let Some(check) = cardcheck_domain::card::luhn_check_digit(&payload) else {
                return false;
            };
            CardNumber::parse(&format!("{payload}{check}"))
                .is_ok_and(|c| matches!(table.lookup(&c), BinLookup::Found(_)))
        })
        .collect()
}

fn row(rng: &mut Rng, bins: &[(&str, usize)]) -> anyhow::Result<(String, String)> {
    let (bin, len) = bins[rng.below(bins.len())];
    let mut payload = String::with_capacity(len);
    payload.push_str(bin);
    while payload.len() < len - 1 {
        payload.push(char::from(b'0' + (rng.below(10) as u8)));
    }
    let check =
        cardcheck_domain::card::luhn_check_digit(&payload).ok_or_else(|| anyhow!("check digit"))?;
    payload.push(check);
    let mut name = SURNAMES[rng.below(SURNAMES.len())].to_owned();
    for _ in 0..1 + rng.below(2) {
        name.push_str(GIVEN[rng.below(GIVEN.len())]);
    }
    Ok((name, payload))
}

pub async fn run(args: PopulateArgs) -> anyhow::Result<ExitCode> {
    let bins = usable_bins();
    if bins.is_empty() {
        bail!("none of the candidate BINs is in the built-in BIN table");
    }
    let backend = cardcheck_store::open_sqlite(&args.data_dir)
        .with_context(|| format!("cannot open {}", args.data_dir.display()))?;
    let mut sample = std::io::BufWriter::new(
        std::fs::File::create(&args.sample_out)
            .with_context(|| format!("cannot create {}", args.sample_out.display()))?,
    );
    writeln!(sample, "name,card")?;
    let every = (args.count / args.sample.max(1)).max(1);
    let active = CardStatus::from_word("active").ok_or_else(|| anyhow!("status word"))?;
    let mut rng = Rng(args.seed);
    let started = Instant::now();
    let mut done = 0u64;
    const BATCH: u64 = 100_000;
    while done < args.count {
        let n = BATCH.min(args.count - done);
        let mut records = Vec::with_capacity(n as usize);
        for i in done..done + n {
            let (name, card) = row(&mut rng, &bins)?;
            if i % every == 0 {
                writeln!(sample, "{name},{card}")?;
            }
            records.push(RegistryRecord {
                card: CardNumber::parse(&card).map_err(|e| anyhow!("generated card: {e}"))?,
                name: CardholderName::parse(&name).map_err(|e| anyhow!("generated name: {e}"))?,
                status: active,
            });
        }
        backend.registry.upsert(&records).await?;
        done += n;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "populate: {done}/{} rows, {:.0} rows/s",
            args.count,
            done as f64 / secs.max(1e-9)
        );
    }
    sample.flush()?;
    backend.close();
    Ok(ExitCode::SUCCESS)
}
