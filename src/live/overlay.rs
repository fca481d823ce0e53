//! A tiny built-in 5×7 bitmap font to draw the live statistics on the picture (GStreamer's
//! `textoverlay` needs Pango, which is not always installed).

use crate::frame::FrameMut;

const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;

/// Rows of a glyph, the leftmost pixel in bit 4.
fn glyph(c: char) -> Option<[u8; GLYPH_H]> {
    Some(match c.to_ascii_lowercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        'a' => [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'c' => [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        'e' => [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        'i' => [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'm' => [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'n' => [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'u' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D],
        'x' => [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        ' ' => [0; GLYPH_H],
        _ => return None,
    })
}

/// Size in pixels of `text` drawn at `scale`, with its one-cell margin.
pub fn text_size(text: &str, scale: usize) -> (usize, usize) {
    let n = text.chars().count();
    ((n * (GLYPH_W + 1) + 1) * scale, (GLYPH_H + 2) * scale)
}

/// Draws `text` in white on a black box with its top-left corner at (`x`, `y`), each font
/// pixel `scale` pixels wide; clipped to the frame. Characters the font lacks are blank.
/// Works on every packed format (white and black are the same in every channel order; an
/// alpha or padding byte is set opaque).
pub fn draw_text(frame: &mut FrameMut<'_>, x: usize, y: usize, scale: usize, text: &str) {
    let scale = scale.max(1);
    let bpp = frame.format().bytes_per_pixel();
    let (bw, bh) = text_size(text, scale);
    let (fw, fh) = (frame.width(), frame.height());
    let x_end = (x + bw).min(fw);
    let y_end = (y + bh).min(fh);
    if x >= x_end || y >= y_end {
        return;
    }
    let glyphs: Vec<Option<[u8; GLYPH_H]>> = text.chars().map(glyph).collect();
    for py in y..y_end {
        // Font row of this pixel row, if it is inside the glyph area (a margin cell above).
        let cell_y = (py - y) / scale;
        let font_row = cell_y.checked_sub(1).filter(|&r| r < GLYPH_H);
        let row = frame.row_mut(py);
        for px in x..x_end {
            let cell_x = (px - x) / scale;
            // Each glyph is GLYPH_W cells and a one-cell gap, after a one-cell margin.
            let on = match (font_row, cell_x.checked_sub(1)) {
                (Some(r), Some(cx)) => {
                    let (i, col) = (cx / (GLYPH_W + 1), cx % (GLYPH_W + 1));
                    col < GLYPH_W
                        && glyphs
                            .get(i)
                            .copied()
                            .flatten()
                            .is_some_and(|g| g[r] & (0x10 >> col) != 0)
                }
                _ => false,
            };
            let v = if on { 255 } else { 0 };
            let p = &mut row[px * bpp..(px + 1) * bpp];
            p[..3].fill(v);
            if bpp == 4 {
                p[3] = 255;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{OwnedFrame, PixelFormat};

    fn lit(f: &OwnedFrame, x: usize, y: usize) -> bool {
        let fr = f.as_frame();
        fr.row(y)[x * 3] == 255
    }

    #[test]
    fn draws_glyphs_on_a_black_box_and_leaves_the_rest() {
        let mut f = OwnedFrame::new(64, 32, PixelFormat::Rgb).unwrap();
        let data_len = f.data().len();
        {
            let mut m = f.as_frame_mut();
            for y in 0..32 {
                m.row_mut(y).fill(100);
            }
            draw_text(&mut m, 2, 3, 1, "1");
        }
        // "1" at scale 1: box from (2,3), glyph from (3,4); its stem is column 2 of the glyph.
        for r in 0..GLYPH_H {
            assert!(lit(&f, 3 + 2, 4 + r), "stem row {r}");
        }
        assert!(lit(&f, 3 + 1, 4 + 1), "the flag of the 1");
        assert!(!lit(&f, 3, 4), "top-left of the 1 is off");
        let fr = f.as_frame();
        assert_eq!(fr.row(3)[2 * 3], 0, "the box is black");
        assert_eq!(fr.row(0)[0], 100, "outside the box is untouched");
        let (w, h) = text_size("1", 1);
        assert_eq!((w, h), (7, 9));
        assert_eq!(fr.row(3 + h)[2 * 3], 100, "below the box is untouched");
        assert_eq!(fr.row(3)[(2 + w) * 3], 100, "right of the box is untouched");
        assert_eq!(f.data().len(), data_len);
    }

    #[test]
    fn scales_and_clips_at_the_frame_edges() {
        let mut f = OwnedFrame::new(20, 10, PixelFormat::Rgba).unwrap();
        let mut m = f.as_frame_mut();
        // Far wider than the frame, and partly below it: must not panic.
        draw_text(&mut m, 5, 4, 3, "29.9 fps lat 120/180 ms drop 42");
        draw_text(&mut m, 30, 30, 2, "off the frame");
        let fr = f.as_frame();
        assert_eq!(fr.row(4)[5 * 4 + 3], 255, "alpha set opaque");
        assert_eq!(fr.row(0)[0], 0);
    }

    #[test]
    fn every_digit_and_the_stats_letters_have_glyphs() {
        for c in "0123456789.:/-% fpslatmsdrop".chars() {
            assert!(glyph(c).is_some(), "{c}");
        }
        // Distinct digits look distinct.
        let digits: Vec<_> = ('0'..='9').map(|c| glyph(c).unwrap()).collect();
        for i in 0..10 {
            for j in i + 1..10 {
                assert_ne!(digits[i], digits[j], "{i} and {j}");
            }
        }
    }
}
