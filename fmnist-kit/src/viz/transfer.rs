//! Notebook 04's figures: images as an ImageNet backbone receives them, and the few-label
//! comparison.

use tch::{Device, Kind};

use super::charts::BarChart;
use super::figure::Figure;
use super::image_grid::{image_grid, ImageGridConfig, ImageTile};
use crate::data::{self, ImageSet};
use crate::error::{Error, Result};
use crate::models::{preprocess, Backbone};
use crate::transfer::{FewLabelMethod, FewLabelStudy};

/// The images of `set` as they are (28×28, top row) and as `backbone` receives them (resized to
/// `size`, bottom row; one of the three identical channels, mapped back from the backbone's
/// normalisation to grey levels), drawn at about the same screen size.
pub fn backbone_inputs(set: &ImageSet, backbone: Backbone, size: usize) -> Result<Figure> {
    if set.is_empty() {
        return Err(Error::param("set", "no image to draw"));
    }
    let x = preprocess(backbone, &set.images_tensor(), size)?;
    // Back to 0..1 grey: invert the normalisation, then /255.
    let p = match backbone {
        Backbone::InceptionV3 => (x + 1.0) * 127.5,
        Backbone::EfficientNetLite0 => x * 128.0 + 127.0,
    };
    let grey = (p / 255.0)
        .clamp(0.0, 1.0)
        .to_device(Device::Cpu)
        .to_kind(Kind::Float);
    let mut originals = Vec::with_capacity(set.len());
    let mut resized = Vec::with_capacity(set.len());
    for i in 0..set.len() {
        let name = data::class_name(set.labels[i] as usize);
        let pixels = set
            .image(i)
            .ok_or_else(|| Error::param("set", format!("no image {i}")))?;
        originals.push(ImageTile::from_u8(pixels, format!("{name}, 28×28"))?);
        let channel = Vec::<f32>::try_from(grey.get(i as i64).get(0).flatten(0, -1))?;
        resized.push(ImageTile::from_f32(
            channel,
            size,
            size,
            format!("{size}×{size}, 3 channels"),
        )?);
    }
    // About 120 screen pixels per image in both rows.
    const SCREEN: usize = 120;
    let big = (SCREEN / crate::data::IMAGE_SIDE).max(1) as u32;
    let small = (SCREEN / size).max(1) as u32;
    let grid = |tiles: &[ImageTile], scale: u32, title: String| {
        image_grid(
            tiles,
            &ImageGridConfig {
                columns: tiles.len(),
                scale,
                title: Some(title),
                ..Default::default()
            },
        )
    };
    Ok(Figure::vstack(&[
        grid(&originals, big, "the images as they are".into())?,
        grid(
            &resized,
            small,
            format!(
                "as {} receives them (bilinear resize, grey repeated to RGB, normalised)",
                backbone.title()
            ),
        )?,
    ]))
}

/// Mean test accuracy of each method for each number of labels per class (grouped bars).
pub fn few_label_chart(study: &FewLabelStudy) -> Result<Figure> {
    let means = study.means();
    let categories: Vec<String> = study
        .settings
        .per_class
        .iter()
        .map(|k| format!("{k} labels per class"))
        .collect();
    let series = FewLabelMethod::ALL
        .iter()
        .map(|&m| {
            let values = study
                .settings
                .per_class
                .iter()
                .map(|&k| {
                    means
                        .iter()
                        .find(|r| r.0 == k && r.1 == m)
                        .map_or(0.0, |r| r.2)
                })
                .collect();
            (m.label().to_string(), values)
        })
        .collect();
    BarChart {
        title: format!(
            "{} at {} px: mean test accuracy over {} seed(s), {} test images",
            study.backbone.title(),
            study.image_size,
            study.settings.seeds.len(),
            study.settings.test_images
        ),
        categories,
        series,
        y_label: "test accuracy".into(),
        show_values: true,
        ..Default::default()
    }
    .draw()
}
