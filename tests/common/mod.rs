//! Shared helpers for integration tests: locating the golden vectors written by the PyTorch
//! reference (`make_golden.py`, see `../shared/reference/README.md`) and the shared data
//! directory, reading `{"shape": [...], "data": [...]}` arrays, and the float32-vs-float64
//! tolerance `|got − want| ≤ 1e-5 + 1e-4·|want|` suggested by the reference.
//!
//! [`mat5`] writes level-5 MAT-files byte by byte from the MathWorks specification.
//!
//! Each test binary uses a subset of these helpers, hence the `dead_code` allowances.

#![allow(dead_code)]

pub mod mat5;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Environment variable that points the golden tests at another directory of the same schema.
pub const GOLDEN_DIR_VAR: &str = "TKS_GOLDEN_DIR";

/// Absolute tolerance of [`assert_close`].
pub const ABS_TOL: f64 = 1e-5;
/// Relative tolerance of [`assert_close`].
pub const REL_TOL: f64 = 1e-4;

/// A path relative to the crate root (absolute paths are kept as they are).
fn from_crate_root(path: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The golden-vector directory: `$TKS_GOLDEN_DIR` if set (relative paths are taken from the crate
/// root), else `../shared/reference/golden` next to the crate.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os(GOLDEN_DIR_VAR) {
        Some(dir) if !dir.is_empty() => from_crate_root(dir),
        _ => from_crate_root("../shared/reference/golden"),
    }
}

/// `rel` under the shared data directory, or `None` after printing a `SKIP:` line when it is
/// absent (tests that need it then return early).
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = shared_data_dir().join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} not found (shared data folder absent)",
            p.display()
        );
        None
    }
}

/// A scratch directory under the system temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty scratch directory `tks-<name>-<pid>-<n>`: unique per call, so tests running
/// in parallel threads of one process never share one.
pub fn scratch(name: &str) -> Scratch {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tks-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// Runs the `tks` binary built for this test run: (success, stdout, stderr).
pub fn run_tks(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tks"))
        .args(args)
        .output()
        .expect("run tks");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shared data directory `../shared/data` next to the crate.
pub fn shared_data_dir() -> PathBuf {
    from_crate_root("../shared/data")
}

/// What a golden file holds, decided from its schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoldenKind {
    /// LIF neuron vectors (`lif.json`): a top-level `lif_update` formula, cases named `lif_*`.
    Lif,
    /// Loss vectors (`losses.json`): a top-level `alpha_schedule`, cases with `baseline_loss`.
    Losses,
}

impl GoldenKind {
    /// Every known kind.
    pub const ALL: [GoldenKind; 2] = [GoldenKind::Lif, GoldenKind::Losses];

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            GoldenKind::Lif => "lif",
            GoldenKind::Losses => "losses",
        }
    }

    /// Whether the parsed file `json` is of this kind.
    pub fn matches(self, json: &Value) -> bool {
        let cases = json.get("cases").and_then(Value::as_array);
        let any_case = |pred: &dyn Fn(&Value) -> bool| cases.is_some_and(|c| c.iter().any(pred));
        match self {
            GoldenKind::Lif => {
                json.get("lif_update").is_some()
                    || any_case(&|c| case_name(c).is_some_and(|n| n.starts_with("lif_")))
            }
            GoldenKind::Losses => {
                json.get("alpha_schedule").is_some()
                    || any_case(&|c| c.pointer("/outputs/baseline_loss").is_some())
            }
        }
    }
}

/// One parsed golden file.
#[derive(Debug, Clone)]
pub struct GoldenFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its content.
    pub json: Value,
}

impl GoldenFile {
    /// The file's `cases` array (fails if it has none).
    pub fn cases(&self) -> &[Value] {
        self.json
            .get("cases")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{}: no `cases` array", self.path.display()))
    }

    /// Kinds this file matches.
    pub fn kinds(&self) -> Vec<GoldenKind> {
        GoldenKind::ALL
            .into_iter()
            .filter(|k| k.matches(&self.json))
            .collect()
    }
}

/// The `name` of a case, if any.
pub fn case_name(case: &Value) -> Option<&str> {
    case.get("name").and_then(Value::as_str)
}

/// Every `*.json` file of the golden directory, parsed, sorted by path. `None` (after printing
/// `SKIP: golden dir <path> not found` to stderr) when the directory does not exist; a file that
/// cannot be read or parsed is a failure.
pub fn golden_files() -> Option<Vec<GoldenFile>> {
    let dir = golden_dir();
    if !dir.is_dir() {
        eprintln!("SKIP: golden dir {} not found", dir.display());
        return None;
    }
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list golden dir {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list golden dir {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let files = paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            GoldenFile { path, json }
        })
        .collect();
    Some(files)
}

/// The golden files of `kind`. `None` when the directory is missing (the test should return);
/// panics when the directory exists but holds no file of this kind.
pub fn golden_files_of_kind(kind: GoldenKind) -> Option<Vec<GoldenFile>> {
    let files: Vec<GoldenFile> = golden_files()?
        .into_iter()
        .filter(|f| kind.matches(&f.json))
        .collect();
    assert!(
        !files.is_empty(),
        "golden dir {} exists but holds no `{}` file (*.json with {})",
        golden_dir().display(),
        kind.name(),
        match kind {
            GoldenKind::Lif => "a top-level `lif_update` or cases named `lif_*`",
            GoldenKind::Losses =>
                "a top-level `alpha_schedule` or cases with `outputs.baseline_loss`",
        }
    );
    Some(files)
}

/// `value[key]`, failing with `what` and the key in the message when absent.
pub fn field<'a>(value: &'a Value, key: &str, what: &str) -> &'a Value {
    value
        .get(key)
        .unwrap_or_else(|| panic!("{what}: missing key `{key}`"))
}

/// A JSON number, failing with `what` in the message.
pub fn number(value: &Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, found {value}"))
}

/// A golden array `{"shape": [...], "data": [...]}` as (shape, row-major values). Checks that
/// the data length is the product of the shape (a scalar has shape `[]` and one value).
pub fn array(value: &Value, what: &str) -> (Vec<usize>, Vec<f64>) {
    let shape: Vec<usize> = field(value, "shape", what)
        .as_array()
        .unwrap_or_else(|| panic!("{what}: `shape` is not an array"))
        .iter()
        .map(|d| {
            d.as_u64()
                .unwrap_or_else(|| panic!("{what}: bad dimension {d} in `shape`"))
                as usize
        })
        .collect();
    let data: Vec<f64> = field(value, "data", what)
        .as_array()
        .unwrap_or_else(|| panic!("{what}: `data` is not an array"))
        .iter()
        .map(|x| match x {
            Value::Bool(b) => f64::from(u8::from(*b)),
            _ => number(x, what),
        })
        .collect();
    let expected: usize = shape.iter().product();
    assert_eq!(
        data.len(),
        expected,
        "{what}: {} values for shape {shape:?}",
        data.len()
    );
    (shape, data)
}

/// Asserts `|got − want| ≤ 1e-5 + 1e-4·|want|` element-wise (and equal lengths); the message
/// names `what` and lists the first mismatches.
pub fn assert_close<G: Copy + Into<f64>>(got: &[G], want: &[f64], what: &str) {
    assert_close_tol(got, want, ABS_TOL, REL_TOL, what);
}

/// [`assert_close`] with explicit tolerances `|got − want| ≤ abs + rel·|want|`.
pub fn assert_close_tol<G: Copy + Into<f64>>(
    got: &[G],
    want: &[f64],
    abs: f64,
    rel: f64,
    what: &str,
) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter_map(|(i, (&g, &w))| {
            let g: f64 = g.into();
            let ok = (g - w).abs() <= abs + rel * w.abs();
            (!ok).then(|| {
                format!(
                    "[{i}] got {g:.8e} want {w:.8e} (diff {:.2e})",
                    (g - w).abs()
                )
            })
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} values outside |a-b| <= {abs:e} + {rel:e}*|b|; first: {}",
        bad.len(),
        want.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
    );
}

/// The lock every training test of a harness holds: burn's device generator is process-wide,
/// so two seeded trainings at once would interleave their draws and change each other's results.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
