//! Exact t-SNE (van der Maaten & Hinton 2008) for a few hundred points: Gaussian affinities with
//! a per-point bandwidth found by bisection to the target perplexity, Student-t similarities in
//! 2-D, gradient descent with momentum, early exaggeration and gains. O(n²) per iteration.

#![allow(
    clippy::needless_range_loop,
    reason = "index arithmetic over n×n matrices"
)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum()
}

/// Symmetric joint probabilities `P` (row-major `n×n`) for `perplexity`.
pub fn joint_probabilities(x: &[Vec<f32>], perplexity: f64) -> Vec<f64> {
    let n = x.len();
    let mut d = vec![0f64; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = sq_dist(&x[i], &x[j]);
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    let target = perplexity.max(1.0).ln();
    let mut p = vec![0f64; n * n];
    for i in 0..n {
        let (mut lo, mut hi, mut beta) = (0f64, f64::INFINITY, 1f64);
        let row = &d[i * n..(i + 1) * n];
        // Scale-free start: 1 / mean distance.
        let mean = row.iter().sum::<f64>() / (n.max(2) - 1) as f64;
        if mean > 0.0 {
            beta = 1.0 / mean;
        }
        for _ in 0..64 {
            let mut sum = 0.0;
            let mut dsum = 0.0;
            for j in 0..n {
                if j != i {
                    let e = (-row[j] * beta).exp();
                    sum += e;
                    dsum += row[j] * e;
                }
            }
            let sum = sum.max(1e-300);
            let h = sum.ln() + beta * dsum / sum; // entropy in nats
            if (h - target).abs() < 1e-5 {
                break;
            }
            if h > target {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
        let mut sum = 0.0;
        for j in 0..n {
            if j != i {
                let e = (-row[j] * beta).exp();
                p[i * n + j] = e;
                sum += e;
            }
        }
        for j in 0..n {
            p[i * n + j] /= sum.max(1e-300);
        }
    }
    let mut joint = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            joint[i * n + j] = ((p[i * n + j] + p[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    joint
}

/// 2-D embedding of `x` (at most a few thousand rows), deterministic for a `seed`.
pub fn tsne(x: &[Vec<f32>], perplexity: f64, iterations: usize, seed: u64) -> Vec<[f64; 2]> {
    let n = x.len();
    if n < 2 {
        return vec![[0.0, 0.0]; n];
    }
    let perplexity = perplexity.min((n - 1) as f64 / 3.0).max(1.0);
    let p = joint_probabilities(x, perplexity);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|_| [rng.random::<f64>() * 1e-2, rng.random::<f64>() * 1e-2])
        .collect();
    let mut vel = vec![[0f64; 2]; n];
    let mut gains = vec![[1f64; 2]; n];
    let lr = (n as f64 / 12.0).max(50.0);
    let mut num = vec![0f64; n * n];
    for it in 0..iterations {
        let exaggeration = if it < 100 { 12.0 } else { 1.0 };
        let momentum = if it < 250 { 0.5 } else { 0.8 };
        let mut qsum = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                let dx = y[i][0] - y[j][0];
                let dy = y[i][1] - y[j][1];
                let v = 1.0 / (1.0 + dx * dx + dy * dy);
                num[i * n + j] = v;
                num[j * n + i] = v;
                qsum += 2.0 * v;
            }
        }
        for i in 0..n {
            let mut g = [0f64; 2];
            for j in 0..n {
                if i == j {
                    continue;
                }
                let w = num[i * n + j];
                let q = (w / qsum).max(1e-12);
                let m = 4.0 * (exaggeration * p[i * n + j] - q) * w;
                g[0] += m * (y[i][0] - y[j][0]);
                g[1] += m * (y[i][1] - y[j][1]);
            }
            for k in 0..2 {
                gains[i][k] = if (g[k] > 0.0) != (vel[i][k] > 0.0) {
                    gains[i][k] + 0.2
                } else {
                    (gains[i][k] * 0.8).max(0.01)
                };
                vel[i][k] = momentum * vel[i][k] - lr * gains[i][k] * g[k];
            }
        }
        let mut mean = [0f64; 2];
        for i in 0..n {
            y[i][0] += vel[i][0];
            y[i][1] += vel[i][1];
            mean[0] += y[i][0] / n as f64;
            mean[1] += y[i][1] / n as f64;
        }
        for yi in y.iter_mut() {
            yi[0] -= mean[0];
            yi[1] -= mean[1];
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_clusters_and_rows_sum_to_one() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut x = Vec::new();
        for c in 0..2 {
            for _ in 0..20 {
                x.push(
                    (0..5)
                        .map(|_| c as f32 * 10.0 + rng.random::<f32>())
                        .collect::<Vec<_>>(),
                );
            }
        }
        let p = joint_probabilities(&x, 5.0);
        let total: f64 = p.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let y = tsne(&x, 5.0, 300, 1);
        let centre = |r: std::ops::Range<usize>| {
            let k = r.len() as f64;
            r.fold([0.0, 0.0], |a, i| [a[0] + y[i][0] / k, a[1] + y[i][1] / k])
        };
        let (a, b) = (centre(0..20), centre(20..40));
        let between = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let within = (0..20)
            .map(|i| ((y[i][0] - a[0]).powi(2) + (y[i][1] - a[1]).powi(2)).sqrt())
            .fold(0.0, f64::max);
        assert!(between > 2.0 * within, "between {between}, within {within}");
        assert_eq!(tsne(&x, 5.0, 50, 3), tsne(&x, 5.0, 50, 3));
    }
}
