//! Curves per epoch: one run's training and validation loss and accuracy, or several runs'
//! validation curves side by side.

use plotters::prelude::*;

use super::figure::Figure;
use super::style::{plot_err, CLASS_COLORS, FONT};
use crate::data::NUM_CLASSES;
use crate::error::{Error, Result};

/// Loss and accuracy per epoch, training and validation in each panel (side by side).
pub fn training_curves(history: &crate::train::History) -> Result<Figure> {
    if history.epochs.is_empty() {
        return Err(Error::param("history", "no epoch to draw"));
    }
    let points = |f: fn(&crate::train::EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history
            .epochs
            .iter()
            .map(|e| (e.epoch as f64, f(e)))
            .collect()
    };
    let loss = line_panel(
        &format!("{} loss", history.model),
        &[
            ("train".into(), points(|e| e.train_loss)),
            ("validation".into(), points(|e| e.val_loss)),
        ],
        SeriesLabelPosition::UpperRight,
    )?;
    let acc = line_panel(
        &format!("{} accuracy", history.model),
        &[
            ("train".into(), points(|e| e.train_accuracy)),
            ("validation".into(), points(|e| e.val_accuracy)),
        ],
        SeriesLabelPosition::LowerRight,
    )?;
    Ok(Figure::hstack(&[loss, acc]))
}

/// Validation loss and accuracy per epoch of several runs, one line per run in each panel
/// (side by side): two recipes, or two settings, on the same images.
pub fn compare_curves(runs: &[(String, crate::train::History)]) -> Result<Figure> {
    if runs.is_empty() || runs.iter().any(|(_, h)| h.epochs.is_empty()) {
        return Err(Error::param(
            "runs",
            "every run to compare needs at least one epoch",
        ));
    }
    let series = |f: fn(&crate::train::EpochRecord) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        runs.iter()
            .map(|(name, h)| {
                let pts = h.epochs.iter().map(|e| (e.epoch as f64, f(e))).collect();
                (name.clone(), pts)
            })
            .collect()
    };
    let loss = line_panel(
        "validation loss",
        &series(|e| e.val_loss),
        SeriesLabelPosition::UpperRight,
    )?;
    let acc = line_panel(
        "validation accuracy",
        &series(|e| e.val_accuracy),
        SeriesLabelPosition::LowerRight,
    )?;
    Ok(Figure::hstack(&[loss, acc]))
}

/// One panel of lines with dots, `(name, [(epoch, value)])` per series in the class colours,
/// the value axis fitted to the finite values, and a legend at `legend`.
fn line_panel(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> Result<Figure> {
    let all = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let xs = series.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    // A single epoch is a dot in the middle of its panel, not on its left edge.
    let (x0, x1) = if x1 - x0 < 1.0 {
        (x0 - 0.5, x0 + 0.5)
    } else {
        (x0, x1)
    };
    let ticks = (x1 - x0).round() as usize + 1;
    Figure::draw(560, 360, |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(ticks.clamp(2, 10))
            .y_labels(6)
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 12))
            .draw()
            .map_err(plot_err)?;
        for (k, (name, pts)) in series.iter().enumerate() {
            let (r, g, b) = CLASS_COLORS[k % NUM_CLASSES];
            let color = RGBColor(r, g, b);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .position(legend)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_curves_draw_both_panels() {
        use crate::train::{EpochRecord, History};
        let rec = |epoch: usize, tl: f64, vl: f64| EpochRecord {
            epoch,
            train_loss: tl,
            train_accuracy: 1.0 - tl / 3.0,
            val_loss: vl,
            val_accuracy: 1.0 - vl / 3.0,
            learning_rate: 1e-3,
            seconds: 1.0,
            images_per_s: 100.0,
        };
        let h = History {
            model: "cnn4".into(),
            epochs: vec![rec(1, 1.0, 0.9), rec(2, 0.6, 0.7), rec(3, 0.4, 0.5)],
            stop_reason: "completed".into(),
        };
        let fig = training_curves(&h).unwrap();
        assert_eq!((fig.width, fig.height), (1120, 360));
        let (r, g, b) = CLASS_COLORS[1];
        let orange = fig.rgb.chunks(3).filter(|p| p == &[r, g, b]).count();
        assert!(
            orange > 100,
            "validation lines drawn in both panels ({orange} pixels)"
        );
        assert!(training_curves(&History::default()).is_err());
        // Two runs compared: both lines in both panels, in the first two class colours.
        let other = History {
            epochs: vec![rec(1, 1.2, 1.1), rec(2, 0.9, 0.8), rec(3, 0.7, 0.6)],
            ..h.clone()
        };
        let both =
            compare_curves(&[("tuned".into(), h.clone()), ("original".into(), other)]).unwrap();
        assert_eq!((both.width, both.height), (1120, 360));
        for k in [0, 1] {
            let (r, g, b) = CLASS_COLORS[k];
            let n = both.rgb.chunks(3).filter(|p| p == &[r, g, b]).count();
            assert!(n > 100, "run {k} drawn ({n} pixels)");
        }
        assert!(compare_curves(&[]).is_err());
        assert!(compare_curves(&[("empty".into(), History::default())]).is_err());
    }
}
