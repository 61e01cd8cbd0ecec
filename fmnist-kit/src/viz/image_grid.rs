//! Grids of small grey images with titles (samples, galleries, feature maps).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::Figure;
use super::style::{plot_err, FONT};
use crate::data::IMAGE_SIDE;
use crate::error::{Error, Result};

/// One picture of a grid: grey levels in 0..1, row-major `[height, width]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageTile {
    pub pixels: Vec<f32>,
    pub width: usize,
    pub height: usize,
    pub title: String,
}

impl ImageTile {
    /// A 28×28 tile from u8 pixels.
    pub fn from_u8(pixels: &[u8], title: impl Into<String>) -> Result<ImageTile> {
        if pixels.len() != IMAGE_SIDE * IMAGE_SIDE {
            return Err(Error::param(
                "pixels",
                format!("{} values, expected 784 (28×28)", pixels.len()),
            ));
        }
        Ok(ImageTile {
            pixels: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
            width: IMAGE_SIDE,
            height: IMAGE_SIDE,
            title: title.into(),
        })
    }

    /// A tile from float values in 0..1 (values outside are clipped), `[height, width]`.
    pub fn from_f32(
        pixels: Vec<f32>,
        width: usize,
        height: usize,
        title: impl Into<String>,
    ) -> Result<ImageTile> {
        if pixels.len() != width * height || width == 0 {
            return Err(Error::param(
                "pixels",
                format!("{} values for {width}×{height}", pixels.len()),
            ));
        }
        Ok(ImageTile {
            pixels,
            width,
            height,
            title: title.into(),
        })
    }
}

/// How a grid of images is laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGridConfig {
    /// Tiles per row.
    pub columns: usize,
    /// Screen pixels per image pixel.
    pub scale: u32,
    /// Title above the whole grid.
    pub title: Option<String>,
    /// A label at the left of each row.
    pub row_labels: Vec<String>,
    /// Draw dark garments on white (as the original's `plt.cm.binary`) instead of white on black.
    pub inverted: bool,
}

impl Default for ImageGridConfig {
    fn default() -> Self {
        ImageGridConfig {
            columns: 10,
            scale: 3,
            title: None,
            row_labels: Vec::new(),
            inverted: false,
        }
    }
}

/// A grid of images, each with its title (an empty title takes no room).
pub fn image_grid(tiles: &[ImageTile], config: &ImageGridConfig) -> Result<Figure> {
    if tiles.is_empty() {
        return Err(Error::param("tiles", "no image to draw"));
    }
    if config.columns == 0 || config.scale == 0 {
        return Err(Error::param(
            "columns",
            "columns and scale must be at least 1",
        ));
    }
    let tw = tiles.iter().map(|t| t.width).max().unwrap_or(1) as u32 * config.scale;
    let th = tiles.iter().map(|t| t.height).max().unwrap_or(1) as u32 * config.scale;
    let has_titles = tiles.iter().any(|t| !t.title.is_empty());
    let title_h = if has_titles { 16 } else { 0 };
    let label_w = if config.row_labels.is_empty() {
        0
    } else {
        (config
            .row_labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0) as u32
            * 8
            + 12)
            .max(40)
    };
    let heading_h = if config.title.is_some() { 30 } else { 0 };
    let cols = config.columns.min(tiles.len()) as u32;
    let rows = tiles.len().div_ceil(config.columns) as u32;
    let gap = 6;
    // Room for the longest title (about 6.5 pixels per character at size 11).
    let title_w = tiles
        .iter()
        .map(|t| t.title.chars().count() as u32 * 13 / 2 + 4)
        .max()
        .unwrap_or(0);
    let cell_w = tw.max(title_w) + gap;
    let cell_h = th + title_h + gap;
    let width = label_w + cols * cell_w + gap;
    let height = heading_h + rows * cell_h + gap;
    Figure::draw(width, height, |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        if let Some(t) = &config.title {
            root.draw(&Text::new(
                t.clone(),
                (width as i32 / 2, 8),
                (FONT, 18)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(plot_err)?;
        }
        for (r, label) in config.row_labels.iter().enumerate().take(rows as usize) {
            let y = heading_h + r as u32 * cell_h + title_h + th / 2;
            root.draw(&Text::new(
                label.clone(),
                (label_w as i32 - 8, y as i32),
                (FONT, 13)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(plot_err)?;
        }
        for (i, tile) in tiles.iter().enumerate() {
            let (r, c) = ((i / config.columns) as u32, (i % config.columns) as u32);
            let x0 = (label_w + gap + c * cell_w) as i32;
            let y0 = (heading_h + gap + r * cell_h) as i32;
            if !tile.title.is_empty() {
                root.draw(&Text::new(
                    tile.title.clone(),
                    (x0 + (cell_w - gap) as i32 / 2, y0),
                    (FONT, 11)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(plot_err)?;
            }
            let s = config.scale as i32;
            let xi = x0 + ((cell_w - gap) as i32 - tile.width as i32 * s) / 2;
            let yi = y0 + title_h as i32;
            for (k, &v) in tile.pixels.iter().enumerate() {
                let v = if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let g = if config.inverted {
                    255 - (v * 255.0).round() as u8
                } else {
                    (v * 255.0).round() as u8
                };
                let (px, py) = ((k % tile.width) as i32, (k / tile.width) as i32);
                root.draw(&Rectangle::new(
                    [
                        (xi + px * s, yi + py * s),
                        (xi + px * s + s, yi + py * s + s),
                    ],
                    RGBColor(g, g, g).filled(),
                ))
                .map_err(plot_err)?;
            }
        }
        Ok(())
    })
}

/// `per_class` examples of every class, one row per class labelled with its name
/// (the first examples of each class in `set`'s order).

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> (u32, u32) {
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let reader = dec.read_info().unwrap();
        (reader.info().width, reader.info().height)
    }

    #[test]
    fn image_grid_draws_pixels_and_titles() {
        let mut px = vec![0u8; 784];
        px[0] = 255; // top-left pixel white
        let tiles = vec![
            ImageTile::from_u8(&px, "first").unwrap(),
            ImageTile::from_u8(&vec![128; 784], "second").unwrap(),
        ];
        let fig = image_grid(
            &tiles,
            &ImageGridConfig {
                columns: 2,
                scale: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let (w, h) = decode(&fig.png().unwrap());
        assert_eq!((w, h), (fig.width, fig.height));
        // Some dark pixels (the black image), some mid-grey, and text (non-white) in the title band.
        let count = |f: &dyn Fn([u8; 3]) -> bool| {
            (0..fig.height)
                .flat_map(|y| (0..fig.width).map(move |x| (x, y)))
                .filter(|&(x, y)| f(fig.pixel(x, y).unwrap()))
                .count()
        };
        assert!(count(&|p| p == [0, 0, 0]) >= 783 * 4);
        assert!(count(&|p| p == [128, 128, 128]) >= 784 * 4);
        let title_ink = (0..fig.width)
            .flat_map(|x| (0..14).map(move |y| (x, y)))
            .filter(|&(x, y)| fig.pixel(x, y).unwrap() != [255, 255, 255])
            .count();
        assert!(
            title_ink > 20,
            "titles must be drawn ({title_ink} ink pixels)"
        );
        assert!(image_grid(&[], &ImageGridConfig::default()).is_err());
        assert!(ImageTile::from_u8(&[0; 10], "").is_err());
    }
}
