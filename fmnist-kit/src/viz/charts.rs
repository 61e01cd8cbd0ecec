//! Bar charts and scatter plots with one colour per class.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::Figure;
use super::style::{plot_err, CLASS_COLORS, FONT};
use crate::data::{CLASS_NAMES, NUM_CLASSES};
pub(crate) use crate::display::format_value;
use crate::error::{Error, Result};

/// Grouped bars: one group per category, one bar per series.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub categories: Vec<String>,
    /// `(series name, one value per category)`.
    pub series: Vec<(String, Vec<f64>)>,
    pub y_label: String,
    /// Print each bar's value above it.
    pub show_values: bool,
    /// The value the bars rise from [default: 0]; the axis starts there, or lower where a value
    /// lies below it (that bar hangs down from the baseline). A value axis from 0 hides small
    /// differences between large values (log losses of 2.3 to 2.6); a baseline just below the
    /// smallest value shows them.
    pub baseline: Option<f64>,
    pub width: u32,
    pub height: u32,
}

impl Default for BarChart {
    fn default() -> Self {
        BarChart {
            title: String::new(),
            categories: Vec::new(),
            series: Vec::new(),
            y_label: String::new(),
            show_values: true,
            baseline: None,
            width: 720,
            height: 360,
        }
    }
}

impl BarChart {
    /// Draws the chart.
    pub fn draw(&self) -> Result<Figure> {
        let n = self.categories.len();
        if n == 0 || self.series.is_empty() {
            return Err(Error::param(
                "categories",
                "a bar chart needs at least one category and one series",
            ));
        }
        if let Some((name, v)) = self.series.iter().find(|(_, v)| v.len() != n) {
            return Err(Error::param(
                "series",
                format!("series {name:?} has {} values for {n} categories", v.len()),
            ));
        }
        let base = self.baseline.unwrap_or(0.0);
        if !base.is_finite() {
            return Err(Error::param("baseline", format!("{base} is not a number")));
        }
        let (min, max) = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold((base, base), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Headroom above the tallest bar for its value label and, with several series, for
        // the legend in the upper right (about 8% of the height per series), so that neither
        // covers a bar.
        let legend = if self.series.len() > 1 {
            0.08 * self.series.len() as f64
        } else {
            0.0
        };
        let y_max = if max > base {
            base + (max - base) * (1.15 + legend)
        } else {
            base + 1.0
        };
        let y_min = if min < base {
            base - (base - min) * 1.1
        } else {
            base
        };
        let cats = self.categories.clone();
        let k = self.series.len() as f64;
        // A missing value (NaN) has no bar.
        let finite = |v: f64| if v.is_finite() { v } else { base };
        Figure::draw(self.width, self.height, |root| {
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, (FONT, 18))
                .margin(10)
                .x_label_area_size(50)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y_min..y_max)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && i >= 0.0 {
                        cats.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_label_style((FONT, 11))
                .y_label_formatter(&|y| format_value(*y))
                .y_desc(&self.y_label)
                .label_style((FONT, 12))
                .draw()
                .map_err(plot_err)?;
            let group = 0.8;
            let bar = group / k;
            for (s, (name, values)) in self.series.iter().enumerate() {
                let (r, g, b) = CLASS_COLORS[s % NUM_CLASSES];
                let color = RGBColor(r, g, b);
                let left = |i: usize| i as f64 - group / 2.0 + s as f64 * bar;
                chart
                    .draw_series(values.iter().enumerate().map(|(i, &v)| {
                        Rectangle::new(
                            [(left(i), base), (left(i) + bar * 0.95, finite(v))],
                            color.filled(),
                        )
                    }))
                    .map_err(plot_err)?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
                if self.show_values {
                    chart
                        .draw_series(values.iter().enumerate().map(|(i, &v)| {
                            Text::new(
                                format_value(v),
                                (left(i) + bar * 0.475, finite(v).max(base)),
                                (FONT, 10)
                                    .into_font()
                                    .color(&BLACK)
                                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
                            )
                        }))
                        .map_err(plot_err)?;
                }
            }
            if self.series.len() > 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font((FONT, 12))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(plot_err)?;
            }
            Ok(())
        })
    }
}

/// A bar chart's baseline ([`BarChart::baseline`]) a tenth of the values' range below the
/// smallest finite one, so that small differences between large values show.
pub fn baseline_below(values: &[f64]) -> f64 {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return 0.0;
    }
    let span = (hi - lo).max(lo.abs() * 0.01).max(1e-6);
    lo - 0.1 * span
}

/// Points coloured by class, with each class's name written at its median point.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScatter {
    pub title: String,
    pub points: Vec<[f32; 2]>,
    pub labels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Radius of each dot in pixels.
    pub point_size: u32,
}

impl ClassScatter {
    /// A scatter of `points` labelled `labels` with the default size (720 × 620).
    pub fn new(title: impl Into<String>, points: Vec<[f32; 2]>, labels: Vec<u8>) -> ClassScatter {
        ClassScatter {
            title: title.into(),
            points,
            labels,
            width: 720,
            height: 620,
            point_size: 2,
        }
    }

    /// The median point of each class present (`None` for an absent class).
    pub fn class_medians(&self) -> Vec<Option<[f32; 2]>> {
        (0..NUM_CLASSES as u8)
            .map(|c| {
                let mut xs: Vec<f32> = Vec::new();
                let mut ys: Vec<f32> = Vec::new();
                for (p, &l) in self.points.iter().zip(&self.labels) {
                    if l == c {
                        xs.push(p[0]);
                        ys.push(p[1]);
                    }
                }
                if xs.is_empty() {
                    return None;
                }
                let med = |v: &mut Vec<f32>| {
                    v.sort_by(f32::total_cmp);
                    v[v.len() / 2]
                };
                Some([med(&mut xs), med(&mut ys)])
            })
            .collect()
    }

    /// Draws the scatter.
    pub fn draw(&self) -> Result<Figure> {
        if self.points.len() != self.labels.len() {
            return Err(Error::param(
                "labels",
                format!(
                    "{} labels for {} points",
                    self.labels.len(),
                    self.points.len()
                ),
            ));
        }
        if self.points.is_empty() {
            return Err(Error::param("points", "nothing to draw"));
        }
        if self
            .points
            .iter()
            .any(|p| !p[0].is_finite() || !p[1].is_finite())
        {
            return Err(Error::param(
                "points",
                "contain NaN or infinite coordinates",
            ));
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in &self.points {
            x0 = x0.min(p[0]);
            x1 = x1.max(p[0]);
            y0 = y0.min(p[1]);
            y1 = y1.max(p[1]);
        }
        let pad_x = ((x1 - x0) * 0.05).max(1e-3);
        let pad_y = ((y1 - y0) * 0.05).max(1e-3);
        let medians = self.class_medians();
        Figure::draw(self.width, self.height, |root| {
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, (FONT, 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d((x0 - pad_x)..(x1 + pad_x), (y0 - pad_y)..(y1 + pad_y))
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.0}"))
                .label_style((FONT, 11))
                .draw()
                .map_err(plot_err)?;
            let size = self.point_size;
            chart
                .draw_series(self.points.iter().zip(&self.labels).map(|(p, &l)| {
                    let (r, g, b) = CLASS_COLORS[l as usize % NUM_CLASSES];
                    Circle::new((p[0], p[1]), size, RGBColor(r, g, b).mix(0.7).filled())
                }))
                .map_err(plot_err)?;
            for (c, m) in medians.iter().enumerate() {
                if let Some(m) = m {
                    let name = CLASS_NAMES[c];
                    let at = chart.backend_coord(&(m[0], m[1]));
                    let w = name.chars().count() as i32 * 8 + 8;
                    root.draw(&Rectangle::new(
                        [(at.0 - w / 2, at.1 - 10), (at.0 + w / 2, at.1 + 10)],
                        WHITE.mix(0.75).filled(),
                    ))
                    .map_err(plot_err)?;
                    root.draw(&Text::new(
                        name.to_string(),
                        at,
                        (FONT, 15)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    ))
                    .map_err(plot_err)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_chart_checks_its_input() {
        let chart = BarChart {
            title: "t".into(),
            categories: vec!["a".into(), "b".into()],
            series: vec![("s".into(), vec![1.0, 2.0])],
            ..Default::default()
        };
        let fig = chart.draw().unwrap();
        assert_eq!((fig.width, fig.height), (720, 360));
        let bad = BarChart {
            series: vec![("s".into(), vec![1.0])],
            ..chart.clone()
        };
        assert!(bad.draw().unwrap_err().to_string().contains("series"));
        let from_two = BarChart {
            series: vec![("s".into(), vec![2.3, 2.6])],
            baseline: Some(2.2),
            ..chart.clone()
        };
        // With the baseline, the shorter bar is about a quarter of the taller one (0.1 against
        // 0.4 above 2.2); from 0 it would be 0.88 of it.
        let fig = from_two.draw().unwrap();
        let (r, g, b) = CLASS_COLORS[0];
        let half = fig.width as usize / 2;
        let (mut left, mut right) = (0usize, 0usize);
        for (i, p) in fig.rgb.chunks(3).enumerate() {
            if p == [r, g, b] {
                if i % (fig.width as usize) < half {
                    left += 1;
                } else {
                    right += 1;
                }
            }
        }
        let ratio = left as f64 / right as f64;
        assert!((0.15..0.4).contains(&ratio), "bar areas {left} / {right}");
        let nan = BarChart {
            baseline: Some(f64::NAN),
            ..chart
        };
        assert!(nan.draw().unwrap_err().to_string().contains("baseline"));
        assert_eq!(format_value(6000.0), "6,000");
        assert_eq!(format_value(123.0), "123");
    }

    #[test]
    fn scatter_medians_and_colours() {
        let points = vec![
            [0.0, 0.0],
            [1.0, 1.0],
            [2.0, 2.0],
            [10.0, 10.0],
            [11.0, 12.0],
        ];
        let labels = vec![0, 0, 0, 3, 3];
        let s = ClassScatter::new("x", points, labels);
        let med = s.class_medians();
        assert_eq!(med[0], Some([1.0, 1.0]));
        assert_eq!(med[3], Some([11.0, 12.0]));
        assert_eq!(med[5], None);
        let fig = s.draw().unwrap();
        let (r, g, b) = CLASS_COLORS[3];
        let has_class3 = fig.rgb.chunks(3).any(|p| {
            (p[0] as i32 - r as i32).abs() < 40
                && (p[1] as i32 - g as i32).abs() < 40
                && (p[2] as i32 - b as i32).abs() < 40
                && p != [255, 255, 255]
        });
        assert!(has_class3);
        let bad = ClassScatter::new("x", vec![[f32::NAN, 0.0]], vec![0]);
        assert!(bad.draw().is_err());
    }
}
