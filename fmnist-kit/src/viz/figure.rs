//! The owned picture every figure is: pixels, stacking, PNG bytes, saving, inline display.

use std::path::Path;

use base64::Engine;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{ensure_font, plot_err, FONT};
use crate::error::{Error, Result};

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
        crate::util::write_atomic(path.as_ref(), &self.png()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> (u32, u32) {
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let reader = dec.read_info().unwrap();
        (reader.info().width, reader.info().height)
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
