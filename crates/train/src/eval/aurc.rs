//! Risk–coverage analysis of selective classification (Geifman & El-Yaniv 2017; Geifman et al.
//! 2019): sort samples by confidence, most confident first; at coverage k/n the risk is the error
//! rate of the k most confident. AURC is the mean risk over k = 1..n; E-AURC subtracts the AURC
//! of the oracle ranking (all correct samples first). The paper reports both ×1000.

use serde::{Deserialize, Serialize};

/// The risk–coverage curve and its area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskCoverage {
    /// Coverage k/n for k = 1..n (possibly thinned to at most 200 points for plotting).
    pub coverage: Vec<f64>,
    /// Selective risk at each coverage.
    pub risk: Vec<f64>,
    /// Area under the risk–coverage curve (fraction; multiply by 1000 for the paper's unit).
    pub aurc: f64,
    /// AURC minus the AURC of the oracle ranking.
    pub eaurc: f64,
}

fn mean_risk(correct_in_order: impl Iterator<Item = bool>) -> (f64, Vec<f64>) {
    let mut errors = 0usize;
    let mut risks = Vec::new();
    for (k, c) in correct_in_order.enumerate() {
        if !c {
            errors += 1;
        }
        risks.push(errors as f64 / (k + 1) as f64);
    }
    let n = risks.len().max(1) as f64;
    (risks.iter().sum::<f64>() / n, risks)
}

/// Risk–coverage of predictions with `confidence` and whether each was `correct`.
/// Ties in confidence keep the input order (a stable sort).
pub fn risk_coverage(confidence: &[f64], correct: &[bool]) -> RiskCoverage {
    assert_eq!(confidence.len(), correct.len(), "one confidence per sample");
    let n = confidence.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| confidence[b].total_cmp(&confidence[a]));
    let (aurc, risks) = mean_risk(order.iter().map(|&i| correct[i]));
    let n_correct = correct.iter().filter(|c| **c).count();
    let (oracle, _) = mean_risk((0..n).map(|k| k < n_correct));
    let stride = n.div_ceil(200).max(1);
    let mut coverage = Vec::new();
    let mut risk = Vec::new();
    for (k, r) in risks.iter().enumerate() {
        if k % stride == stride - 1 || k + 1 == n {
            coverage.push((k + 1) as f64 / n as f64);
            risk.push(*r);
        }
    }
    RiskCoverage {
        coverage,
        risk,
        aurc,
        eaurc: aurc - oracle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aurc_by_hand() {
        // Ranked: ✓ ✗ ✓ ✗ → risks 0, 1/2, 1/3, 1/2 → AURC = (0 + .5 + .3333 + .5)/4 = 1/3.
        // Oracle: ✓ ✓ ✗ ✗ → 0, 0, 1/3, 1/2 → 5/24; E-AURC = 1/3 − 5/24 = 1/8.
        let r = risk_coverage(&[0.6, 0.9, 0.8, 0.7], &[false, true, false, true]);
        assert!((r.aurc - 1.0 / 3.0).abs() < 1e-12, "{}", r.aurc);
        assert!((r.eaurc - 0.125).abs() < 1e-12, "{}", r.eaurc);
        assert_eq!(r.coverage, vec![0.25, 0.5, 0.75, 1.0]);
        assert_eq!(r.risk[1], 0.5);
        // Perfect ranking: E-AURC 0; all correct: AURC 0.
        let r = risk_coverage(&[0.9, 0.1], &[true, false]);
        assert_eq!(r.eaurc, 0.0);
        assert_eq!(r.aurc, 0.25);
        assert_eq!(risk_coverage(&[0.3, 0.2], &[true, true]).aurc, 0.0);
    }
}
