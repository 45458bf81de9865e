//! `tks report`: one or more run directories → a Markdown and an HTML report with figures.
//!
//! Figures: training curves (loss and test accuracy per epoch), per-timestep accuracy (each
//! timestep's own output, every run side by side: the paper's Fig. 4), accuracy vs test T from
//! `sweep.json` (Fig. 3a) and train-equal-T (Fig. 3b), risk–coverage curves from `eval.json`,
//! per-class accuracy at t = 1, anytime accuracy vs mean timesteps from `anytime.json`, and a
//! t-SNE of penultimate features (Fig. 6) computed from each run's checkpoint.

pub mod plots;
pub mod study;

use crate::kernels::KernelPolicy;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::eval::analysis::{EvalFile, collect_logits};
use crate::eval::anytime::AnytimeFile;
use crate::eval::sweep::SweepReport;
use crate::train::EpochRecord;
use crate::train::checkpoint::{Checkpoint, RunDir, RunResult, run_files};
use plots::{BarPlot, Figure, LinePlot, ScatterPlot};

/// A report that cannot be made; names the file.
#[derive(Debug, Error)]
#[error("{path}: {reason}")]
pub struct ReportError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

fn rerr(path: &Path, reason: impl std::fmt::Display) -> ReportError {
    ReportError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// What a run directory holds.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Short name (directory name).
    pub name: String,
    /// The directory.
    pub dir: PathBuf,
    /// Objective name.
    pub objective: String,
    /// Training T.
    pub train_timesteps: usize,
    /// `metrics.jsonl`.
    pub history: Vec<EpochRecord>,
    /// `result.json` (test accuracy of the best-on-validation and the last checkpoint), if
    /// the run finished.
    pub result: Option<RunResult>,
    /// `eval.json`, if present.
    pub eval: Option<EvalFile>,
    /// `sweep.json`, if present.
    pub sweep: Option<SweepReport>,
    /// `anytime.json`, if present.
    pub anytime: Option<AnytimeFile>,
    /// t-SNE embedding of penultimate features `(x, y, label)`, if computed.
    pub tsne: Option<Vec<(f64, f64, usize)>>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| rerr(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| rerr(path, e))
}

impl RunSummary {
    /// Reads a run directory (only `config.toml` and `metrics.jsonl` are required).
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let run = RunDir::open(dir).map_err(|e| rerr(dir, e))?;
        let config = run.config().map_err(|e| rerr(dir, e))?;
        let history = run.metrics().map_err(|e| rerr(dir, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            objective: config.objective.name().to_string(),
            train_timesteps: config.train.timesteps,
            history,
            result: run.result().map_err(|e| rerr(dir, e))?,
            eval: read_json(&run.file(run_files::EVAL))?,
            sweep: read_json(&run.file(run_files::SWEEP))?,
            anytime: read_json(&run.file(run_files::ANYTIME))?,
            tsne: None,
        })
    }

    /// The test-set evaluation of the selected checkpoint from `result.json` (best on
    /// validation, else last), or of the last epoch of a run without a validation set.
    pub fn final_test(&self) -> Option<&crate::eval::EvalReport> {
        match &self.result {
            Some(r) => Some(r.test_best.as_ref().unwrap_or(&r.test_last)),
            None => self.history.last().and_then(|h| h.test.as_ref()),
        }
    }

    /// Label in legends: `name (objective)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.objective)
    }

    /// Computes the t-SNE of penultimate features of up to `points` test samples from the
    /// best (else last) checkpoint.
    /// `kernels` maps the run's recorded kernel policy to the one used here.
    pub fn compute_tsne(
        &mut self,
        points: usize,
        device: &Device,
        kernels: impl Fn(KernelPolicy) -> KernelPolicy,
    ) -> Result<(), ReportError> {
        let run = RunDir::open(&self.dir).map_err(|e| rerr(&self.dir, e))?;
        let config = run.config().map_err(|e| rerr(&self.dir, e))?;
        let policy = kernels(config.kernels);
        let mut path = run.file(run_files::BEST);
        if !path.exists() {
            path = run.file(run_files::LAST);
        }
        let ck = Checkpoint::load(&path).map_err(|e| rerr(&path, e))?;
        device.seed(config.train.seed);
        let model = (config.model.init_with(device, &policy)).map_err(|e| rerr(&path, e))?;
        let model = ck.apply_to(model).map_err(|e| rerr(&path, e))?;
        let data = crate::data::source::load(&config.data, config.train.timesteps)
            .map_err(|e| rerr(&self.dir, e))?;
        let l = collect_logits(
            &model,
            &data.test,
            config.train.timesteps,
            config.train.eval_batch_size,
            config.train.encoder,
            device,
            points,
        )
        .map_err(|e| rerr(&self.dir, format!("evaluating on {}: {e}", data.test.name)))?;
        if let Some(f) = l.features.filter(|f| f.len() >= 2) {
            let y = crate::eval::tsne::tsne(&f, 30.0, 500, config.train.seed);
            self.tsne = Some(
                y.iter()
                    .zip(&l.labels)
                    .map(|(p, &c)| (p[0], p[1], c as usize))
                    .collect(),
            );
        }
        Ok(())
    }
}

/// The files a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// Figure files (PNG and SVG), relative to the output directory.
    pub figures: Vec<String>,
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

/// The figures of a report: `(stem, caption, figure)`.
pub fn figures(runs: &[RunSummary]) -> Vec<(String, String, Figure)> {
    let mut out = Vec::new();
    let line = |title: &str, x: &str, y: &str| LinePlot {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        // epochs, timesteps and T are counts: integer ticks
        integer_x: matches!(x, "epoch" | "timestep t" | "test timesteps T" | "T"),
        ..Default::default()
    };
    let mut loss = line("Training loss", "epoch", "loss");
    let mut acc = line("Held-out accuracy", "epoch", "accuracy (%)");
    for r in runs {
        loss.series.push((
            r.label(),
            r.history.iter().map(|h| (h.epoch as f64, h.loss)).collect(),
        ));
        acc.series.push((
            r.label(),
            r.history
                .iter()
                .filter_map(|h| Some((h.epoch as f64, 100.0 * h.held_out()?.accuracy)))
                .collect(),
        ));
    }
    out.push((
        "training_loss".into(),
        "Training loss per epoch.".into(),
        Figure::Line(loss),
    ));
    out.push((
        "training_accuracy".into(),
        "Accuracy (time-averaged output) per epoch on the validation set (on the test set for runs without one).".into(),
        Figure::Line(acc),
    ));
    let mut per_t = line(
        "Accuracy of each timestep's own output",
        "timestep t",
        "accuracy (%)",
    );
    let mut running = line(
        "Accuracy of the running mean up to t",
        "timestep t",
        "accuracy (%)",
    );
    for r in runs {
        let rep = match &r.eval {
            Some(e) => Some(&e.analysis.report),
            None => r.final_test(),
        };
        if let Some(rep) = rep {
            let pts = |v: &[f64]| -> Vec<(f64, f64)> {
                v.iter()
                    .enumerate()
                    .map(|(t, a)| ((t + 1) as f64, 100.0 * a))
                    .collect()
            };
            per_t.series.push((r.label(), pts(&rep.per_timestep)));
            running.series.push((r.label(), pts(&rep.running_mean)));
        }
    }
    if !per_t.series.is_empty() {
        out.push((
            "per_timestep".into(),
            "Per-timestep accuracy: each timestep's own output o_t (the paper's Fig. 4).".into(),
            Figure::Line(per_t),
        ));
        out.push((
            "running_mean".into(),
            "Accuracy of the running mean of outputs up to t.".into(),
            Figure::Line(running),
        ));
    }
    let mut sweep = line("Accuracy vs test T", "test timesteps T", "accuracy (%)");
    let mut equal = line("Trained and tested at equal T", "T", "accuracy (%)");
    for r in runs {
        if let Some(s) = &r.sweep {
            sweep.series.push((
                format!("{} (trained T={})", r.label(), s.train_timesteps),
                s.test_t
                    .iter()
                    .map(|p| (p.timesteps as f64, 100.0 * p.accuracy))
                    .collect(),
            ));
            if !s.train_equal.is_empty() {
                equal.series.push((
                    r.label(),
                    s.train_equal
                        .iter()
                        .map(|p| (p.timesteps as f64, 100.0 * p.accuracy))
                        .collect(),
                ));
            }
        }
    }
    if !sweep.series.is_empty() {
        out.push((
            "accuracy_vs_test_t".into(),
            "Temporal generalisation: one checkpoint evaluated at every test T (Fig. 3a).".into(),
            Figure::Line(sweep),
        ));
    }
    if !equal.series.is_empty() {
        out.push((
            "train_equal_t".into(),
            "Trained and tested at the same T (Fig. 3b).".into(),
            Figure::Line(equal),
        ));
    }
    let mut rc = line("Risk–coverage", "coverage", "selective risk (%)");
    let mut bars = BarPlot {
        title: "Per-class accuracy at t = 1".into(),
        x_label: "class".into(),
        y_label: "accuracy (%)".into(),
        ..Default::default()
    };
    for r in runs {
        if let Some(e) = &r.eval {
            let a = &e.analysis;
            rc.series.push((
                format!("{} AURC {:.1}", r.label(), a.aurc_x1000),
                a.risk_coverage
                    .coverage
                    .iter()
                    .zip(&a.risk_coverage.risk)
                    .map(|(c, k)| (*c, 100.0 * k))
                    .collect(),
            ));
            bars.categories = bars.categories.max(a.per_class_t1.len());
            bars.series.push((
                r.label(),
                a.per_class_t1.iter().map(|v| 100.0 * v).collect(),
            ));
        }
    }
    if !rc.series.is_empty() {
        out.push((
            "risk_coverage".into(),
            "Risk–coverage curves (confidence: max softmax of the mean output; AURC ×1000).".into(),
            Figure::Line(rc),
        ));
        out.push((
            "per_class_t1".into(),
            "Per-class accuracy of the first timestep's output.".into(),
            Figure::Bar(bars),
        ));
    }
    let mut any = line("Anytime inference", "mean timesteps used", "accuracy (%)");
    for r in runs {
        if let Some(a) = &r.anytime {
            any.series.push((
                r.label(),
                a.points
                    .iter()
                    .map(|p| (p.mean_timesteps, 100.0 * p.accuracy))
                    .collect(),
            ));
        }
    }
    if !any.series.is_empty() {
        out.push((
            "anytime".into(),
            "Early exit at a softmax-confidence threshold: accuracy vs mean timesteps.".into(),
            Figure::Line(any),
        ));
    }
    for r in runs {
        if let Some(points) = &r.tsne {
            out.push((
                format!("tsne_{}", sanitize(&r.name)),
                format!(
                    "t-SNE of penultimate features (time-mean classifier input), {}.",
                    r.label()
                ),
                Figure::Scatter(ScatterPlot {
                    title: format!("t-SNE, {}", r.label()),
                    points: points.clone(),
                }),
            ));
        }
    }
    out
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn summary_table(runs: &[RunSummary]) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "run".to_string(),
        "objective".into(),
        "train T".into(),
        "epochs".into(),
        "top-1 (%)".into(),
        "top-5 (%)".into(),
        "t=1 own (%)".into(),
        "AURC ×1000".into(),
        "E-AURC ×1000".into(),
        "energy (µJ/sample)".into(),
    ]];
    for r in runs {
        let last = r.final_test();
        let (top1, top5, t1, aurc, eaurc, energy) = match &r.eval {
            Some(e) => {
                let a = &e.analysis;
                (
                    pct(a.report.accuracy),
                    pct(a.top5),
                    a.report
                        .per_timestep
                        .first()
                        .map_or("-".into(), |v| pct(*v)),
                    format!("{:.2}", a.aurc_x1000),
                    format!("{:.2}", a.eaurc_x1000),
                    a.energy
                        .as_ref()
                        .map_or("-".into(), |e| format!("{:.4}", e.energy_uj_per_sample)),
                )
            }
            None => (
                last.map_or("-".into(), |h| pct(h.accuracy)),
                "-".into(),
                last.and_then(|h| h.per_timestep.first())
                    .map_or("-".into(), |v| pct(*v)),
                "-".into(),
                "-".into(),
                "-".into(),
            ),
        };
        rows.push(vec![
            r.name.clone(),
            r.objective.clone(),
            r.train_timesteps.to_string(),
            r.history.len().to_string(),
            top1,
            top5,
            t1,
            aurc,
            eaurc,
            energy,
        ]);
    }
    rows
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `report.md`, `report.html` and the figures into `out`.
pub fn write_report(runs: &[RunSummary], out: &Path) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(out).map_err(|e| rerr(out, e))?;
    let mut md = String::from("# tks report\n\n");
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tks report</title>\n<style>body{font-family:sans-serif;max-width:900px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>\n<h1>tks report</h1>\n",
    );
    let _ = writeln!(
        md,
        "Runs: {}\n",
        runs.iter()
            .map(|r| format!("`{}`", r.dir.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let table = summary_table(runs);
    md.push_str("## Summary\n\n");
    html.push_str("<h2>Summary</h2>\n<table>\n");
    for (i, row) in table.iter().enumerate() {
        let _ = writeln!(md, "| {} |", row.join(" | "));
        if i == 0 {
            let _ = writeln!(md, "|{}", "---|".repeat(row.len()));
        }
        let tag = if i == 0 { "th" } else { "td" };
        html.push_str("<tr>");
        for c in row {
            let _ = write!(html, "<{tag}>{}</{tag}>", html_escape(c));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    for r in runs {
        if let Some(e) = r.eval.as_ref().and_then(|e| e.analysis.energy.as_ref()) {
            let _ = writeln!(
                md,
                "\n{}: {:.0} synaptic ops (ACs) and {:.0} MACs per sample ⇒ {:.4} µJ at {} pJ/AC, {} pJ/MAC (an ANN of the same shape: {:.4} µJ).",
                r.name,
                e.sops_per_sample,
                e.macs_per_sample,
                e.energy_uj_per_sample,
                e.op_energy.ac_pj,
                e.op_energy.mac_pj,
                e.ann_energy_uj_per_sample
            );
        }
    }
    md.push_str("\n## Figures\n\n");
    html.push_str("<h2>Figures</h2>\n");
    let mut files = Vec::new();
    for (stem, caption, fig) in figures(runs) {
        let written = plots::save(&fig, out, &stem).map_err(|e| rerr(out, e))?;
        let main = written[0].clone();
        let _ = writeln!(md, "![{caption}]({main})\n\n*{caption}*\n");
        let _ = writeln!(
            html,
            "<figure><img src=\"{main}\" alt=\"{c}\"><figcaption>{c}</figcaption></figure>",
            c = html_escape(&caption)
        );
        files.extend(written);
    }
    html.push_str("</body></html>\n");
    let markdown = out.join("report.md");
    let html_path = out.join("report.html");
    std::fs::write(&markdown, md).map_err(|e| rerr(&markdown, e))?;
    std::fs::write(&html_path, html).map_err(|e| rerr(&html_path, e))?;
    Ok(ReportFiles {
        markdown,
        html: html_path,
        figures: files,
    })
}
