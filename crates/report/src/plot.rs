//! Charts as SVG strings, drawn by plotters' SVG backend.
//!
//! Text is emitted as SVG `<text>` elements in the browser's sans-serif
//! font: plotters is built without a font feature, so it lays labels out
//! with its built-in width estimate and embeds or fetches no font.
//! Categorical axes are numeric axes from -0.5 to n - 0.5 whose whole
//! numbers are labelled with the category names, so that one chart type
//! serves grouped bars and heatmaps. Log scales plot log10 of the value and
//! label the whole powers of ten.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

/// Colours of the series, in order: label 0 first, then label 1.
pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

const FONT: &str = "sans-serif";
const WIDTH: u32 = 620;
const HEIGHT: u32 = 380;

/// A named series of points or values.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Line chart on linear axes.
pub(crate) struct Lines<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub series: &'a [Series],
    /// Draw the y = x diagonal (a ROC curve's chance line).
    pub diagonal: bool,
    pub legend: SeriesLabelPosition,
}

/// Bars over numeric bins of width `bin_width` starting at each point's x,
/// groups drawn over each other, translucent.
pub(crate) struct Histogram<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub bin_width: f64,
    pub groups: &'a [Series],
    pub log_y: bool,
    /// Vertical lines with their legend text (thresholds).
    pub markers: &'a [(f64, String)],
}

/// Bars over categories, groups side by side.
pub(crate) struct Bars<'a> {
    pub title: &'a str,
    pub value_desc: &'a str,
    pub categories: &'a [String],
    /// One value per category in each group.
    pub groups: &'a [(String, Vec<f64>)],
    /// Categories down the y axis (long names), first at the top.
    pub horizontal: bool,
    pub log: bool,
}

/// A matrix of cells coloured by value, each with its text.
pub(crate) struct Heatmap<'a> {
    pub title: &'a str,
    pub rows: &'a [String],
    pub cols: &'a [String],
    /// Row-major; `None` draws a grey cell.
    pub values: &'a [Vec<Option<f64>>],
    pub text: &'a [Vec<String>],
    /// Values mapped onto the colour scale; below or above are clamped.
    pub range: (f64, f64),
    /// Blue below the middle of the range, red above; else white to red.
    pub diverging: bool,
    pub col_label_rotate: bool,
}

fn plot_err(chart: &str) -> impl Fn(DrawingAreaErrorKind<std::io::Error>) -> Error + '_ {
    move |source| Error::Plot {
        chart: chart.to_string(),
        source,
    }
}

/// The series labels every chart draws, at `position` on a light box.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<std::io::Error>> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
}

/// Runs `draw` on a fresh SVG canvas and returns the SVG text.
fn svg(
    title: &str,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err(title))?;
        draw(&root).map_err(plot_err(title))?;
        root.present().map_err(plot_err(title))?;
    }
    Ok(out)
}

/// A range padded to be non-empty.
fn padded(lo: f64, hi: f64) -> Range<f64> {
    if hi > lo {
        lo..hi
    } else {
        lo - 0.5..lo + 0.5
    }
}

/// `10^k` labels for the whole numbers of a log10 axis.
fn power_label(v: f64) -> String {
    if (v - v.round()).abs() > 1e-9 {
        return String::new();
    }
    let x = 10f64.powi(v.round() as i32);
    compact(x)
}

/// A short form of a count or size: 950, 12k, 3.4M.
pub(crate) fn compact(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{}G", trim(x / 1e9))
    } else if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The category label at a whole-number position.
fn category(names: &[String], v: f64) -> String {
    if (v - v.round()).abs() > 1e-9 || v.round() < 0.0 {
        return String::new();
    }
    names.get(v.round() as usize).cloned().unwrap_or_default()
}

/// Pixels for the longest of `names` as an axis label (14-point text is
/// drawn at 11.3 px, about 7 px a character).
fn label_px(names: &[String]) -> u32 {
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as u32;
    (longest * 7 + 14).clamp(40, 300)
}

pub(crate) fn lines(spec: &Lines<'_>) -> Result<String> {
    svg(spec.title, (WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(spec.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(spec.x.clone(), spec.y.clone())?;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        if spec.diagonal {
            let lo = spec.x.start.max(spec.y.start);
            let hi = spec.x.end.min(spec.y.end);
            chart.draw_series(DashedLineSeries::new(
                vec![(lo, lo), (hi, hi)],
                4,
                4,
                RGBColor(150, 150, 150).stroke_width(1),
            ))?;
        }
        for (i, s) in spec.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, spec.legend.clone())?;
        Ok(())
    })
}

pub(crate) fn histogram(spec: &Histogram<'_>) -> Result<String> {
    let transform = |v: f64| if spec.log_y { v.log10() } else { v };
    let visible = |v: f64| !spec.log_y || v > 0.0;
    let xs = spec
        .groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| p.0));
    let x_lo = xs.clone().fold(f64::INFINITY, f64::min);
    let x_hi = xs.fold(f64::NEG_INFINITY, f64::max) + spec.bin_width;
    let x_lo = spec.markers.iter().map(|m| m.0).fold(x_lo, f64::min);
    let x_hi = spec.markers.iter().map(|m| m.0).fold(x_hi, f64::max);
    let ys = spec
        .groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| p.1))
        .filter(|v| visible(*v));
    let y_max = ys.clone().fold(f64::NEG_INFINITY, f64::max);
    let y_min = ys.fold(f64::INFINITY, f64::min);
    let (base, top) = if spec.log_y {
        (transform(y_min).floor(), transform(y_max).ceil().max(1.0))
    } else {
        (0.0, y_max * 1.08)
    };
    let (x_range, y_range) = if x_lo.is_finite() && y_max.is_finite() {
        (padded(x_lo, x_hi), padded(base, top))
    } else {
        (0.0..1.0, 0.0..1.0)
    };
    svg(spec.title, (WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(spec.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(x_range, y_range.clone())?;
        let log_y = spec.log_y;
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .y_label_formatter(&|v: &f64| if log_y { power_label(*v) } else { compact(*v) })
            .draw()?;
        for (i, g) in spec.groups.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let w = spec.bin_width;
            let bars = g
                .points
                .iter()
                .filter(|p| visible(p.1))
                .map(move |&(x, v)| {
                    Rectangle::new(
                        [(x, y_range.start), (x + w, transform(v))],
                        color.mix(0.45).filled(),
                    )
                });
            chart
                .draw_series(bars)?
                .label(g.name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.mix(0.6).filled())
                });
        }
        for (i, (x, name)) in spec.markers.iter().enumerate() {
            let color = PALETTE[(spec.groups.len() + i) % PALETTE.len()];
            let (lo, hi) = (base, top);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(*x, lo), (*x, hi)],
                    5,
                    3,
                    color.stroke_width(2),
                ))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperMiddle)?;
        Ok(())
    })
}

pub(crate) fn bars(spec: &Bars<'_>) -> Result<String> {
    let n = spec.categories.len().max(1);
    let transform = |v: f64| if spec.log { v.log10() } else { v };
    let visible = |v: f64| !spec.log || v > 0.0;
    let values = spec
        .groups
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .filter(|v| visible(*v));
    let v_max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    let v_min = values.fold(f64::INFINITY, f64::min);
    let (base, top) = if !v_max.is_finite() {
        (0.0, 1.0)
    } else if spec.log {
        (
            transform(v_min).floor().min(0.0),
            transform(v_max).ceil().max(1.0),
        )
    } else {
        (0.0, if v_max > 0.0 { v_max * 1.08 } else { 1.0 })
    };
    let cats = -0.5..n as f64 - 0.5;
    let label_area = label_px(spec.categories);
    let per_bar = (spec.groups.len().max(1) * 14 + 8) as u32;
    let (size, cat_area, val_area) = if spec.horizontal {
        let h = (n as u32 * per_bar + 110).clamp(200, 900);
        ((WIDTH, h), label_area, 40)
    } else {
        ((WIDTH, HEIGHT), 40, 52)
    };
    // Label only as many categories as fit along the axis.
    let step = if spec.horizontal {
        1
    } else {
        let fit = ((WIDTH - 80) / label_area.min(90)).max(1) as usize;
        n.div_ceil(fit).max(1)
    };
    let names: Vec<String> = spec
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i % step == 0 {
                c.clone()
            } else {
                String::new()
            }
        })
        .collect();
    svg(spec.title, size, |root| {
        let builder = &mut ChartBuilder::on(root);
        builder.caption(spec.title, (FONT, 20)).margin(12);
        let (log, cat_names) = (spec.log, &names);
        let value_label = move |v: &f64| if log { power_label(*v) } else { compact(*v) };
        let cat_label = move |v: &f64| category(cat_names, *v);
        let groups = spec.groups.len().max(1) as f64;
        let width = 0.8 / groups;
        let slot = |i: usize, gi: usize| -0.4 + i as f64 + gi as f64 * width;
        if spec.horizontal {
            // Category i at y = n - 1 - i, so the first is drawn at the top.
            let mut chart = builder
                .x_label_area_size(val_area)
                .y_label_area_size(cat_area)
                .build_cartesian_2d(base..top, cats)?;
            chart
                .configure_mesh()
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 14))
                .x_desc(spec.value_desc)
                .y_labels(n * 2 + 1)
                .y_label_formatter(&|v: &f64| cat_label(&(n as f64 - 1.0 - v)))
                .x_label_formatter(&value_label)
                .disable_y_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for (gi, (name, vals)) in spec.groups.iter().enumerate() {
                let color = PALETTE[gi % PALETTE.len()];
                let rects = vals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| visible(**v))
                    .map(|(i, &v)| {
                        let y0 = slot(n - 1 - i, groups as usize - 1 - gi);
                        Rectangle::new([(base, y0), (transform(v), y0 + width)], color.filled())
                    });
                let series = chart.draw_series(rects)?;
                if spec.groups.len() > 1 {
                    series.label(name.as_str()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                    });
                }
            }
            if spec.groups.len() > 1 {
                legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            }
        } else {
            let mut chart = builder
                .x_label_area_size(cat_area)
                .y_label_area_size(val_area)
                .build_cartesian_2d(cats, base..top)?;
            chart
                .configure_mesh()
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 14))
                .y_desc(spec.value_desc)
                .x_labels(n * 2 + 1)
                .x_label_formatter(&cat_label)
                .y_label_formatter(&value_label)
                .disable_x_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for (gi, (name, vals)) in spec.groups.iter().enumerate() {
                let color = PALETTE[gi % PALETTE.len()];
                let rects = vals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| visible(**v))
                    .map(|(i, &v)| {
                        let x0 = slot(i, gi);
                        Rectangle::new([(x0, base), (x0 + width, transform(v))], color.filled())
                    });
                let series = chart.draw_series(rects)?;
                if spec.groups.len() > 1 {
                    series.label(name.as_str()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                    });
                }
            }
            if spec.groups.len() > 1 {
                legend(&mut chart, SeriesLabelPosition::UpperRight)?;
            }
        }
        Ok(())
    })
}

/// The colour of `v` on the heatmap's scale.
fn shade(v: f64, (lo, hi): (f64, f64), diverging: bool) -> RGBColor {
    let t = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let mix = |a: (f64, f64, f64), b: (f64, f64, f64), t: f64| {
        RGBColor(
            (a.0 + (b.0 - a.0) * t).round() as u8,
            (a.1 + (b.1 - a.1) * t).round() as u8,
            (a.2 + (b.2 - a.2) * t).round() as u8,
        )
    };
    let white = (255.0, 255.0, 255.0);
    // Ends light enough for black cell text to stay readable.
    let red = (232.0, 96.0, 84.0);
    let blue = (86.0, 156.0, 206.0);
    if !diverging {
        mix(white, red, t)
    } else if t < 0.5 {
        mix(blue, white, t * 2.0)
    } else {
        mix(white, red, (t - 0.5) * 2.0)
    }
}

pub(crate) fn heatmap(spec: &Heatmap<'_>) -> Result<String> {
    let (nr, nc) = (spec.rows.len().max(1), spec.cols.len().max(1));
    let row_area = label_px(spec.rows);
    let col_area = if spec.col_label_rotate {
        label_px(spec.cols)
    } else {
        40
    };
    let cell = ((WIDTH - row_area - 40) / nc as u32).clamp(36, 90);
    let size = (
        (row_area + cell * nc as u32 + 40).max(360),
        (col_area + 34 * nr as u32 + 70).max(220),
    );
    svg(spec.title, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(spec.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(col_area)
            .y_label_area_size(row_area)
            .build_cartesian_2d(-0.5..nc as f64 - 0.5, -0.5..nr as f64 - 0.5)?;
        let cols = spec.cols;
        let rows = spec.rows;
        let col_style = if spec.col_label_rotate {
            TextStyle::from((FONT, 12).into_font())
                .transform(FontTransform::Rotate90)
                .pos(Pos::new(HPos::Left, VPos::Center))
        } else {
            TextStyle::from((FONT, 12).into_font())
        };
        chart
            .configure_mesh()
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .disable_mesh()
            .x_labels(nc * 2 + 1)
            .y_labels(nr * 2 + 1)
            .x_label_style(col_style)
            .x_label_formatter(&|v: &f64| category(cols, *v))
            .y_label_formatter(&|v: &f64| category(rows, nr as f64 - 1.0 - v))
            .draw()?;
        let mut cells = Vec::new();
        for (r, row) in spec.values.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let y = (nr - 1 - r) as f64;
                let fill = v.map_or(RGBColor(220, 220, 220), |v| {
                    shade(v, spec.range, spec.diverging)
                });
                cells.push(Rectangle::new(
                    [(c as f64 - 0.5, y - 0.5), (c as f64 + 0.5, y + 0.5)],
                    fill.filled(),
                ));
            }
        }
        chart.draw_series(cells)?;
        let centered =
            TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        let mut labels = Vec::new();
        for (r, row) in spec.text.iter().enumerate() {
            for (c, t) in row.iter().enumerate() {
                let y = (nr - 1 - r) as f64;
                labels.push(Text::new(t.clone(), (c as f64, y), centered.clone()));
            }
        }
        chart.draw_series(labels)?;
        Ok(())
    })
}

/// Keeps a curve's points that move at least `step` along either axis from
/// the last kept one, and the last point: a ROC curve of 250,000 distinct
/// scores draws the same at a thousandth of the points.
pub(crate) fn thin(points: &[(f64, f64)], step: f64) -> Vec<(f64, f64)> {
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        let far = kept
            .last()
            .is_none_or(|&(x, y)| (p.0 - x).abs() >= step || (p.1 - y).abs() >= step);
        if far || i + 1 == points.len() {
            kept.push(p);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_keeps_ends_and_moves() {
        let points: Vec<(f64, f64)> = (0..=1000).map(|i| (i as f64 / 1000.0, 0.0)).collect();
        let kept = thin(&points, 0.01);
        assert_eq!(kept.first(), Some(&(0.0, 0.0)));
        assert_eq!(kept.last(), Some(&(1.0, 0.0)));
        assert!(kept.len() >= 100 && kept.len() <= 102, "{}", kept.len());
    }

    #[test]
    fn labels_and_compact_numbers() {
        assert_eq!(power_label(3.0), "1k");
        assert_eq!(power_label(0.0), "1");
        assert_eq!(power_label(0.5), "");
        assert_eq!(compact(1_250_000.0), "1.25M");
        assert_eq!(compact(0.25), "0.25");
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(category(&names, 1.0), "b");
        assert_eq!(category(&names, 0.5), "");
        assert_eq!(category(&names, -1.0), "");
    }

    #[test]
    fn charts_are_svg_with_their_text() {
        let series = [Series {
            name: "dedup (AUC 0.900000)".to_string(),
            points: vec![(0.0, 0.0), (0.2, 0.8), (1.0, 1.0)],
        }];
        let svg = lines(&Lines {
            title: "ROC <test>",
            x_desc: "false-positive rate",
            y_desc: "true-positive rate",
            x: 0.0..1.0,
            y: 0.0..1.0,
            series: &series,
            diagonal: true,
            legend: SeriesLabelPosition::LowerRight,
        })
        .expect("draw");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("dedup (AUC 0.900000)"));
        // Titles are escaped by the backend.
        assert!(svg.contains("ROC &lt;test&gt;"));
        assert!(svg.contains("font-family=\"sans-serif\""));
    }

    #[test]
    fn shade_spans_the_scale() {
        assert_eq!(shade(-1.0, (-1.0, 1.0), true), RGBColor(86, 156, 206));
        assert_eq!(shade(0.0, (-1.0, 1.0), true), RGBColor(255, 255, 255));
        assert_eq!(shade(5.0, (0.0, 1.0), false), RGBColor(232, 96, 84));
    }
}
