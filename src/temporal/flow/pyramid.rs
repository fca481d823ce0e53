//! Image pyramids: 2x box downscaling, Sobel gradients of the first image and the second
//! image with a replicated border, all kept between calls.

use super::GrayImage;

/// One pyramid level of both images, with the flow being estimated at that level.
#[derive(Debug, Default)]
pub(super) struct Level {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// Width of the replicated border around `i1e`.
    pub border: usize,
    /// Row stride of `i1e`: `w + 2 * border`.
    pub ew: usize,
    /// 8-bit first and second images (the source of the next coarser level).
    g0: Vec<u8>,
    g1: Vec<u8>,
    /// First image in floats.
    pub i0: Vec<f32>,
    /// Its gradients (Sobel, scaled to grey levels per pixel).
    pub ix: Vec<f32>,
    pub iy: Vec<f32>,
    /// Second image in floats, with `border` replicated pixels on each side, so that
    /// patches and bilinear taps near the edges need no clamping.
    pub i1e: Vec<f32>,
    /// Dense flow at this level, one plane per component.
    pub ux: Vec<f32>,
    pub uy: Vec<f32>,
    /// Scratch rows for the gradient filter.
    smooth: Vec<f32>,
    diff: Vec<f32>,
}

impl Level {
    /// Index of pixel `(x, y)` of the second image in `i1e` (coordinates may be negative
    /// down to `-border`).
    #[inline]
    pub fn i1_index(&self, x: isize, y: isize) -> usize {
        ((y + self.border as isize) as usize) * self.ew + (x + self.border as isize) as usize
    }
}

/// Fills levels `finest..=coarsest` from the two images (levels below `finest` only keep the
/// 8-bit images they are built from).
pub(super) fn build(
    levels: &mut [Level],
    from: &GrayImage,
    to: &GrayImage,
    finest: usize,
    coarsest: usize,
    border: usize,
) {
    let (w, h) = (from.width(), from.height());
    levels[0].w = w;
    levels[0].h = h;
    for s in 1..=coarsest {
        let (lower, upper) = levels.split_at_mut(s);
        let (prev, cur) = (&lower[s - 1], &mut upper[0]);
        let (src0, src1) = if s == 1 {
            (from.data(), to.data())
        } else {
            (&prev.g0[..], &prev.g1[..])
        };
        halve(src0, prev.w, prev.h, &mut cur.g0);
        halve(src1, prev.w, prev.h, &mut cur.g1);
        cur.w = prev.w / 2;
        cur.h = prev.h / 2;
    }
    for (s, level) in levels
        .iter_mut()
        .enumerate()
        .take(coarsest + 1)
        .skip(finest)
    {
        let (lw, lh) = (level.w, level.h);
        let n = lw * lh;
        let Level {
            g0,
            g1,
            i0,
            ix,
            iy,
            i1e,
            ux,
            uy,
            smooth,
            diff,
            ..
        } = level;
        let (a, b) = if s == 0 {
            (from.data(), to.data())
        } else {
            (&g0[..], &g1[..])
        };
        i0.resize(n, 0.0);
        for (d, &p) in i0.iter_mut().zip(a) {
            *d = p as f32;
        }
        ix.resize(n, 0.0);
        iy.resize(n, 0.0);
        smooth.resize(lw, 0.0);
        diff.resize(lw, 0.0);
        sobel(a, lw, lh, ix, iy, smooth, diff);
        extend(b, lw, lh, border, i1e);
        ux.resize(n, 0.0);
        uy.resize(n, 0.0);
        level.border = border;
        level.ew = lw + 2 * border;
    }
}

/// 2x box downscale (odd last row/column dropped), rounding to nearest.
fn halve(src: &[u8], sw: usize, sh: usize, dst: &mut Vec<u8>) {
    let (dw, dh) = (sw / 2, sh / 2);
    dst.resize(dw * dh, 0);
    for (y, out) in dst.chunks_exact_mut(dw).enumerate() {
        let r0 = &src[2 * y * sw..][..2 * dw];
        let r1 = &src[(2 * y + 1) * sw..][..2 * dw];
        for ((o, a), b) in out
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            let sum = a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16;
            *o = ((sum + 2) >> 2) as u8;
        }
    }
}

/// 3x3 Sobel gradients divided by 8 (so that a ramp of slope 1 gives 1), reflecting the
/// border without repeating the edge pixel. Needs `w, h >= 2`.
fn sobel(
    src: &[u8],
    w: usize,
    h: usize,
    ix: &mut [f32],
    iy: &mut [f32],
    smooth: &mut [f32],
    diff: &mut [f32],
) {
    const K: f32 = 1.0 / 8.0;
    for y in 0..h {
        let ym = if y == 0 { 1 } else { y - 1 };
        let yp = if y + 1 == h { h - 2 } else { y + 1 };
        let (rm, r, rp) = (&src[ym * w..][..w], &src[y * w..][..w], &src[yp * w..][..w]);
        for x in 0..w {
            smooth[x] = rm[x] as f32 + 2.0 * r[x] as f32 + rp[x] as f32;
            diff[x] = rp[x] as f32 - rm[x] as f32;
        }
        let (gx, gy) = (&mut ix[y * w..][..w], &mut iy[y * w..][..w]);
        gx[0] = 0.0;
        gx[w - 1] = 0.0;
        gy[0] = (2.0 * diff[1] + 2.0 * diff[0]) * K;
        gy[w - 1] = (2.0 * diff[w - 2] + 2.0 * diff[w - 1]) * K;
        for x in 1..w - 1 {
            gx[x] = (smooth[x + 1] - smooth[x - 1]) * K;
            gy[x] = (diff[x - 1] + 2.0 * diff[x] + diff[x + 1]) * K;
        }
    }
}

/// The image in floats with `b` replicated pixels around it.
fn extend(src: &[u8], w: usize, h: usize, b: usize, dst: &mut Vec<f32>) {
    let ew = w + 2 * b;
    dst.resize(ew * (h + 2 * b), 0.0);
    for (ey, out) in dst.chunks_exact_mut(ew).enumerate() {
        let y = ey.saturating_sub(b).min(h - 1);
        let row = &src[y * w..][..w];
        let (left, rest) = out.split_at_mut(b);
        let (mid, right) = rest.split_at_mut(w);
        left.fill(row[0] as f32);
        right.fill(row[w - 1] as f32);
        for (d, &p) in mid.iter_mut().zip(row) {
            *d = p as f32;
        }
    }
}

#[cfg(test)]
impl Level {
    /// Address and capacity of every buffer (to check that nothing is reallocated).
    pub fn fingerprint(&self, out: &mut Vec<(usize, usize)>) {
        for v in [&self.g0, &self.g1] {
            out.push((v.as_ptr() as usize, v.capacity()));
        }
        for v in [
            &self.i0,
            &self.ix,
            &self.iy,
            &self.i1e,
            &self.ux,
            &self.uy,
            &self.smooth,
            &self.diff,
        ] {
            out.push((v.as_ptr() as usize, v.capacity()));
        }
    }
}
