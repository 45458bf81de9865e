//! `tks report`: run directories → Markdown + HTML report with figures.

use std::path::PathBuf;

use clap::Args;

use crate::report::{RunSummary, write_report};

/// Options of `tks report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (from `tks train --out`), e.g. a baseline and a TKS run side by side.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory for report.md, report.html and the figures.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Test samples in the t-SNE of penultimate features (0 to skip; at most 1000).
    #[arg(long, default_value_t = 300)]
    pub tsne_points: usize,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// Runs `tks report`.
pub fn run(args: ReportArgs, kernels: &super::kernels::KernelOverrides) -> anyhow::Result<()> {
    let device = args.device.resolve(None)?;
    let mut runs = Vec::new();
    for dir in &args.runs {
        let mut r = RunSummary::load(dir)?;
        if args.tsne_points > 0 {
            r.compute_tsne(args.tsne_points.min(1000), &device, |p| kernels.apply(p))?;
        }
        runs.push(r);
    }
    let files = write_report(&runs, &args.out)?;
    println!(
        "wrote {} and {} with {} figure files in {}",
        files.markdown.display(),
        files.html.display(),
        files.figures.len(),
        args.out.display()
    );
    Ok(())
}
