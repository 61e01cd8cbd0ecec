//! Diagrams of how a network is built, drawn from boxes, arrows and text: the ResNet's two
//! kinds of basic block for notebook 03.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::Figure;
use super::style::{plot_err, CLASS_COLORS, FONT};
use crate::error::Result;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

const BOX_W: i32 = 200;
const BOX_H: i32 = 34;
const STEP: i32 = 56;

/// A labelled box centred at `(cx, y_top + BOX_H / 2)`.
fn layer_box(area: &Area<'_>, cx: i32, y: i32, label: &str, fill: RGBColor) -> Result<()> {
    area.draw(&Rectangle::new(
        [(cx - BOX_W / 2, y), (cx + BOX_W / 2, y + BOX_H)],
        fill.mix(0.25).filled(),
    ))
    .map_err(plot_err)?;
    area.draw(&Rectangle::new(
        [(cx - BOX_W / 2, y), (cx + BOX_W / 2, y + BOX_H)],
        fill.stroke_width(2),
    ))
    .map_err(plot_err)?;
    text(area, cx, y + BOX_H / 2, label, 14)
}

fn text(area: &Area<'_>, x: i32, y: i32, label: &str, size: u32) -> Result<()> {
    area.draw(&Text::new(
        label.to_string(),
        (x, y),
        (FONT, size)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(plot_err)
}

/// An arrow along the points of `path`, its head at the last point.
fn arrow(area: &Area<'_>, path: &[(i32, i32)], color: RGBColor) -> Result<()> {
    area.draw(&PathElement::new(path.to_vec(), color.stroke_width(2)))
        .map_err(plot_err)?;
    if let [.., (x0, y0), (x1, y1)] = path {
        let (dx, dy) = ((x1 - x0) as f64, (y1 - y0) as f64);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let back = |s: f64| {
            (
                (*x1 as f64 - 9.0 * ux + s * 5.0 * uy) as i32,
                (*y1 as f64 - 9.0 * uy - s * 5.0 * ux) as i32,
            )
        };
        area.draw(&Polygon::new(
            vec![(*x1, *y1), back(1.0), back(-1.0)],
            color.filled(),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

/// One basic block: input, two convolutions with batch norm, the sum with the shortcut, ReLU.
/// `projection` draws the shortcut of a block that halves the resolution (a strided 1×1
/// convolution with batch norm) instead of the identity.
fn basic_block(area: &Area<'_>, cx: i32, title: &str, projection: bool) -> Result<()> {
    let main = RGBColor(CLASS_COLORS[0].0, CLASS_COLORS[0].1, CLASS_COLORS[0].2);
    let skip = RGBColor(CLASS_COLORS[1].0, CLASS_COLORS[1].1, CLASS_COLORS[1].2);
    let grey = RGBColor(90, 90, 90);
    text(area, cx, 22, title, 16)?;
    let (c_in, c_out, stride) = if projection {
        ("x: [N, C, H, W]", "2C", ", stride 2")
    } else {
        ("x: [N, C, H, W]", "C", "")
    };
    let y0 = 50;
    text(area, cx, y0 + BOX_H / 2, c_in, 14)?;
    let rows = [
        format!("3×3 conv, {c_out}{stride}"),
        "batch norm, ReLU".to_string(),
        format!("3×3 conv, {c_out}"),
        "batch norm".to_string(),
    ];
    let mut y = y0 + STEP;
    arrow(area, &[(cx, y0 + BOX_H - 6), (cx, y)], grey)?;
    for (i, r) in rows.iter().enumerate() {
        layer_box(area, cx, y, r, main)?;
        if i + 1 < rows.len() {
            arrow(area, &[(cx, y + BOX_H), (cx, y + STEP)], grey)?;
        }
        y += STEP;
    }
    // The sum, then the block's ReLU.
    let sum_y = y + BOX_H / 2;
    arrow(area, &[(cx, y - STEP + BOX_H), (cx, sum_y - 14)], grey)?;
    area.draw(&Circle::new((cx, sum_y), 14, grey.stroke_width(2)))
        .map_err(plot_err)?;
    text(area, cx, sum_y, "+", 20)?;
    let out_y = sum_y + 44;
    arrow(area, &[(cx, sum_y + 14), (cx, out_y - 12)], grey)?;
    text(
        area,
        cx,
        out_y,
        &format!(
            "ReLU → [N, {c_out}, {}]",
            if projection { "H/2, W/2" } else { "H, W" }
        ),
        14,
    )?;
    // The shortcut, to the right of the main path.
    let sx = cx + BOX_W / 2 + if projection { 84 } else { 40 };
    let start = (cx + 70, y0 + BOX_H / 2);
    if projection {
        let mid = (y0 + sum_y) / 2 - BOX_H / 2;
        arrow(area, &[start, (sx, start.1), (sx, mid)], skip)?;
        area.draw(&Rectangle::new(
            [(sx - 62, mid), (sx + 62, mid + BOX_H)],
            skip.mix(0.25).filled(),
        ))
        .map_err(plot_err)?;
        area.draw(&Rectangle::new(
            [(sx - 62, mid), (sx + 62, mid + BOX_H)],
            skip.stroke_width(2),
        ))
        .map_err(plot_err)?;
        text(area, sx, mid + BOX_H / 2 - 7, "1×1 conv, 2C,", 12)?;
        text(area, sx, mid + BOX_H / 2 + 7, "stride 2; BN", 12)?;
        arrow(
            area,
            &[(sx, mid + BOX_H), (sx, sum_y), (cx + 14, sum_y)],
            skip,
        )?;
    } else {
        arrow(
            area,
            &[start, (sx, start.1), (sx, sum_y), (cx + 14, sum_y)],
            skip,
        )?;
        text(area, sx + 30, (y0 + sum_y) / 2, "identity", 13)?;
    }
    Ok(())
}

/// The ResNet's two kinds of basic block side by side: one that keeps the shape (identity
/// shortcut) and one that starts a stage, halving the resolution and doubling the channels (a
/// strided 1×1 convolution on the shortcut). Both return `relu(F(x) + shortcut(x))`.
pub fn residual_block_diagram() -> Result<Figure> {
    Figure::draw(900, 420, |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(450);
        basic_block(&left, 170, "basic block (same shape)", false)?;
        basic_block(&right, 170, "first block of a stage", true)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_diagram_draws_both_blocks_and_their_shortcuts() {
        let fig = residual_block_diagram().unwrap();
        assert_eq!((fig.width, fig.height), (900, 420));
        let count = |(r, g, b): (u8, u8, u8), from: usize, to: usize| {
            fig.rgb
                .chunks(3)
                .enumerate()
                .filter(|(i, p)| {
                    let x = i % fig.width as usize;
                    (from..to).contains(&x) && *p == [r, g, b]
                })
                .count()
        };
        // Each half has its main path's box outlines and its shortcut drawn in its colours.
        for (from, to) in [(0, 450), (450, 900)] {
            assert!(
                count(CLASS_COLORS[0], from, to) > 500,
                "main path in {from}..{to}"
            );
            assert!(
                count(CLASS_COLORS[1], from, to) > 300,
                "shortcut in {from}..{to}"
            );
        }
    }
}
