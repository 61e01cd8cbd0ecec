//! The PNG images the kit logs: a batch of grey images as one grid, and a matrix as a heat map.

use crate::error::{Error, Result};

fn encode(width: u32, height: u32, color: png::ColorType, pixels: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let failed = |e: png::EncodingError| Error::param("image", e.to_string());
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

/// `images` grey images of `side` × `side` pixels (`pixels`: `[images, side, side]` row-major,
/// values in 0..1, clamped) tiled `columns` to a row with a 2-pixel dark gap, as a PNG. Returns
/// the PNG and its width, height and channel count.
pub fn gray_grid_png(
    pixels: &[f32],
    images: usize,
    side: usize,
    columns: usize,
) -> Result<(Vec<u8>, (u32, u32, u32))> {
    if images == 0 || side == 0 || pixels.len() != images * side * side {
        return Err(Error::param(
            "images",
            format!(
                "{} pixels are not {images} images of {side}×{side}",
                pixels.len()
            ),
        ));
    }
    let columns = columns.clamp(1, images);
    let rows = images.div_ceil(columns);
    let gap = 2;
    let (w, h) = (columns * (side + gap) + gap, rows * (side + gap) + gap);
    let mut out = vec![40u8; w * h];
    for (i, image) in pixels.chunks(side * side).enumerate() {
        let (r, c) = (i / columns, i % columns);
        for (y, row) in image.chunks(side).enumerate() {
            let start = (gap + r * (side + gap) + y) * w + gap + c * (side + gap);
            for (x, v) in row.iter().enumerate() {
                out[start + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    let png = encode(w as u32, h as u32, png::ColorType::Grayscale, &out)?;
    Ok((png, (w as u32, h as u32, 1)))
}

/// A square matrix of values in 0..1 (rows of `values`) as a heat map, `cell` pixels per
/// entry, from white (0) to dark blue (1), as an RGB PNG with its width, height and channels.
pub fn heat_map_png(values: &[Vec<f64>], cell: usize) -> Result<(Vec<u8>, (u32, u32, u32))> {
    let n = values.len();
    if n == 0 || values.iter().any(|r| r.len() != n) || cell == 0 {
        return Err(Error::param("matrix", "a heat map needs a square matrix"));
    }
    let side = n * cell;
    let mut out = vec![0u8; side * side * 3];
    for (i, row) in values.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let t = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let rgb = [
                (255.0 - t * (255.0 - 8.0)) as u8,
                (255.0 - t * (255.0 - 48.0)) as u8,
                (255.0 - t * (255.0 - 107.0)) as u8,
            ];
            for y in i * cell..(i + 1) * cell {
                for x in j * cell..(j + 1) * cell {
                    out[(y * side + x) * 3..(y * side + x) * 3 + 3].copy_from_slice(&rgb);
                }
            }
        }
    }
    let png = encode(side as u32, side as u32, png::ColorType::Rgb, &out)?;
    Ok((png, (side as u32, side as u32, 3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_and_a_heat_map_are_pngs_of_the_stated_size() {
        let (png, (w, h, c)) = gray_grid_png(&[0.5; 5 * 4 * 4], 5, 4, 3).unwrap();
        assert_eq!((w, h, c), (3 * 6 + 2, 2 * 6 + 2, 1));
        assert_eq!(&png[1..4], b"PNG");
        let info = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        assert_eq!((info.info().width, info.info().height), (w, h));
        assert!(gray_grid_png(&[0.5; 10], 5, 4, 3).is_err());
        let (_, size) = heat_map_png(&[vec![1.0, 0.0], vec![0.25, f64::NAN]], 8).unwrap();
        assert_eq!(size, (16, 16, 3));
        assert!(heat_map_png(&[vec![1.0], vec![0.5]], 8).is_err());
    }
}
