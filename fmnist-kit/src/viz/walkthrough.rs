//! The figures the notebooks show, built on the drawing primitives: class samples and means,
//! the class balance of the sets and of a split, augmentation rows, random-erasing grid,
//! confusion heatmap, prediction and probability galleries.

use super::charts::{baseline_below, format_value, BarChart};
use super::figure::Figure;
use super::image_grid::{image_grid, ImageGridConfig, ImageTile};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{plot_err, FONT};
use crate::data::{self, ImageSet, CLASS_NAMES, IMAGE_SIDE, NUM_CLASSES};
use crate::error::{Error, Result};

/// `per_class` examples of every class, one row per class labelled with its name
/// (the first examples of each class in `set`'s order).
pub fn class_samples_grid(set: &ImageSet, per_class: usize) -> Result<Figure> {
    if per_class == 0 {
        return Err(Error::param("per_class", "must be at least 1"));
    }
    let mut tiles = Vec::with_capacity(per_class * NUM_CLASSES);
    let mut labels = Vec::new();
    for class in 0..NUM_CLASSES {
        let idx = set.indices_of_class(class as u8, per_class);
        if idx.len() < per_class {
            return Err(Error::param(
                "per_class",
                format!(
                    "class {} has only {} images, {per_class} asked",
                    CLASS_NAMES[class],
                    idx.len()
                ),
            ));
        }
        for i in idx {
            tiles.push(ImageTile::from_u8(set.image(i).unwrap_or(&[]), "")?);
        }
        labels.push(CLASS_NAMES[class].to_string());
    }
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns: per_class,
            scale: 2,
            title: Some(format!("{per_class} training images per class")),
            row_labels: labels,
            inverted: true,
        },
    )
}

/// The mean image of each class (pixel-wise average over `set`), titled with the class name.
pub fn class_mean_grid(set: &ImageSet) -> Result<Figure> {
    let tiles = set
        .class_mean_images()
        .into_iter()
        .enumerate()
        .map(|(c, m)| ImageTile::from_f32(m, IMAGE_SIDE, IMAGE_SIDE, CLASS_NAMES[c]))
        .collect::<Result<Vec<_>>>()?;
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns: 5,
            scale: 4,
            title: Some(format!("Mean image per class ({} images)", set.len())),
            row_labels: Vec::new(),
            inverted: true,
        },
    )
}

/// Bars of images per class for the training and test sets, side by side.
pub fn class_balance(train: &ImageSet, test: &ImageSet) -> Result<Figure> {
    let cats: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let panel = |title: &str, set: &ImageSet| {
        BarChart {
            title: format!("{title}: {} images", format_value(set.len() as f64)),
            categories: cats.clone(),
            series: vec![(
                title.to_string(),
                set.class_counts().iter().map(|&c| c as f64).collect(),
            )],
            y_label: "images".into(),
            width: 620,
            height: 340,
            ..Default::default()
        }
        .draw()
    };
    Ok(Figure::hstack(&[
        panel("train", train)?,
        panel("test", test)?,
    ]))
}

/// Images per class in the two parts of a training/validation split, side by side. A random
/// split is not exactly balanced; each panel's axis starts just below its smallest count, so the
/// differences between classes show (the title gives the range).
pub fn split_balance(split: &data::TrainValidationSplit) -> Result<Figure> {
    let cats: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let panel = |title: &str, set: &ImageSet| {
        let counts: Vec<f64> = set.class_counts().iter().map(|&c| c as f64).collect();
        let (lo, hi) = counts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &c| (a.min(c), b.max(c)));
        let base = baseline_below(&counts).floor().max(0.0);
        BarChart {
            title: format!(
                "{title}: {} images, {}–{} per class (axis from {})",
                format_value(set.len() as f64),
                format_value(lo),
                format_value(hi),
                format_value(base)
            ),
            categories: cats.clone(),
            series: vec![(title.to_string(), counts)],
            y_label: "images".into(),
            baseline: Some(base),
            width: 620,
            height: 340,
            ..Default::default()
        }
        .draw()
    };
    Ok(Figure::hstack(&[
        panel("training split", &split.train)?,
        panel("validation split", &split.validation)?,
    ]))
}

/// One row per `(name, config)`: the same images of `set` passed through each augmentation.
pub fn augmentation_rows(
    set: &ImageSet,
    rows: &[(String, crate::augment::AugmentConfig)],
    seed: u64,
) -> Result<Figure> {
    if set.is_empty() || rows.is_empty() {
        return Err(Error::param(
            "set",
            "need at least one image and one augmentation",
        ));
    }
    let x = set.images_tensor();
    let mut tiles = Vec::new();
    for (r, (_, cfg)) in rows.iter().enumerate() {
        let mut aug = crate::augment::Augmenter::new(cfg.clone(), seed.wrapping_add(r as u64))?;
        let y = aug.apply(&x)?;
        let flat: Vec<f32> = Vec::<f32>::try_from(y.flatten(0, -1))?;
        for (i, px) in flat.chunks(IMAGE_SIDE * IMAGE_SIDE).enumerate() {
            let title = if r == 0 {
                CLASS_NAMES[set.labels[i] as usize % NUM_CLASSES].to_string()
            } else {
                String::new()
            };
            tiles.push(ImageTile::from_f32(
                px.to_vec(),
                IMAGE_SIDE,
                IMAGE_SIDE,
                title,
            )?);
        }
    }
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns: set.len(),
            scale: 3,
            title: Some("The same training images through each augmentation".into()),
            row_labels: rows.iter().map(|(n, _)| n.clone()).collect(),
            inverted: true,
        },
    )
}

/// A `side × side` grid of one image erased `side²` times with `erasing`.
pub fn erasing_grid(
    image: &ImageSet,
    erasing: &crate::augment::RandomErasing,
    side: usize,
    seed: u64,
) -> Result<Figure> {
    if image.is_empty() || side == 0 {
        return Err(Error::param(
            "image",
            "need one image and a grid side of at least 1",
        ));
    }
    let one = image.first(1);
    let n = (side * side) as i64;
    let x = one
        .images_tensor()
        .expand([n, 1, 28, 28], false)
        .contiguous();
    let cfg = crate::augment::AugmentConfig {
        erasing: Some(erasing.clone()),
        ..Default::default()
    };
    let (y, boxes) = crate::augment::Augmenter::new(cfg, seed)?.apply_recorded(&x)?;
    let flat: Vec<f32> = Vec::<f32>::try_from(y.flatten(0, -1))?;
    let tiles = flat
        .chunks(IMAGE_SIDE * IMAGE_SIDE)
        .enumerate()
        .map(|(i, px)| {
            let title = if boxes.applied.get(i).copied().unwrap_or(false) {
                format!("{}×{} box", boxes.height[i], boxes.width[i])
            } else {
                "not erased".to_string()
            };
            ImageTile::from_f32(px.to_vec(), IMAGE_SIDE, IMAGE_SIDE, title)
        })
        .collect::<Result<Vec<_>>>()?;
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns: side,
            scale: 4,
            title: Some(format!(
                "Random erasing: p {}, area {}–{}, aspect {}–{}",
                erasing.p, erasing.area.0, erasing.area.1, erasing.aspect.0, erasing.aspect.1
            )),
            row_labels: Vec::new(),
            inverted: true,
        },
    )
}

/// A confusion matrix (`[true][predicted]` counts) as a heatmap: colour by the row-normalised
/// share, each cell annotated with its count and share, class names on both axes; text turns
/// white on dark cells.
pub fn confusion_heatmap(
    matrix: &[[u64; NUM_CLASSES]; NUM_CLASSES],
    title: &str,
) -> Result<Figure> {
    let shares = crate::metrics::normalize_rows(matrix);
    let (cell, left, top) = (74i32, 140i32, 56i32);
    let width = (left + cell * NUM_CLASSES as i32 + 16) as u32;
    let height = (top + cell * NUM_CLASSES as i32 + 56) as u32;
    Figure::draw(width, height, |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let text = |s: String, at: (i32, i32), size: u32, color: RGBColor, pos: Pos| {
            root.draw(&Text::new(
                s,
                at,
                (FONT, size).into_font().color(&color).pos(pos),
            ))
            .map_err(plot_err)
        };
        text(
            title.to_string(),
            (width as i32 / 2, 8),
            18,
            BLACK,
            Pos::new(HPos::Center, VPos::Top),
        )?;
        text(
            "predicted class (columns) →".into(),
            (left + cell * 5, top - 22),
            13,
            BLACK,
            Pos::new(HPos::Center, VPos::Center),
        )?;
        text(
            "true class (rows) ↓".into(),
            (left - 4, top - 22),
            13,
            BLACK,
            Pos::new(HPos::Right, VPos::Center),
        )?;
        for (t, row) in matrix.iter().enumerate() {
            let y0 = top + cell * t as i32;
            text(
                CLASS_NAMES[t].into(),
                (left - 6, y0 + cell / 2),
                12,
                BLACK,
                Pos::new(HPos::Right, VPos::Center),
            )?;
            for (p, &count) in row.iter().enumerate() {
                let x0 = left + cell * p as i32;
                let share = shares[t][p];
                // White → dark blue, like matplotlib's "Blues".
                let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * share).round() as u8;
                let color = RGBColor(mix(247, 8), mix(251, 48), mix(255, 107));
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    color.filled(),
                ))
                .map_err(plot_err)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    RGBColor(200, 200, 200),
                ))
                .map_err(plot_err)?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                text(
                    count.to_string(),
                    (x0 + cell / 2, y0 + cell / 2 - 8),
                    14,
                    ink,
                    Pos::new(HPos::Center, VPos::Center),
                )?;
                text(
                    format!("{:.1}%", share * 100.0),
                    (x0 + cell / 2, y0 + cell / 2 + 10),
                    11,
                    ink,
                    Pos::new(HPos::Center, VPos::Center),
                )?;
            }
        }
        for (p, name) in CLASS_NAMES.iter().enumerate() {
            text(
                name.to_string(),
                (
                    left + cell * p as i32 + cell / 2,
                    top + cell * NUM_CLASSES as i32 + 6,
                ),
                11,
                BLACK,
                Pos::new(HPos::Center, VPos::Top),
            )?;
        }
        text(
            "each cell: images of the row's true class predicted as the column's, count and share of the row".into(),
            (left + cell * 5, top + cell * NUM_CLASSES as i32 + 32),
            12,
            BLACK,
            Pos::new(HPos::Center, VPos::Top),
        )?;
        Ok(())
    })
}

/// Test images with the network's answer and its probability, and the true class with the
/// probability it got, e.g. "shirt 0.91 / true T-shirt/top 0.05". With
/// [`crate::metrics::Predictions::top_losses`] this is fastai's `plot_top_losses`.
pub fn probability_gallery(
    set: &ImageSet,
    predictions: &crate::metrics::Predictions,
    indices: &[usize],
    columns: usize,
    title: &str,
) -> Result<Figure> {
    gallery(set, indices, columns, 4, title, |i| {
        let (Some(&p), Some(probs), Some(&truth)) = (
            predictions.predicted.get(i),
            predictions.probabilities.get(i),
            set.labels.get(i),
        ) else {
            return Err(Error::param(
                "indices",
                format!(
                    "index {i} is past the end ({} images, {} predictions)",
                    set.len(),
                    predictions.predicted.len()
                ),
            ));
        };
        let prob = |c: u8| probs.get(c as usize).copied().unwrap_or(f64::NAN);
        Ok(if p == truth {
            format!("{} {:.2}", data::class_name(p as usize), prob(p))
        } else {
            format!(
                "{} {:.2} / true {} {:.2}",
                data::class_name(p as usize),
                prob(p),
                data::class_name(truth as usize),
                prob(truth)
            )
        })
    })
}

/// Images of `set` at `indices`, each titled "pred X / true Y" with class names, `columns` per row.
pub fn prediction_gallery(
    set: &ImageSet,
    indices: &[usize],
    predicted: &[u8],
    columns: usize,
    title: &str,
) -> Result<Figure> {
    gallery(set, indices, columns, 3, title, |i| {
        let Some(&p) = predicted.get(i) else {
            return Err(Error::param(
                "indices",
                format!("index {i} is past the end ({} images)", set.len()),
            ));
        };
        Ok(format!(
            "pred {} / true {}",
            data::class_name(p as usize),
            data::class_name(set.labels[i] as usize)
        ))
    })
}

/// The images of `set` at `indices`, dark on white, `columns` per row and `scale` screen pixels
/// per image pixel, each titled by `tile_title(index)`.
fn gallery(
    set: &ImageSet,
    indices: &[usize],
    columns: usize,
    scale: u32,
    title: &str,
    tile_title: impl Fn(usize) -> Result<String>,
) -> Result<Figure> {
    if indices.is_empty() {
        return Err(Error::param("indices", "no image to show"));
    }
    let tiles = indices
        .iter()
        .map(|&i| {
            let px = set.image(i).ok_or_else(|| {
                Error::param(
                    "indices",
                    format!("index {i} is past the end ({} images)", set.len()),
                )
            })?;
            ImageTile::from_u8(px, tile_title(i)?)
        })
        .collect::<Result<Vec<_>>>()?;
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns,
            scale,
            title: Some(title.to_string()),
            row_labels: Vec::new(),
            inverted: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_and_gallery() {
        let mut m = [[0u64; NUM_CLASSES]; NUM_CLASSES];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = 90;
            row[(i + 1) % NUM_CLASSES] = 10;
        }
        let fig = confusion_heatmap(&m, "test").unwrap();
        // A diagonal cell is dark blue (share 0.9), an off-diagonal zero cell is near white.
        let (cell, left, top) = (74u32, 140u32, 56u32);
        let dark = fig.pixel(left + 4, top + 4).unwrap();
        let light = fig.pixel(left + cell * 5 + 4, top + 4).unwrap();
        assert!(dark[0] < 60 && dark[2] > 100, "{dark:?}");
        assert!(light[0] > 240, "{light:?}");
        let set = ImageSet {
            images: vec![0; 784 * 3],
            labels: vec![0, 1, 2],
        };
        let g = prediction_gallery(&set, &[0, 2], &[0, 5, 9], 2, "wrong").unwrap();
        assert!(g.width > 2 * 84);
        assert!(prediction_gallery(&set, &[7], &[0, 5, 9], 2, "x").is_err());
        let mut probabilities = vec![[0.0; NUM_CLASSES]; 3];
        probabilities[0][0] = 0.9;
        probabilities[0][1] = 0.1;
        probabilities[1][5] = 0.8;
        probabilities[1][1] = 0.2;
        probabilities[2][9] = 0.6;
        probabilities[2][2] = 0.4;
        let preds = crate::metrics::Predictions {
            labels: set.labels.clone(),
            predicted: vec![0, 5, 9],
            probabilities,
        };
        // Image 1 gave its true class 0.2, image 2 0.4, image 0 (right) 0.9.
        assert_eq!(preds.top_losses(2), vec![1, 2]);
        assert_eq!(preds.top_losses(9), vec![1, 2, 0]);
        let g = probability_gallery(&set, &preds, &preds.top_losses(2), 2, "top losses").unwrap();
        assert!(g.width > 2 * 84);
        assert!(probability_gallery(&set, &preds, &[3], 2, "x").is_err());
    }
}
