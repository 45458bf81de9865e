//! Plots with plotters: every figure as SVG (text as SVG `<text>`), and as PNG when a TrueType
//! font is available for rasterising text (DejaVu Sans from the usual system folders, or the
//! file named by `TKS_FONT`; `TKS_FONT=none` writes SVG only).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// A line chart: one polyline with markers per series.
#[derive(Debug, Clone, Default)]
pub struct LinePlot {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// `(name, points)`.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Fixed y range, else fitted.
    pub y_range: Option<(f64, f64)>,
    /// The x values are counts (epochs, timesteps): ticks only at integers, labelled as such.
    pub integer_x: bool,
}

/// An x tick label for an integer axis: the integer, or nothing between integers.
fn integer_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// A grouped bar chart: one bar per series in each category.
#[derive(Debug, Clone, Default)]
pub struct BarPlot {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Number of categories (labelled 0..n).
    pub categories: usize,
    /// `(name, one value per category)`.
    pub series: Vec<(String, Vec<f64>)>,
}

/// A scatter plot coloured by class.
#[derive(Debug, Clone, Default)]
pub struct ScatterPlot {
    /// Title.
    pub title: String,
    /// `(x, y, class)`.
    pub points: Vec<(f64, f64, usize)>,
}

/// Any figure.
#[derive(Debug, Clone)]
pub enum Figure {
    /// Lines.
    Line(LinePlot),
    /// Bars.
    Bar(BarPlot),
    /// Scatter.
    Scatter(ScatterPlot),
}

const SIZE: (u32, u32) = (800, 500);

/// Registers a TrueType font for PNG text; `false` when none was found.
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        match std::env::var("TKS_FONT") {
            Ok(p) if p == "none" => return false,
            Ok(p) => candidates.push(p.into()),
            Err(_) => {}
        }
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/Library/Fonts/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ] {
            candidates.push(p.into());
        }
        for c in candidates {
            if let Ok(bytes) = std::fs::read(&c) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    text: bool,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    if text {
        b.caption(title, ("sans-serif", 22));
    }
    b
}

/// The series legend, lower right on a translucent white box.
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Draws `fig`; without `text` (no font available) only the data is drawn: no caption, axes
/// labels or legend (the report's caption still describes it).
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &Figure,
    text: bool,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let label_area = |n: u32| if text { n } else { 0 };
    root.fill(&WHITE).map_err(err)?;
    match fig {
        Figure::Line(p) => {
            let (x0, x1) = range(p.series.iter().flat_map(|s| s.1.iter().map(|q| q.0)));
            let (y0, y1) = p
                .y_range
                .unwrap_or_else(|| range(p.series.iter().flat_map(|s| s.1.iter().map(|q| q.1))));
            let mut chart = builder(&root, &p.title, text)
                .margin(12)
                .x_label_area_size(label_area(42))
                .y_label_area_size(label_area(60))
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(err)?;
            if text {
                let mut mesh = chart.configure_mesh();
                mesh.x_desc(p.x_label.as_str()).y_desc(p.y_label.as_str());
                if p.integer_x {
                    // one tick per integer when they fit, never a fractional label
                    let span = (x1.floor() - x0.ceil()).max(0.0) as usize + 1;
                    mesh.x_labels(span.clamp(2, 12))
                        .x_label_formatter(&integer_label);
                }
                mesh.draw().map_err(err)?;
            }
            for (i, (name, pts)) in p.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|q| Circle::new(*q, 3, color.filled())))
                    .map_err(err)?;
            }
            if text {
                draw_legend(&mut chart)?;
            }
        }
        Figure::Bar(p) => {
            let (_, y1) = range(p.series.iter().flat_map(|s| s.1.iter().copied()));
            let y1 = y1.max(1e-9);
            let mut chart = builder(&root, &p.title, text)
                .margin(12)
                .x_label_area_size(label_area(42))
                .y_label_area_size(label_area(60))
                .build_cartesian_2d(-0.5f64..p.categories as f64 - 0.5, 0f64..y1)
                .map_err(err)?;
            if text {
                chart
                    .configure_mesh()
                    .x_desc(p.x_label.as_str())
                    .y_desc(p.y_label.as_str())
                    .x_labels(p.categories.min(30))
                    .x_label_formatter(&integer_label)
                    .draw()
                    .map_err(err)?;
            }
            let k = p.series.len().max(1) as f64;
            let w = 0.8 / k;
            for (i, (name, vals)) in p.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(vals.iter().enumerate().map(|(c, v)| {
                        let x = c as f64 - 0.4 + i as f64 * w;
                        Rectangle::new([(x, 0.0), (x + w, *v)], color.filled())
                    }))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                    });
            }
            if text {
                draw_legend(&mut chart)?;
            }
        }
        Figure::Scatter(p) => {
            let (x0, x1) = range(p.points.iter().map(|q| q.0));
            let (y0, y1) = range(p.points.iter().map(|q| q.1));
            let mut chart = builder(&root, &p.title, text)
                .margin(12)
                .x_label_area_size(label_area(30))
                .y_label_area_size(label_area(40))
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(err)?;
            if text {
                chart.configure_mesh().draw().map_err(err)?;
            }
            let classes = p.points.iter().map(|q| q.2).max().map_or(0, |m| m + 1);
            for c in 0..classes {
                let color = Palette99::pick(c).to_rgba();
                chart
                    .draw_series(
                        p.points
                            .iter()
                            .filter(|q| q.2 == c)
                            .map(|q| Circle::new((q.0, q.1), 3, color.filled())),
                    )
                    .map_err(err)?
                    .label(format!("class {c}"))
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
            }
            if text {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Writes `stem.svg` (always) and `stem.png` (when a font is available) into `dir`; returns the
/// file names written, the preferred one (PNG if any) first. Without a font the SVG has no
/// text.
pub fn save(fig: &Figure, dir: &Path, stem: &str) -> Result<Vec<String>, String> {
    let has_font = font_available();
    let mut written = Vec::new();
    if has_font {
        let png = dir.join(format!("{stem}.png"));
        draw(
            BitMapBackend::new(&png, SIZE).into_drawing_area(),
            fig,
            true,
        )
        .map_err(|e| format!("{}: {e}", png.display()))?;
        written.push(format!("{stem}.png"));
    }
    let svg = dir.join(format!("{stem}.svg"));
    draw(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        fig,
        has_font,
    )
    .map_err(|e| format!("{}: {e}", svg.display()))?;
    written.push(format!("{stem}.svg"));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_and_non_empty() {
        let dir = std::env::temp_dir().join(format!("tks-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let figs = [
            Figure::Line(LinePlot {
                title: "t".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                series: vec![("a".into(), vec![(1.0, 0.5), (2.0, 0.7)])],
                y_range: None,
                integer_x: false,
            }),
            Figure::Bar(BarPlot {
                title: "b".into(),
                categories: 3,
                series: vec![
                    ("a".into(), vec![0.1, 0.5, 0.9]),
                    ("b".into(), vec![0.2, 0.3, 1.0]),
                ],
                ..Default::default()
            }),
            Figure::Scatter(ScatterPlot {
                title: "s".into(),
                points: vec![(0.0, 0.0, 0), (1.0, 1.0, 1)],
            }),
        ];
        for (i, f) in figs.iter().enumerate() {
            let files = save(f, &dir, &format!("f{i}")).unwrap();
            assert!(!files.is_empty());
            for name in files {
                let len = std::fs::metadata(dir.join(&name)).unwrap().len();
                assert!(len > 500, "{name}: {len} bytes");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestep_axes_show_integers_only() {
        assert_eq!(integer_label(&3.0), "3");
        assert_eq!(integer_label(&2.5), "");
        if !font_available() {
            eprintln!(
                "SKIP: no TrueType font for plot text (set TKS_FONT); label rule checked only"
            );
            return;
        }
        let fig = Figure::Line(LinePlot {
            title: "per timestep".into(),
            x_label: "timestep t".into(),
            y_label: "accuracy (%)".into(),
            series: vec![(
                "a".into(),
                (1..=4).map(|t| (t as f64, 90.0 + t as f64)).collect(),
            )],
            y_range: None,
            integer_x: true,
        });
        let mut svg = String::new();
        draw(
            SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
            &fig,
            true,
        )
        .unwrap();
        // tick labels are `<text …>LABEL</text>`: on this axis 1, 2, 3, 4 and no fraction
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next().map(str::trim))
            .collect();
        for t in ["1", "2", "3", "4"] {
            assert!(labels.contains(&t), "no x tick `{t}` in {labels:?}");
        }
        for t in ["1.5", "2.5", "1.0", "3.5"] {
            assert!(
                !labels.contains(&t),
                "fractional x tick `{t}` in {labels:?}"
            );
        }
    }
}
