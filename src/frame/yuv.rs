//! Planar I420 (Y at full resolution, U and V at half in both directions) and its conversion
//! to and from packed RGB.
//!
//! Decoders give I420 and encoders take it. The element works on it directly where it can
//! (the guided upsampler writes Y, U and V itself, see
//! [`GuidedUpsampler::upsample_mix_i420`](super::GuidedUpsampler::upsample_mix_i420)), so no
//! colour converter runs on the full-resolution frame; the conversions here serve the paths
//! that need packed RGB.

use super::{FrameError, FrameMut};

/// A Y'CbCr matrix and range: how 8-bit Y, U and V relate to R, G and B in 0..255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvMatrix {
    /// Red and blue luma weights (green is `1 - kr - kb`).
    pub kr: f32,
    /// See `kr`.
    pub kb: f32,
    /// Full range (Y 0-255, chroma 0-255 around 128) instead of limited (Y 16-235, chroma
    /// 16-240).
    pub full_range: bool,
}

impl YuvMatrix {
    /// ITU-R BT.601, limited range (SD video).
    pub const BT601: YuvMatrix = YuvMatrix {
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    /// ITU-R BT.709, limited range (HD video).
    pub const BT709: YuvMatrix = YuvMatrix {
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
    };

    /// Luma weights of R, G and B.
    pub fn luma(&self) -> [f32; 3] {
        [self.kr, 1.0 - self.kr - self.kb, self.kb]
    }
    /// Y = `y_offset + y_scale · luma`.
    pub fn y_offset(&self) -> f32 {
        if self.full_range { 0.0 } else { 16.0 }
    }
    /// See [`Self::y_offset`].
    pub fn y_scale(&self) -> f32 {
        if self.full_range { 1.0 } else { 219.0 / 255.0 }
    }
    /// U = `128 + c_scale · (B − luma) / (2 (1 − kb))`, V likewise with R and `kr`.
    pub fn c_scale(&self) -> f32 {
        if self.full_range { 1.0 } else { 224.0 / 255.0 }
    }
    /// Weights of R, G and B in U − 128 and in V − 128.
    pub fn chroma(&self) -> ([f32; 3], [f32; 3]) {
        let [kr, kg, kb] = self.luma();
        let (su, sv) = (
            self.c_scale() / (2.0 * (1.0 - kb)),
            self.c_scale() / (2.0 * (1.0 - kr)),
        );
        (
            [-kr * su, -kg * su, (1.0 - kb) * su],
            [(1.0 - kr) * sv, -kg * sv, -kb * sv],
        )
    }

    /// R, G, B (0..255, unclamped) of one Y, U, V sample.
    #[inline(always)]
    pub fn to_rgb(&self, y: f32, u: f32, v: f32) -> [f32; 3] {
        let l = (y - self.y_offset()) / self.y_scale();
        let pb = (u - 128.0) / self.c_scale();
        let pr = (v - 128.0) / self.c_scale();
        let r = l + 2.0 * (1.0 - self.kr) * pr;
        let b = l + 2.0 * (1.0 - self.kb) * pb;
        let g = (l - self.kr * r - self.kb * b) / (1.0 - self.kr - self.kb);
        [r, g, b]
    }
}

/// Sizes of the chroma planes of a `width`×`height` I420 frame.
pub const fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

fn check_plane(
    name: &str,
    len: usize,
    w: usize,
    h: usize,
    stride: usize,
) -> Result<(), FrameError> {
    if w == 0 || h == 0 || stride < w || len < (h - 1) * stride + w {
        return Err(FrameError::Mismatch(format!(
            "I420 {name} plane of {w}x{h} with stride {stride} does not fit in {len} bytes"
        )));
    }
    Ok(())
}

/// Whether planes of these lengths and strides hold a `width`×`height` I420 frame.
fn check_planes(
    lens: [usize; 3],
    strides: [usize; 3],
    width: usize,
    height: usize,
) -> Result<(), FrameError> {
    let (cw, ch) = chroma_size(width, height);
    check_plane("Y", lens[0], width, height, strides[0])?;
    check_plane("U", lens[1], cw, ch, strides[1])?;
    check_plane("V", lens[2], cw, ch, strides[2])
}

/// A borrowed, read-only I420 frame: three planes and their strides.
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    planes: [&'a [u8]; 3],
    strides: [usize; 3],
    width: usize,
    height: usize,
}

impl<'a> I420<'a> {
    /// Describes the Y, U and V planes of a `width`×`height` frame.
    pub fn new(
        planes: [&'a [u8]; 3],
        strides: [usize; 3],
        width: usize,
        height: usize,
    ) -> Result<Self, FrameError> {
        check_planes(planes.each_ref().map(|p| p.len()), strides, width, height)?;
        Ok(I420 {
            planes,
            strides,
            width,
            height,
        })
    }
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Plane `k` (0 Y, 1 U, 2 V) and its stride.
    pub fn plane(&self, k: usize) -> (&'a [u8], usize) {
        (self.planes[k], self.strides[k])
    }
}

/// A borrowed, writable I420 frame.
#[derive(Debug)]
pub struct I420Mut<'a> {
    planes: [&'a mut [u8]; 3],
    strides: [usize; 3],
    width: usize,
    height: usize,
}

impl<'a> I420Mut<'a> {
    /// Describes the Y, U and V planes of a `width`×`height` frame, writable.
    pub fn new(
        planes: [&'a mut [u8]; 3],
        strides: [usize; 3],
        width: usize,
        height: usize,
    ) -> Result<Self, FrameError> {
        check_planes(planes.each_ref().map(|p| p.len()), strides, width, height)?;
        Ok(I420Mut {
            planes,
            strides,
            width,
            height,
        })
    }
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// A read-only view of the same planes.
    pub fn as_i420(&self) -> I420<'_> {
        I420 {
            planes: [&*self.planes[0], &*self.planes[1], &*self.planes[2]],
            strides: self.strides,
            width: self.width,
            height: self.height,
        }
    }
    /// The three planes, writable, and their strides.
    pub fn planes_mut(&mut self) -> ([&mut [u8]; 3], [usize; 3]) {
        let [y, u, v] = &mut self.planes;
        ([&mut **y, &mut **u, &mut **v], self.strides)
    }
}

#[inline(always)]
fn byte(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

/// Writes one packed pixel: R, G and B at `offsets`, an opaque alpha or padding byte.
#[inline(always)]
fn put(px: &mut [u8], [ro, go, bo]: [usize; 3], [r, g, b]: [f32; 3]) {
    px[ro] = byte(r);
    px[go] = byte(g);
    px[bo] = byte(b);
    if let Some(a) = px.get_mut(3) {
        *a = 255;
    }
}

/// Converts an I420 frame into a packed RGB frame of the same size (each chroma sample
/// covers its 2×2 pixels).
pub fn i420_to_rgb(
    src: &I420<'_>,
    dst: &mut FrameMut<'_>,
    m: &YuvMatrix,
) -> Result<(), FrameError> {
    if (src.width, src.height) != (dst.width(), dst.height()) {
        return Err(FrameError::Mismatch(format!(
            "cannot convert a {}x{} I420 frame into a {}x{} frame",
            src.width,
            src.height,
            dst.width(),
            dst.height()
        )));
    }
    let (bpp, offsets) = (dst.format().bytes_per_pixel(), dst.format().rgb_offsets());
    let (yp, ys) = src.plane(0);
    let (up, us) = src.plane(1);
    let (vp, vs) = src.plane(2);
    for y in 0..src.height {
        let yr = &yp[y * ys..y * ys + src.width];
        let ur = &up[(y / 2) * us..];
        let vr = &vp[(y / 2) * vs..];
        let row = dst.row_mut(y);
        for (x, px) in row.chunks_exact_mut(bpp).enumerate() {
            put(
                px,
                offsets,
                m.to_rgb(yr[x] as f32, ur[x / 2] as f32, vr[x / 2] as f32),
            );
        }
    }
    Ok(())
}

/// Converts a packed RGB frame into an I420 frame of the same size (chroma from the mean of
/// each 2×2 block).
pub fn rgb_to_i420(
    src: &super::Frame<'_>,
    dst: &mut I420Mut<'_>,
    m: &YuvMatrix,
) -> Result<(), FrameError> {
    let (w, h) = (dst.width, dst.height);
    if (src.width(), src.height()) != (w, h) {
        return Err(FrameError::Mismatch(format!(
            "cannot convert a {}x{} frame into a {w}x{h} I420 frame",
            src.width(),
            src.height()
        )));
    }
    let bpp = src.format().bytes_per_pixel();
    let [ro, go, bo] = src.format().rgb_offsets();
    let luma = m.luma();
    let (cu, cv) = m.chroma();
    let (yo, ysc) = (m.y_offset(), m.y_scale());
    let ([yp, up, vp], [ys, us, vs]) = dst.planes_mut();
    let rgb = |x: usize, y: usize| {
        let p = &src.row(y)[x * bpp..];
        [p[ro] as f32, p[go] as f32, p[bo] as f32]
    };
    for y in 0..h {
        for x in 0..w {
            let c = rgb(x, y);
            yp[y * ys + x] = byte(yo + ysc * (luma[0] * c[0] + luma[1] * c[1] + luma[2] * c[2]));
        }
    }
    let (cw, ch) = chroma_size(w, h);
    for cy in 0..ch {
        for cx in 0..cw {
            let mut sum = [0f32; 3];
            let mut n = 0.0;
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let c = rgb(x, y);
                    for k in 0..3 {
                        sum[k] += c[k];
                    }
                    n += 1.0;
                }
            }
            let c = sum.map(|v| v / n);
            up[cy * us + cx] = byte(128.0 + cu[0] * c[0] + cu[1] * c[1] + cu[2] * c[2]);
            vp[cy * vs + cx] = byte(128.0 + cv[0] * c[0] + cv[1] * c[1] + cv[2] * c[2]);
        }
    }
    Ok(())
}

/// The picture the model sees, from an I420 frame: each plane resampled to `dst`'s size
/// (antialiased, as [`super::Resizer`] does for packed frames), then converted to RGB.
/// `resizers` hold the tables for the luma and the chroma planes between frames; `scratch`
/// the three small planes.
pub fn downscale_to_rgb(
    src: &I420<'_>,
    dst: &mut FrameMut<'_>,
    m: &YuvMatrix,
    resizers: &mut [super::Resizer; 2],
    scratch: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let (dw, dh) = (dst.width(), dst.height());
    let n = dw * dh;
    scratch.resize(3 * n, 0);
    let (cw, ch) = chroma_size(src.width, src.height);
    let (ys, rest) = scratch.split_at_mut(n);
    let (us, vs) = rest.split_at_mut(n);
    let (p, s) = src.plane(0);
    resizers[0].resize_plane(p, (src.width, src.height, s), ys, (dw, dh, dw))?;
    let (p, s) = src.plane(1);
    resizers[1].resize_plane(p, (cw, ch, s), us, (dw, dh, dw))?;
    let (p, s) = src.plane(2);
    resizers[1].resize_plane(p, (cw, ch, s), vs, (dw, dh, dw))?;
    let (bpp, offsets) = (dst.format().bytes_per_pixel(), dst.format().rgb_offsets());
    for y in 0..dh {
        let row = dst.row_mut(y);
        for (x, px) in row.chunks_exact_mut(bpp).enumerate() {
            let j = y * dw + x;
            put(
                px,
                offsets,
                m.to_rgb(ys[j] as f32, us[j] as f32, vs[j] as f32),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{OwnedFrame, PixelFormat, Resizer};

    fn picture(w: usize, h: usize) -> OwnedFrame {
        let mut f = OwnedFrame::new(w, h, PixelFormat::Rgb).unwrap();
        let mut fm = f.as_frame_mut();
        for y in 0..h {
            for (x, px) in fm.row_mut(y).chunks_exact_mut(3).enumerate() {
                px.copy_from_slice(&[
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x + y) * 3 % 256) as u8,
                ]);
            }
        }
        f
    }

    fn planes(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (cw, ch) = chroma_size(w, h);
        (vec![0; w * h], vec![0; cw * ch], vec![0; cw * ch])
    }

    #[test]
    fn rgb_to_i420_and_back_keeps_smooth_pictures() {
        for m in [
            YuvMatrix::BT601,
            YuvMatrix::BT709,
            YuvMatrix {
                full_range: true,
                ..YuvMatrix::BT601
            },
        ] {
            let (w, h) = (33, 17);
            let rgb = picture(w, h);
            let (mut y, mut u, mut v) = planes(w, h);
            let cw = chroma_size(w, h).0;
            let mut i420 = I420Mut::new([&mut y, &mut u, &mut v], [w, cw, cw], w, h).unwrap();
            rgb_to_i420(&rgb.as_frame(), &mut i420, &m).unwrap();
            let mut back = OwnedFrame::new(w, h, PixelFormat::Bgrx).unwrap();
            i420_to_rgb(&i420.as_i420(), &mut back.as_frame_mut(), &m).unwrap();
            // Green and red vary slowly; blue repeats every 85 pixels, so chroma shared by
            // 2x2 pixels costs it a few levels.
            let mut worst = 0;
            for yy in 0..h {
                for x in 0..w {
                    let a = &rgb.as_frame().row(yy)[x * 3..x * 3 + 3];
                    let b = &back.as_frame().row(yy)[x * 4..x * 4 + 4];
                    for (c, o) in [(0, 2), (1, 1), (2, 0)] {
                        worst = worst.max((a[c] as i32 - b[o] as i32).abs());
                    }
                    assert_eq!(b[3], 255);
                }
            }
            assert!(worst <= 12, "{m:?}: {worst}");
        }
    }

    #[test]
    fn known_colours_have_known_values() {
        // BT.601 limited range: white 235/128/128, black 16/128/128, red 81/90/240.
        let m = YuvMatrix::BT601;
        let rgb = OwnedFrame::from_vec(
            [[255, 255, 255], [0, 0, 0], [255, 0, 0], [255, 0, 0]].concat(),
            2,
            2,
            PixelFormat::Rgb,
        )
        .unwrap();
        let (mut y, mut u, mut v) = planes(2, 2);
        let mut i420 = I420Mut::new([&mut y, &mut u, &mut v], [2, 1, 1], 2, 2).unwrap();
        rgb_to_i420(&rgb.as_frame(), &mut i420, &m).unwrap();
        assert_eq!(y, [235, 16, 81, 81]);
        // Chroma of the block's mean colour: (white + black + 2 red) / 4.
        let [r, g, b] = m.to_rgb(81.0, 90.0, 240.0);
        assert!(
            (r - 255.0).abs() < 1.5 && g.abs() < 1.5 && b.abs() < 1.5,
            "{r} {g} {b}"
        );
    }

    #[test]
    fn downscaled_planes_give_the_downscaled_picture() {
        let (w, h) = (64, 48);
        let rgb = picture(w, h);
        let m = YuvMatrix::BT709;
        let (mut y, mut u, mut v) = planes(w, h);
        let mut i420 = I420Mut::new([&mut y, &mut u, &mut v], [w, 32, 32], w, h).unwrap();
        rgb_to_i420(&rgb.as_frame(), &mut i420, &m).unwrap();
        let mut small = OwnedFrame::new(16, 12, PixelFormat::Rgb).unwrap();
        downscale_to_rgb(
            &i420.as_i420(),
            &mut small.as_frame_mut(),
            &m,
            &mut [Resizer::new(), Resizer::new()],
            &mut Vec::new(),
        )
        .unwrap();
        let mut want = OwnedFrame::new(16, 12, PixelFormat::Rgb).unwrap();
        Resizer::new()
            .resize(&rgb.as_frame(), &mut want.as_frame_mut())
            .unwrap();
        let worst = small
            .data()
            .iter()
            .zip(want.data())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= 8, "{worst}");
    }

    #[test]
    fn planes_that_do_not_fit_are_refused() {
        let (mut y, mut u, mut v) = planes(4, 4);
        assert!(I420Mut::new([&mut y, &mut u, &mut v], [4, 2, 2], 5, 4).is_err());
        assert!(I420::new([&y, &u[..3], &v], [4, 2, 2], 4, 4).is_err());
    }
}
