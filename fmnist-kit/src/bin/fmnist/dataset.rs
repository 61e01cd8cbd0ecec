//! `prepare-data`, `data-info`, `tsne`, `bench load`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::json;

use fmnist_kit::data::{self, CachePolicy, ImageSet, CLASS_NAMES};
use fmnist_kit::tsne::{self, TsneConfig, TsneInit, TsneMethod};
use fmnist_kit::util::write_atomic;
use fmnist_kit::viz::ClassScatter;

use crate::common::{data_path, print_json, verdict};

#[derive(clap::Args)]
pub(crate) struct TsneArgs {
    /// data.tar.gz or a folder of idx files [default: $FMNIST_DATA or data/data.tar.gz]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Embed the first N images.
    #[arg(long, default_value_t = 5000)]
    n: usize,
    /// Images to take the first N from: the training set, or training then test set (70,000).
    #[arg(long, value_enum, default_value_t = Pool::Train)]
    pool: Pool,
    /// Seed (used by the random initialisation).
    #[arg(long, default_value_t = 13)]
    seed: u64,
    #[arg(long, default_value_t = 30.0)]
    perplexity: f32,
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    /// Learning rate [default: N, at least 200]
    #[arg(long)]
    learning_rate: Option<f32>,
    /// Barnes-Hut below 20,000 points, FIt-SNE above (auto), or either.
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    method: Method,
    /// Barnes-Hut accuracy/speed trade-off (smaller: more exact).
    #[arg(long, default_value_t = 0.5)]
    theta: f32,
    #[arg(long, value_enum, default_value_t = Init::Pca)]
    init: Init,
    /// Write the scatter plot here.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Write `index,label,x,y` rows here.
    #[arg(long)]
    embedding_out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Pool {
    Train,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Method {
    Auto,
    Fitsne,
    BarnesHut,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Init {
    Pca,
    Spectral,
    Random,
}

pub(crate) fn prepare_data(
    source: &Path,
    out: &Path,
    expect: Option<&str>,
    json: bool,
) -> Result<()> {
    let start = Instant::now();
    let report = data::prepare_data(source, out, expect)
        .with_context(|| format!("building {} from {}", out.display(), source.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["seconds"] = json!(seconds);
        print_json(&v)
    } else {
        println!(
            "wrote {} ({} bytes, {} train + {} test rows) in {seconds:.1} s\nsha256 {}",
            report.out.display(),
            report.bytes,
            report.train_rows,
            report.test_rows,
            report.sha256
        );
        Ok(())
    }
}

pub(crate) fn split_json(set: &ImageSet) -> serde_json::Value {
    let counts = set.class_counts();
    let (mean, std) = set.pixel_mean_std();
    let per_class: serde_json::Map<String, serde_json::Value> = CLASS_NAMES
        .iter()
        .zip(counts)
        .map(|(n, c)| (n.to_string(), json!(c)))
        .collect();
    json!({ "rows": set.len(), "class_counts": per_class, "pixel_mean": mean, "pixel_std": std })
}

pub(crate) fn data_info(data: Option<PathBuf>, no_cache: bool, json_out: bool) -> Result<()> {
    let path = data_path(data);
    let policy = if no_cache {
        CachePolicy::Off
    } else {
        CachePolicy::Default
    };
    let d =
        data::load_with(&path, &policy).with_context(|| format!("loading {}", path.display()))?;
    let split = d.split()?;
    let v = json!({
        "source": d.info.source,
        "load_seconds": d.info.load_seconds,
        "cached": d.info.cached,
        "content_hash": d.info.content_hash,
        "cache_warning": d.info.cache_warning,
        "train": split_json(&d.train),
        "test": split_json(&d.test),
        "split": { "seed": 13, "validation_fraction": 0.2,
                   "train": split.train.len(), "validation": split.validation.len() },
    });
    if json_out {
        return print_json(&v);
    }
    println!("{}  (hash {})", path.display(), d.info.content_hash);
    println!(
        "loaded in {:.3} s{}",
        d.info.load_seconds,
        if d.info.cached {
            " from the cache"
        } else {
            " (parsed; cache written)"
        }
    );
    if let Some(w) = &d.info.cache_warning {
        println!("warning: cache not written: {w}");
    }
    println!("{:<12} {:>8} {:>8}", "class", "train", "test");
    let (tr, te) = (d.train.class_counts(), d.test.class_counts());
    for (i, name) in CLASS_NAMES.iter().enumerate() {
        println!("{:<12} {:>8} {:>8}", name, tr[i], te[i]);
    }
    println!("{:<12} {:>8} {:>8}", "total", d.train.len(), d.test.len());
    let (m1, s1) = d.train.pixel_mean_std();
    let (m2, s2) = d.test.pixel_mean_std();
    println!("pixel mean/std (0..1): train {m1:.4}/{s1:.4}, test {m2:.4}/{s2:.4}");
    println!(
        "80/20 split (seed 13): {} train / {} validation",
        split.train.len(),
        split.validation.len()
    );
    Ok(())
}

pub(crate) fn run_tsne(a: TsneArgs) -> Result<()> {
    let path = data_path(a.data);
    let d = data::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let pool = match a.pool {
        Pool::Train => d.train,
        Pool::All => {
            let mut all = d.train;
            all.images.extend_from_slice(&d.test.images);
            all.labels.extend_from_slice(&d.test.labels);
            all
        }
    };
    if a.n == 0 || a.n > pool.len() {
        bail!(
            "--n {} is outside 1..={} (images available)",
            a.n,
            pool.len()
        );
    }
    let set = pool.first(a.n);
    let config = TsneConfig {
        perplexity: a.perplexity,
        epochs: a.epochs,
        learning_rate: a.learning_rate,
        method: match a.method {
            Method::Auto => TsneMethod::Auto,
            Method::Fitsne => TsneMethod::FitSne,
            Method::BarnesHut => TsneMethod::BarnesHut { theta: a.theta },
        },
        init: match a.init {
            Init::Pca => TsneInit::Pca,
            Init::Spectral => TsneInit::Spectral,
            Init::Random => TsneInit::Random,
        },
        seed: a.seed,
        ..TsneConfig::default()
    };
    let emb = tsne::tsne_images(&set, &config)?;
    if let Some(p) = &a.png {
        ClassScatter::new(
            format!(
                "t-SNE of {} images (10-NN accuracy {:.3})",
                a.n, emb.knn10_accuracy
            ),
            emb.coords.clone(),
            emb.labels.clone(),
        )
        .draw()?
        .save(p)
        .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.embedding_out {
        let mut csv = String::from("index,label,x,y\n");
        for (i, (c, l)) in emb.coords.iter().zip(&emb.labels).enumerate() {
            csv.push_str(&format!("{i},{l},{},{}\n", c[0], c[1]));
        }
        write_atomic(p, csv.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    if a.json {
        print_json(&json!({
            "n": a.n,
            "seconds": emb.seconds,
            "pca_seconds": emb.pca_seconds,
            "neighbors_seconds": emb.neighbors_seconds,
            "fit_seconds": emb.fit_seconds,
            "knn10_accuracy": emb.knn10_accuracy,
            "config": emb.config,
            "threads": tch::get_num_threads(),
        }))
    } else {
        println!(
            "t-SNE of {} images: {:.2} s, 10-NN accuracy {:.4}",
            a.n, emb.seconds, emb.knn10_accuracy
        );
        Ok(())
    }
}

pub(crate) fn bench_load(data: Option<PathBuf>, repeat: usize, json_out: bool) -> Result<()> {
    let path = data_path(data);
    let repeat = repeat.max(1);
    let cache_dir = std::env::temp_dir().join(format!("fmnist-bench-cache-{}", std::process::id()));
    let best = |f: &mut dyn FnMut() -> Result<f64>| -> Result<f64> {
        let mut best = f64::MAX;
        for _ in 0..repeat {
            best = best.min(f()?);
        }
        Ok(best)
    };
    let parse_only =
        best(&mut || Ok(data::load_with(&path, &CachePolicy::Off)?.info.load_seconds))?;
    let first = best(&mut || {
        let _ = std::fs::remove_dir_all(&cache_dir);
        let d = data::load_with(&path, &CachePolicy::Dir(cache_dir.clone()))?;
        if d.info.cached {
            bail!("a fresh cache folder was used, yet the load says it was cached");
        }
        Ok(d.info.load_seconds)
    })?;
    let cached = best(&mut || {
        let d = data::load_with(&path, &CachePolicy::Dir(cache_dir.clone()))?;
        if !d.info.cached {
            bail!("the second load did not use the cache");
        }
        Ok(d.info.load_seconds)
    })?;
    let _ = std::fs::remove_dir_all(&cache_dir);
    if json_out {
        print_json(&json!({
            "data": path, "parse_seconds": parse_only, "first_load_seconds": first,
            "cached_load_seconds": cached, "repeat": repeat,
        }))
    } else {
        println!("load {} (best of {repeat})", path.display());
        println!("  parse, no cache          {parse_only:.3} s");
        println!(
            "  first load (writes cache) {first:.3} s   target <= 0.7 s: {}",
            verdict(first <= 0.7)
        );
        println!(
            "  cached load              {cached:.3} s   target <= 0.05 s: {}",
            verdict(cached <= 0.05)
        );
        Ok(())
    }
}
