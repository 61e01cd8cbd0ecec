//! The learning-rate finder's figure, as fastai draws it: the smoothed training loss against the
//! rate on a log scale, with the suggested rate and the rate of the lowest loss marked.

use plotters::prelude::*;

use super::figure::Figure;
use super::style::{plot_err, CLASS_COLORS, FONT};
use crate::error::{Error, Result};
use crate::train::LrFinder;

/// The loss (raw, light; smoothed, bold) against log10 of the rate, with the steepest-descent
/// suggestion and the lowest loss marked by vertical lines.
pub fn lr_finder_figure(found: &LrFinder) -> Result<Figure> {
    if found.rates.len() < 2 {
        return Err(Error::param("lr_finder", "fewer than two steps to draw"));
    }
    let xs: Vec<f64> = found.rates.iter().map(|r| r.log10()).collect();
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    // The y range: from the lowest loss, raw or smoothed, up to a little above the first smoothed
    // loss (the raw losses of the last steps can be huge, and are clipped).
    let lo = found
        .smoothed
        .iter()
        .chain(&found.losses)
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::MAX, f64::min);
    let first = found.smoothed[0];
    let hi = found
        .smoothed
        .iter()
        .copied()
        .fold(first, f64::max)
        .min(first.max(lo) * 1.5 + 1e-3);
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let marks: Vec<(String, f64, (u8, u8, u8))> = [
        found
            .steepest()
            .map(|r| (format!("steepest: {r:.1e}"), r, CLASS_COLORS[3])),
        found
            .min_loss_rate()
            .map(|r| (format!("lowest loss: {r:.1e}"), r, CLASS_COLORS[6])),
    ]
    .into_iter()
    .flatten()
    .collect();
    Figure::draw(640, 380, |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{}: learning-rate finder", found.model), (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("learning rate (log scale)")
            .y_desc("training loss")
            .x_labels(((x1 - x0).ceil() as usize + 1).clamp(2, 12))
            .y_labels(6)
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| format!("1e{:.0}", v.round()))
            .label_style((FONT, 12))
            .draw()
            .map_err(plot_err)?;
        let (r, g, b) = CLASS_COLORS[0];
        let raw = RGBColor(r, g, b).mix(0.3);
        let clip = |v: f64| v.clamp(lo - pad, hi + pad);
        chart
            .draw_series(LineSeries::new(
                xs.iter().zip(&found.losses).map(|(&x, &l)| (x, clip(l))),
                raw.stroke_width(1),
            ))
            .map_err(plot_err)?
            .label("batch loss")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], raw.stroke_width(1)));
        let bold = RGBColor(r, g, b);
        chart
            .draw_series(LineSeries::new(
                xs.iter().zip(&found.smoothed).map(|(&x, &l)| (x, clip(l))),
                bold.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label("smoothed")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], bold.stroke_width(2))
            });
        for (label, rate, (r, g, b)) in &marks {
            let color = RGBColor(*r, *g, *b);
            let x = rate.log10();
            chart
                .draw_series(LineSeries::new(
                    vec![(x, lo - pad), (x, hi + pad)],
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })
}
