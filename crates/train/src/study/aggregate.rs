//! From run summaries to table cells: the runs of one (experiment, method, T) pooled over the
//! folds of a seed (each fold weighted by its test samples, so a cross-validated accuracy is
//! "correct over all recordings, each tested once"), then mean ± standard deviation over seeds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RunRecord;

/// Mean and sample standard deviation over `n` values (`std` = 0 for one value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

impl Stat {
    /// Of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stat {
            mean,
            std: var.sqrt(),
            n,
        })
    }
}

/// Scalar metrics of one run, by name.
pub fn scalars(r: &RunRecord) -> BTreeMap<&'static str, f64> {
    let a = &r.test;
    let mut m = BTreeMap::new();
    m.insert("top1", a.report.accuracy);
    m.insert("top1_last", r.test_last.accuracy);
    m.insert("top5", a.top5);
    m.insert("aurc_x1000", a.aurc_x1000);
    m.insert("eaurc_x1000", a.eaurc_x1000);
    if let Some(v) = a.report.per_timestep.first() {
        m.insert("t1_own", *v);
    }
    if let Some(e) = &a.energy {
        m.insert("energy_uj", e.energy_uj_per_sample);
        m.insert("sops", e.sops_per_sample);
        if !e.firing_rates.is_empty() {
            let rates: f64 = e.firing_rates.iter().map(|(_, r)| r).sum();
            m.insert("firing_rate", rates / e.firing_rates.len() as f64);
        }
    }
    m
}

/// Vector metrics of one run (per timestep, per class, per shorter T), by name.
pub fn vectors(r: &RunRecord) -> BTreeMap<&'static str, Vec<f64>> {
    let a = &r.test;
    let mut m = BTreeMap::new();
    m.insert("per_timestep", a.report.per_timestep.clone());
    m.insert("running_mean", a.report.running_mean.clone());
    m.insert("per_class_t1", a.per_class_t1.clone());
    m.insert("truncate", r.truncate.clone());
    if let Some(v) = &r.rebin {
        m.insert("rebin", v.clone());
    }
    m.insert(
        "anytime_accuracy",
        r.anytime.iter().map(|p| p.accuracy).collect(),
    );
    m.insert(
        "anytime_timesteps",
        r.anytime.iter().map(|p| p.mean_timesteps).collect(),
    );
    m
}

/// The runs of one (experiment, method, T).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Experiment.
    pub experiment: String,
    /// Method.
    pub method: String,
    /// T.
    pub timesteps: usize,
    /// Seeds with every fold present (only those are counted).
    pub seeds: Vec<u64>,
    /// Folds per seed (1 without cross-validation).
    pub folds: usize,
    /// Runs found, including those of incomplete seeds.
    pub runs: usize,
    /// Scalars, mean ± std over complete seeds.
    pub scalars: BTreeMap<String, Stat>,
    /// Vectors, element-wise mean ± std over complete seeds.
    pub vectors: BTreeMap<String, Vec<Stat>>,
    /// Total wall seconds of its runs.
    pub wall_seconds: f64,
    /// Test samples per seed (over all folds).
    pub test_samples: usize,
}

/// Weighted mean of equally long vectors (weights = test samples).
fn pool(values: &[(f64, Vec<f64>)]) -> Vec<f64> {
    let len = values.iter().map(|(_, v)| v.len()).min().unwrap_or(0);
    let total: f64 = values.iter().map(|(w, _)| w).sum();
    (0..len)
        .map(|i| values.iter().map(|(w, v)| w * v[i]).sum::<f64>() / total.max(1e-12))
        .collect()
}

/// Groups `records` into cells, in the order (experiment, method, T) first appear. A seed of
/// a cross-validated experiment counts only once all its folds are present.
pub fn cells(records: &[RunRecord]) -> Vec<Cell> {
    let mut order: Vec<(String, String, usize)> = Vec::new();
    let mut groups: BTreeMap<(String, String, usize), Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        let k = (r.experiment.clone(), r.method.clone(), r.timesteps);
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(r);
    }
    order
        .into_iter()
        .map(|k| {
            let runs = &groups[&k];
            let folds = runs
                .iter()
                .map(|r| r.fold.map_or(1, |f| f.1))
                .max()
                .unwrap_or(1);
            let mut by_seed: BTreeMap<u64, Vec<&RunRecord>> = BTreeMap::new();
            for r in runs {
                by_seed.entry(r.seed).or_default().push(r);
            }
            let complete: Vec<(u64, Vec<&RunRecord>)> = by_seed
                .into_iter()
                .filter(|(_, rs)| {
                    let mut f: Vec<usize> = rs.iter().map(|r| r.fold.map_or(0, |f| f.0)).collect();
                    f.sort_unstable();
                    f.dedup();
                    f.len() == folds
                })
                .collect();
            let mut per_scalar: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut per_vector: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
            let mut test_samples = 0;
            for (_, rs) in &complete {
                test_samples = rs.iter().map(|r| r.samples[2]).sum();
                let mut sc: BTreeMap<&str, Vec<(f64, Vec<f64>)>> = BTreeMap::new();
                for r in rs {
                    let w = r.samples[2] as f64;
                    for (name, v) in scalars(r) {
                        sc.entry(name).or_default().push((w, vec![v]));
                    }
                }
                for (name, vals) in sc {
                    if vals.len() == rs.len() {
                        per_scalar
                            .entry(name.into())
                            .or_default()
                            .push(pool(&vals)[0]);
                    }
                }
                let mut vc: BTreeMap<&str, Vec<(f64, Vec<f64>)>> = BTreeMap::new();
                for r in rs {
                    let w = r.samples[2] as f64;
                    for (name, v) in vectors(r) {
                        vc.entry(name).or_default().push((w, v));
                    }
                }
                for (name, vals) in vc {
                    if vals.len() == rs.len() {
                        per_vector.entry(name.into()).or_default().push(pool(&vals));
                    }
                }
            }
            let scalars = per_scalar
                .into_iter()
                .filter_map(|(k, v)| Stat::of(&v).map(|s| (k, s)))
                .collect();
            let vectors = per_vector
                .into_iter()
                .map(|(k, seeds)| {
                    let len = seeds.iter().map(Vec::len).min().unwrap_or(0);
                    let stats = (0..len)
                        .filter_map(|i| Stat::of(&seeds.iter().map(|v| v[i]).collect::<Vec<_>>()))
                        .collect();
                    (k, stats)
                })
                .collect();
            Cell {
                experiment: k.0.clone(),
                method: k.1.clone(),
                timesteps: k.2,
                seeds: complete.iter().map(|(s, _)| *s).collect(),
                folds,
                runs: runs.len(),
                scalars,
                vectors,
                wall_seconds: runs.iter().map(|r| r.wall_seconds).sum(),
                test_samples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        let s = Stat::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (2.0, 1.0, 3));
        assert_eq!(Stat::of(&[4.0]).unwrap().std, 0.0);
        assert!(Stat::of(&[]).is_none());
        // Pooling weights by test samples: 90 % of 10 and 50 % of 30 → 60 % of 40.
        assert_eq!(pool(&[(10.0, vec![0.9]), (30.0, vec![0.5])]), vec![0.6]);
    }
}
