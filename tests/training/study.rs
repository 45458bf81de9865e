//! `tks study` in miniature, through the binary, so the command cannot rot: two methods, one
//! seed, ~200 digits, one epoch, plus a 2-fold cross-validated experiment; resuming does nothing
//! twice, a changed configuration is redone, and `--report` writes RESULTS.md and its figures
//! from the summaries alone.

use crate::common::{run_tks, scratch};
use tks::study::run::RunRecord;

fn write(dir: &std::path::Path, epochs: usize) {
    std::fs::write(
        dir.join("base.toml"),
        format!(
            "[model]\narch = \"small_cnn\"\nin_channels = 1\ninput_size = 8\nchannels = [8, 16]\nnum_classes = 10\n\
             [train]\nepochs = {epochs}\nbatch_size = 32\ntimesteps = 2\n[data]\nsource = \"digits\"\nlimit = 200\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("study.toml"),
        "[study]\nname = \"mini\"\nmethods = [\"baseline\", \"tks\"]\nseeds = [1]\n\
         [[experiment]]\nname = \"digits\"\ndescription = \"tiny\"\nconfig = \"base.toml\"\n\
         [[experiment]]\nname = \"digits-cv\"\nconfig = \"base.toml\"\nfolds = 2\nmethods = [\"baseline\"]\n",
    )
    .unwrap();
}

#[test]
fn miniature_study_runs_resumes_and_reports() {
    let _turn = crate::common::serial();
    let dir = scratch("study");
    write(&dir, 1);
    let s = |p: &std::path::Path| p.display().to_string();
    let (study, results, work) = (
        dir.join("study.toml"),
        dir.join("results"),
        dir.join("work"),
    );
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "study",
            &s(&study),
            "--results",
            &s(&results),
            "--work-dir",
            &s(&work),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, out, err) = run_tks(&a);
        assert!(ok, "{out}\n{err}");
        out
    };
    let out = run(&[]);
    assert!(
        out.contains("4 runs to do, 0 done") && out.contains("estimated wall time"),
        "{out}"
    );
    assert!(out.contains("4 runs finished"), "{out}");
    let summary = results.join("mini/digits/tks-T2-s1.json");
    let r: RunRecord = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!((r.method.as_str(), r.timesteps, r.seed), ("tks", 2, 1));
    assert_eq!(
        r.samples[0] + r.samples[1],
        200,
        "train + validation = the 200 kept"
    );
    assert_eq!(r.samples[2], 200);
    assert_eq!(r.truncate.len(), 2);
    assert_eq!(r.test.report.per_timestep.len(), 2);
    assert!(r.best_epoch == Some(1) && r.wall_seconds > 0.0 && r.provenance.cores >= 1);
    assert!(
        !r.config.contains("cache_dir"),
        "no machine paths in a summary"
    );
    for k in 0..2 {
        let f = results.join(format!("mini/digits-cv/baseline-T2-s1-f{k}.json"));
        let r: RunRecord = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(r.fold, Some((k, 2)));
    }
    // Resumable: nothing left to do.
    let out = run(&[]);
    assert!(out.contains("0 runs to do, 4 done"), "{out}");
    // Another configuration makes the old summaries stale: they are redone, not reused.
    write(&dir, 2);
    let out = run(&["--estimate"]);
    assert!(
        out.contains("4 runs to do") && out.contains("another configuration"),
        "{out}"
    );
    // The report is made from the summaries alone (the stale ones are named and left out).
    let md = dir.join("docs/RESULTS.md");
    let out = run(&["--report", "--out", &s(&md)]);
    assert!(
        out.contains("0 run summaries") && out.contains("4 stale"),
        "{out}"
    );
    write(&dir, 1);
    let out = run(&["--report", "--out", &s(&md)]);
    assert!(out.contains("from 4 run summaries"), "{out}");
    let text = std::fs::read_to_string(&md).unwrap();
    for needle in [
        "## digits",
        "| baseline | 2 | 1 |",
        "| tks | 2 | 1 |",
        "1 × 2 folds",
        "TKS against each method",
        "re-bin",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let figures: Vec<String> = std::fs::read_dir(dir.join("docs/figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        figures.iter().any(|f| f == "mini-digits-truncate.svg")
            && figures
                .iter()
                .any(|f| f.starts_with("mini-digits-per_class_t1")),
        "{figures:?}"
    );
    // A bad study file is an error naming it.
    std::fs::write(&study, "[study]\nname = \"x\"\n").unwrap();
    let a = args(&[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (ok, _, err) = run_tks(&a);
    assert!(!ok && err.contains("study.toml"), "{err}");
}
