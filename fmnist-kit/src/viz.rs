//! Figures drawn with plotters into an RGB bitmap, shown inline in evcxr and saved as PNG.
//!
//! A [`Figure`] owns its pixels. Left as the last expression of a notebook cell it shows itself
//! (evcxr calls its `evcxr_display` method, which prints a base64 PNG). Only the last rich
//! output of each kind survives in a cell, so compose several figures with [`Figure::hstack`] /
//! [`Figure::vstack`] instead of showing them one by one.

use std::path::Path;
use std::sync::Once;

use base64::Engine;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{self, ImageSet, CLASS_NAMES, IMAGE_SIDE, NUM_CLASSES};
use crate::error::{Error, Result};

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled DejaVu Sans with plotters (once per loaded copy of the kit).
fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font bundled with the crate; a failure would only
        // mean text is not drawn, which the draw calls then report as an error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, FONT_BYTES);
    });
}

/// Matplotlib's `tab10` colours, one per class.
pub const CLASS_COLORS: [(u8, u8, u8); NUM_CLASSES] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(e.to_string())
}

/// An owned RGB picture.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub width: u32,
    pub height: u32,
    /// Row-major RGB, `[height, width, 3]`.
    pub rgb: Vec<u8>,
}

impl Figure {
    /// A white figure.
    pub fn blank(width: u32, height: u32) -> Figure {
        Figure {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Draws on a new white `width × height` figure with plotters.
    pub fn draw<F>(width: u32, height: u32, f: F) -> Result<Figure>
    where
        F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
    {
        if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
            return Err(Error::param(
                "size",
                format!("{width}×{height} is not a drawable size"),
            ));
        }
        ensure_font();
        let mut fig = Figure::blank(width, height);
        {
            let root =
                BitMapBackend::with_buffer(&mut fig.rgb, (width, height)).into_drawing_area();
            f(&root)?;
            root.present().map_err(plot_err)?;
        }
        Ok(fig)
    }

    /// The figure encoded as PNG.
    pub fn png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(plot_err)?;
            w.write_image_data(&self.rgb).map_err(plot_err)?;
        }
        Ok(out)
    }

    /// Writes the PNG to `path` (through a temporary file and a rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        data::write_atomic(path.as_ref(), &self.png()?)
    }

    /// The PNG as base64.
    pub fn to_base64(&self) -> Result<String> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.png()?))
    }

    /// An `<img>` tag holding the PNG, for composing HTML output.
    pub fn to_html_img(&self) -> Result<String> {
        Ok(format!(
            "<img width=\"{}\" height=\"{}\" src=\"data:image/png;base64,{}\"/>",
            self.width,
            self.height,
            self.to_base64()?
        ))
    }

    /// Called by evcxr when the figure is a cell's value: prints the PNG as rich output.
    pub fn evcxr_display(&self) {
        match self.to_base64() {
            Ok(b64) => println!("EVCXR_BEGIN_CONTENT image/png\n{b64}\nEVCXR_END_CONTENT"),
            Err(e) => eprintln!("Error: could not encode the figure: {e}"),
        }
    }

    /// Pixel `(x, y)` as RGB, or `None` outside the figure.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }

    /// Copies `other` onto this figure with its top-left corner at `(x0, y0)` (clipped).
    pub fn paste_at(&mut self, other: &Figure, x0: u32, y0: u32) {
        for y in 0..other.height.min(self.height.saturating_sub(y0)) {
            let src = (y as usize * other.width as usize) * 3;
            let dst = ((y0 + y) as usize * self.width as usize + x0 as usize) * 3;
            let w = other.width.min(self.width.saturating_sub(x0)) as usize * 3;
            self.rgb[dst..dst + w].copy_from_slice(&other.rgb[src..src + w]);
        }
    }

    /// Figures side by side, top-aligned, on white.
    pub fn hstack(figures: &[Figure]) -> Figure {
        let width = figures.iter().map(|f| f.width).sum::<u32>().max(1);
        let height = figures.iter().map(|f| f.height).max().unwrap_or(1);
        let mut out = Figure::blank(width, height);
        let mut x = 0;
        for f in figures {
            out.paste_at(f, x, 0);
            x += f.width;
        }
        out
    }

    /// Figures one above the other, left-aligned, on white.
    pub fn vstack(figures: &[Figure]) -> Figure {
        let width = figures.iter().map(|f| f.width).max().unwrap_or(1);
        let height = figures.iter().map(|f| f.height).sum::<u32>().max(1);
        let mut out = Figure::blank(width, height);
        let mut y = 0;
        for f in figures {
            out.paste_at(f, 0, y);
            y += f.height;
        }
        out
    }
}

/// A sentence drawn as a small figure, for a cell that has nothing else to show.
pub fn message(text: &str) -> Result<Figure> {
    let width = (text.chars().count() as u32 * 8 + 40).clamp(200, 1600);
    Figure::draw(width, 48, |root| {
        root.fill(&RGBColor(250, 250, 250)).map_err(plot_err)?;
        root.draw(&Text::new(
            text.to_string(),
            (20, 24),
            (FONT, 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)
    })
}

/// HTML rich output for a notebook cell (e.g. a table, or several figures in one cell).
#[derive(Clone, Debug, PartialEq)]
pub struct Html(pub String);

impl Html {
    /// Called by evcxr when this is a cell's value.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Image grids
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Bar charts
// ---------------------------------------------------------------------------------------------

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
        let max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let y_max = if max > 0.0 { max * 1.15 } else { 1.0 };
        let cats = self.categories.clone();
        let k = self.series.len() as f64;
        Figure::draw(self.width, self.height, |root| {
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(root)
                .caption(&self.title, (FONT, 18))
                .margin(10)
                .x_label_area_size(50)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
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
                            [(left(i), 0.0), (left(i) + bar * 0.95, v.max(0.0))],
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
                                (left(i) + bar * 0.475, v.max(0.0)),
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

fn format_value(v: f64) -> String {
    if v.fract().abs() < 1e-9 && v.abs() < 1e9 {
        let s = format!("{}", v as i64);
        // thousands separators: 6000 -> 6,000
        let bytes: Vec<char> = s.chars().collect();
        let mut out = String::new();
        for (i, ch) in bytes.iter().enumerate() {
            if i > 0 && (bytes.len() - i) % 3 == 0 && *ch != '-' {
                out.push(',');
            }
            out.push(*ch);
        }
        out
    } else {
        format!("{v:.3}")
    }
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

// ---------------------------------------------------------------------------------------------
// Scatter plots
// ---------------------------------------------------------------------------------------------

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
            ..chart
        };
        assert!(bad.draw().unwrap_err().to_string().contains("series"));
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
    }

    #[test]
    fn heatmap_and_gallery() {
        let mut m = [[0u64; NUM_CLASSES]; NUM_CLASSES];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = 90;
            row[(i + 1) % NUM_CLASSES] = 10;
        }
        let fig = confusion_heatmap(&m, "test").unwrap();
        // A diagonal cell is dark blue (share 0.9), an off-diagonal zero cell is near white.
        let (cell, left, top) = (74u32, 96u32, 56u32);
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
    }

    #[test]
    fn stacking_and_saving() {
        let a = Figure::blank(10, 20);
        let mut b = Figure::blank(5, 5);
        b.rgb.iter_mut().for_each(|v| *v = 0);
        let h = Figure::hstack(&[a.clone(), b.clone()]);
        assert_eq!((h.width, h.height), (15, 20));
        assert_eq!(h.pixel(12, 2), Some([0, 0, 0]));
        assert_eq!(h.pixel(12, 10), Some([255, 255, 255]));
        let v = Figure::vstack(&[a, b]);
        assert_eq!((v.width, v.height), (10, 25));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.png");
        v.save(&p).unwrap();
        assert_eq!(decode(&std::fs::read(&p).unwrap()), (10, 25));
        assert!(v.to_html_img().unwrap().starts_with("<img width=\"10\""));
    }
}

// ---------------------------------------------------------------------------------------------
// Training curves and augmentation galleries
// ---------------------------------------------------------------------------------------------

/// Loss and accuracy per epoch, training and validation in each panel (side by side).
pub fn training_curves(history: &crate::train::History) -> Result<Figure> {
    if history.epochs.is_empty() {
        return Err(Error::param("history", "no epoch to draw"));
    }
    let epochs: Vec<f64> = history.epochs.iter().map(|e| e.epoch as f64).collect();
    let panel = |title: &str,
                 train: Vec<f64>,
                 val: Vec<f64>,
                 legend: SeriesLabelPosition|
     -> Result<Figure> {
        let all = train.iter().chain(&val).copied().filter(|v| v.is_finite());
        let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.1).max(1e-3);
        let x0 = epochs[0];
        let x1 = epochs[epochs.len() - 1].max(x0 + 1.0);
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
                .x_labels(epochs.len().clamp(2, 10))
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
            for (name, values, (r, g, b)) in [
                ("train", &train, CLASS_COLORS[0]),
                ("validation", &val, CLASS_COLORS[1]),
            ] {
                let color = RGBColor(r, g, b);
                let pts: Vec<(f64, f64)> =
                    epochs.iter().copied().zip(values.iter().copied()).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
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
    };
    let loss = panel(
        &format!("{} loss", history.model),
        history.epochs.iter().map(|e| e.train_loss).collect(),
        history.epochs.iter().map(|e| e.val_loss).collect(),
        SeriesLabelPosition::UpperRight,
    )?;
    let acc = panel(
        &format!("{} accuracy", history.model),
        history.epochs.iter().map(|e| e.train_accuracy).collect(),
        history.epochs.iter().map(|e| e.val_accuracy).collect(),
        SeriesLabelPosition::LowerRight,
    )?;
    Ok(Figure::hstack(&[loss, acc]))
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

// ---------------------------------------------------------------------------------------------
// Evaluation figures
// ---------------------------------------------------------------------------------------------

/// A confusion matrix (`[true][predicted]` counts) as a heatmap: colour by the row-normalised
/// share, each cell annotated with its count and share, class names on both axes; text turns
/// white on dark cells.
pub fn confusion_heatmap(
    matrix: &[[u64; NUM_CLASSES]; NUM_CLASSES],
    title: &str,
) -> Result<Figure> {
    let shares = crate::metrics::normalize_rows(matrix);
    let (cell, left, top) = (74i32, 96i32, 56i32);
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
            "predicted".into(),
            (left + cell * 5, top - 22),
            13,
            BLACK,
            Pos::new(HPos::Center, VPos::Center),
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
            "true class (rows); cells: count and share of the row".into(),
            (left + cell * 5, top + cell * NUM_CLASSES as i32 + 32),
            12,
            BLACK,
            Pos::new(HPos::Center, VPos::Top),
        )?;
        Ok(())
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
    if indices.is_empty() {
        return Err(Error::param("indices", "no image to show"));
    }
    let tiles = indices
        .iter()
        .map(|&i| {
            let (Some(px), Some(&p)) = (set.image(i), predicted.get(i)) else {
                return Err(Error::param(
                    "indices",
                    format!("index {i} is past the end ({} images)", set.len()),
                ));
            };
            ImageTile::from_u8(
                px,
                format!(
                    "pred {} / true {}",
                    data::class_name(p as usize),
                    data::class_name(set.labels[i] as usize)
                ),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    image_grid(
        &tiles,
        &ImageGridConfig {
            columns,
            scale: 3,
            title: Some(title.to_string()),
            row_labels: Vec::new(),
            inverted: true,
        },
    )
}
