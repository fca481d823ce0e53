//! The per-frame kernels of flow blending: luma at low resolution, a confidence map from the
//! forward-backward and photometric checks, and the full-resolution warp-and-blend.
//!
//! Flow is computed on small luma images (a divisor `n` of the frame size); the warp and
//! the blend run at full resolution, reading the low-resolution maps bilinearly.

use super::flow::{FlowField, GrayImage, sample_bilinear};
use crate::frame::{Frame, FrameMut};

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

/// Luma of `frame`, each `n`×`n` block averaged (BT.601 weights), into `out`
/// (`width / n` × `height / n`, reshaped as needed; the last partial block is dropped).
///
/// Exactly `round(Σ (77 r + 150 g + 29 b) / (256 × area))` over each block. The block rows
/// are first summed byte by byte, then weighted per pixel column (both element-wise, so the
/// compiler vectorises them), then summed per block.
pub fn luma_downscale(frame: &Frame<'_>, n: usize, out: &mut GrayImage) {
    let n = n.max(1);
    let (lw, lh) = ((frame.width() / n).max(1), (frame.height() / n).max(1));
    out.reshape(lw, lh);
    if n > LUMA_MAX_BLOCK {
        return luma_downscale_scalar(frame, n, out);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { luma_blocks_avx2(frame, n, out) };
    }
    luma_blocks_any(frame, n, out)
}

/// [`luma_blocks`] for the pixel size of `frame`.
#[inline(always)]
fn luma_blocks_any(frame: &Frame<'_>, n: usize, out: &mut GrayImage) {
    match frame.format().bytes_per_pixel() {
        3 => luma_blocks::<3>(frame, n, out),
        _ => luma_blocks::<4>(frame, n, out),
    }
}

/// [`luma_blocks_any`] compiled for AVX2 (integer sums, so the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn luma_blocks_avx2(frame: &Frame<'_>, n: usize, out: &mut GrayImage) {
    luma_blocks_any(frame, n, out)
}

/// Widest block [`luma_blocks`] handles: its 16-bit column sums hold up to 257 rows of 255,
/// and the weighted block sum (below 65 536 × area) fits 32 bits.
const LUMA_MAX_BLOCK: usize = 256;

/// Bytes of one tile of column sums (on the stack); at least one block row of
/// [`LUMA_MAX_BLOCK`] four-byte pixels.
const LUMA_TILE: usize = 1024;

/// [`luma_downscale`] for `BPP`-byte pixels and blocks of at most [`LUMA_MAX_BLOCK`].
#[inline(always)]
fn luma_blocks<const BPP: usize>(frame: &Frame<'_>, n: usize, out: &mut GrayImage) {
    let (lw, lh) = (out.width(), out.height());
    let [ro, go, bo] = frame.format().rgb_offsets();
    let rows = n.min(frame.height());
    let cols = n.min(frame.width());
    // Weights sum to 256 × block area, so one division per output pixel (a multiplication).
    let area = (rows * cols) as u32;
    let div = BlockDivisor::new(area * 256);
    // Bytes from one block to the next, and of one block (fewer when the frame is narrower
    // than a block: then there is a single one).
    let (step, bytes) = (n * BPP, cols * BPP);
    let per_tile = LUMA_TILE / step;
    let mut sums = [0u16; LUMA_TILE];
    let mut lum = [0u32; LUMA_TILE / 3];
    let mut weights = [0u32; BPP];
    (weights[ro], weights[go], weights[bo]) = (77, 150, 29);
    let data = out.data_mut();
    for ly in 0..lh {
        let dst = &mut data[ly * lw..(ly + 1) * lw];
        for (t, blocks) in dst.chunks_mut(per_tile).enumerate() {
            let start = t * per_tile * step;
            let len = (blocks.len() - 1) * step + bytes;
            let sums = &mut sums[..len];
            // Column sums of the block rows, byte by byte.
            let row = |i: usize| &frame.row(ly * n + i)[start..start + len];
            match rows {
                1 => column_sums([row(0)], sums),
                2 => column_sums([row(0), row(1)], sums),
                3 => column_sums([row(0), row(1), row(2)], sums),
                4 => column_sums([row(0), row(1), row(2), row(3)], sums),
                _ => {
                    sums.fill(0);
                    for i in 0..rows {
                        for (s, &b) in sums.iter_mut().zip(row(i)) {
                            *s += u16::from(b);
                        }
                    }
                }
            }
            // Weighted per pixel column (element-wise), then summed per block.
            let lum = &mut lum[..len / BPP];
            for (l, p) in lum.iter_mut().zip(sums.chunks_exact(BPP)) {
                *l = (0..BPP).map(|k| u32::from(p[k]) * weights[k]).sum();
            }
            for (j, d) in blocks.iter_mut().enumerate() {
                let sum: u32 = lum[j * n..j * n + cols].iter().sum();
                *d = div.div(sum + area * 128) as u8;
            }
        }
    }
}

/// `sums[j] = Σ rows[i][j]`, the rows summed in registers (the usual block heights).
#[inline(always)]
fn column_sums<const R: usize>(rows: [&[u8]; R], sums: &mut [u16]) {
    let rows = rows.map(|r| &r[..sums.len()]);
    for (j, s) in sums.iter_mut().enumerate() {
        *s = rows.iter().map(|r| u16::from(r[j])).sum();
    }
}

/// Exact `x / d` for the block sums of [`luma_blocks`] (`x` below 65 536 × area,
/// `d` = 256 × area), by a multiplication where that is exact.
#[derive(Clone, Copy, Debug)]
struct BlockDivisor {
    d: u32,
    /// `ceil(2^48 / d)`, or 0 to divide.
    m: u64,
}

impl BlockDivisor {
    fn new(d: u32) -> Self {
        // With m = ceil(2^48 / d), (x × m) >> 48 = x / d whenever x × d < 2^48: true for
        // blocks of up to 4096 pixels (x × d < 2^24 × area²). x × m stays below 2^57.
        let m = if d <= 256 * 4096 {
            (1u64 << 48).div_ceil(u64::from(d))
        } else {
            0
        };
        Self { d, m }
    }

    #[inline(always)]
    fn div(self, x: u32) -> u32 {
        if self.m != 0 {
            ((u64::from(x) * self.m) >> 48) as u32
        } else {
            x / self.d
        }
    }
}

/// [`luma_downscale`] one pixel at a time: for blocks too large for [`luma_blocks`].
fn luma_downscale_scalar(frame: &Frame<'_>, n: usize, out: &mut GrayImage) {
    let (lw, lh) = (out.width(), out.height());
    let bpp = frame.format().bytes_per_pixel();
    let [ro, go, bo] = frame.format().rgb_offsets();
    let rows = n.min(frame.height());
    let cols = n.min(frame.width());
    let area = (rows * cols) as u64;
    let data = out.data_mut();
    for ly in 0..lh {
        let dst = &mut data[ly * lw..(ly + 1) * lw];
        for (lx, d) in dst.iter_mut().enumerate() {
            let mut sum = 0u64;
            for y in ly * n..ly * n + rows {
                let row = &frame.row(y)[lx * n * bpp..(lx * n + cols) * bpp];
                for p in row.chunks_exact(bpp) {
                    sum += 77 * p[ro] as u64 + 150 * p[go] as u64 + 29 * p[bo] as u64;
                }
            }
            *d = ((sum + area * 128) / (area * 256)) as u8;
        }
    }
}

/// Bilinear sample of a flow field at a real position (clamped to the field).
#[inline]
pub fn sample_flow(flow: &FlowField, x: f32, y: f32) -> (f32, f32) {
    let (w, h) = (flow.width(), flow.height());
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let d = flow.data();
    let at = |xx: usize, yy: usize| {
        let i = (yy * w + xx) * 2;
        (d[i], d[i + 1])
    };
    let (a, b, c, e) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
    let top = (a.0 + (b.0 - a.0) * fx, a.1 + (b.1 - a.1) * fx);
    let bot = (c.0 + (e.0 - c.0) * fx, c.1 + (e.1 - c.1) * fx);
    (top.0 + (bot.0 - top.0) * fy, top.1 + (bot.1 - top.1) * fy)
}

/// Thresholds of the confidence map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfidenceParams {
    /// Forward-backward check: a pixel is consistent while
    /// `|b + f|² < fb_relative × (|b|² + |f|²) + fb_absolute` (pixels of the flow image);
    /// confidence falls linearly to zero at twice that.
    pub fb_relative: f32,
    /// See `fb_relative`.
    pub fb_absolute: f32,
    /// Motion-boundary check: a pixel is trusted while the squared flow gradient
    /// `|∇u|² + |∇v|²` is below `mb_relative × |b|² + mb_absolute`; flow estimators smooth
    /// across the edges of moving objects, where the uncovered background has no past.
    pub mb_relative: f32,
    /// See `mb_relative`.
    pub mb_absolute: f32,
    /// Photometric check: confidence is 1 while the warped previous luma differs from the
    /// current by less than this (grey levels), and falls linearly to zero at twice that.
    pub photometric: f32,
}

impl Default for ConfidenceParams {
    fn default() -> Self {
        // Ruder et al. 2016's forward-backward and motion-boundary rules, with looser
        // absolute slack: tuned on the first half of one clip (scripts/eval_temporal.sh),
        // where stricter checks left flicker in pixels that were in fact tracked.
        Self {
            fb_relative: 0.01,
            fb_absolute: 4.0,
            mb_relative: 0.01,
            mb_absolute: 0.3,
            photometric: 30.0,
        }
    }
}

/// Per-pixel confidence (0..1) that the previous frame, moved along `bwd`, shows the same
/// surface as the current one. `bwd` maps current → previous, `fwd` previous → current.
/// Returns the fraction of pixels with confidence above one half.
///
/// Runs on tiles of a row, in passes the compiler vectorises (positions, then the checks)
/// around one that gathers the bilinear neighbours of the moved positions. The arithmetic is
/// that of [`sample_flow`] and [`sample_bilinear`], operation for operation, so the map is
/// the same to the bit.
pub fn confidence(
    cur: &GrayImage,
    prev: &GrayImage,
    bwd: &FlowField,
    fwd: &FlowField,
    p: &ConfidenceParams,
    conf: &mut Vec<f32>,
) -> f32 {
    let (w, h) = (cur.width(), cur.height());
    conf.resize(w * h, 0.0);
    let sizes = [
        (prev.width(), prev.height()),
        (bwd.width(), bwd.height()),
        (fwd.width(), fwd.height()),
    ];
    if w == 0 || h == 0 || w * h > i32::MAX as usize || sizes.iter().any(|&s| s != (w, h)) {
        return confidence_scalar(cur, prev, bwd, fwd, p, conf);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { confidence_avx2(cur, prev, bwd, fwd, p, conf) };
    }
    confidence_tiles(cur, prev, bwd, fwd, p, conf)
}

/// [`confidence_tiles`] compiled for AVX2 (eight floats a vector instead of four); the
/// same operations, so the same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn confidence_avx2(
    cur: &GrayImage,
    prev: &GrayImage,
    bwd: &FlowField,
    fwd: &FlowField,
    p: &ConfidenceParams,
    conf: &mut [f32],
) -> f32 {
    confidence_tiles(cur, prev, bwd, fwd, p, conf)
}

/// [`confidence`] for maps of the same size, at most `i32::MAX` pixels.
#[inline(always)]
fn confidence_tiles(
    cur: &GrayImage,
    prev: &GrayImage,
    bwd: &FlowField,
    fwd: &FlowField,
    p: &ConfidenceParams,
    conf: &mut [f32],
) -> f32 {
    let (w, h) = (cur.width(), cur.height());
    let (maxx, maxy) = ((w - 1) as f32, (h - 1) as f32);
    let (cd, pd, bd, fd) = (cur.data(), prev.data(), bwd.data(), fwd.data());
    let mut t = ConfTile::default();
    let mut good = 0usize;
    for y in 0..h {
        // Central differences inside, one-sided at the edges: the divisor is 2 or 1 (0 when
        // the image is one pixel wide), and dividing by it is multiplying by its exact inverse.
        let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
        let sy = 1.0 / (yd - yu).max(1) as f32;
        let row = &bd[2 * y * w..2 * (y + 1) * w];
        let (row_u, row_d) = (
            &bd[2 * yu * w..2 * (yu + 1) * w],
            &bd[2 * yd * w..2 * (yd + 1) * w],
        );
        let crow = &cd[y * w..(y + 1) * w];
        let yf = y as f32;
        for x0 in (0..w).step_by(CONF_TILE) {
            let len = CONF_TILE.min(w - x0);
            let (row, row_u, row_d) = (
                &row[2 * x0..2 * (x0 + len)],
                &row_u[2 * x0..2 * (x0 + len)],
                &row_d[2 * x0..2 * (x0 + len)],
            );
            let crow = &crow[x0..x0 + len];
            // Positions: element-wise. Pixels moved outside get confidence 0, and sample the
            // top-left corner meanwhile.
            for k in 0..len {
                let (bu, bv) = (row[2 * k], row[2 * k + 1]);
                // Exact: x and y are far below 2^24.
                let (px, py) = ((x0 + k) as i32 as f32 + bu, yf + bv);
                let inside = 0.0 <= px && px <= maxx && 0.0 <= py && py <= maxy;
                let (px, py) = if inside { (px, py) } else { (0.0, 0.0) };
                // Truncation, as `as usize` in `sample_flow` (the positions are in range).
                let (ix, iy) = (px as i32, py as i32);
                t.inside[k] = inside;
                t.bu[k] = bu;
                t.bv[k] = bv;
                t.fx[k] = px - ix as f32;
                t.fy[k] = py - iy as f32;
                t.at[k] = iy * w as i32 + ix;
                t.right[k] = (ix < w as i32 - 1) as i32;
                t.down[k] = if iy < h as i32 - 1 { w as i32 } else { 0 };
                t.cur[k] = crow[k] as f32;
                t.g[1][k] = (row_d[2 * k] - row_u[2 * k]) * sy;
                t.g[3][k] = (row_d[2 * k + 1] - row_u[2 * k + 1]) * sy;
            }
            // Horizontal gradient: central differences, element-wise inside the image.
            let inner = x0.max(1) - x0..(x0 + len).min(w - 1).max(x0.max(1)) - x0;
            if !inner.is_empty() {
                let full = &bd[2 * y * w..2 * (y + 1) * w];
                let (lo, hi) = (2 * (x0 + inner.start) - 2, 2 * (x0 + inner.end) + 2);
                let span = &full[lo..hi];
                let [g0, _, g2, _] = &mut t.g;
                let (g0, g2) = (&mut g0[inner.clone()], &mut g2[inner.clone()]);
                for k in 0..g0.len() {
                    g0[k] = (span[2 * k + 4] - span[2 * k]) * 0.5;
                    g2[k] = (span[2 * k + 5] - span[2 * k + 1]) * 0.5;
                }
            }
            for k in (0..len).filter(|k| !inner.contains(k)) {
                let x = x0 + k;
                let full = &bd[2 * y * w..2 * (y + 1) * w];
                let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let sx = 1.0 / (xr - xl).max(1) as f32;
                t.g[0][k] = (full[2 * xr] - full[2 * xl]) * sx;
                t.g[2][k] = (full[2 * xr + 1] - full[2 * xl + 1]) * sx;
            }
            // Gathers: the four neighbours of each moved position in the forward flow and
            // the previous luma.
            for k in 0..len {
                let i00 = t.at[k] as usize;
                let (i10, i01) = (i00 + t.right[k] as usize, i00 + t.down[k] as usize);
                let i11 = i01 + t.right[k] as usize;
                t.f[0][k] = fd[2 * i00];
                t.f[1][k] = fd[2 * i10];
                t.f[2][k] = fd[2 * i01];
                t.f[3][k] = fd[2 * i11];
                t.f[4][k] = fd[2 * i00 + 1];
                t.f[5][k] = fd[2 * i10 + 1];
                t.f[6][k] = fd[2 * i01 + 1];
                t.f[7][k] = fd[2 * i11 + 1];
                t.l[0][k] = pd[i00] as f32;
                t.l[1][k] = pd[i10] as f32;
                t.l[2][k] = pd[i01] as f32;
                t.l[3][k] = pd[i11] as f32;
            }
            // The checks, element-wise over the whole tile (lanes past `len` hold stale but
            // harmless values).
            for k in 0..CONF_TILE {
                let (fx, fy) = (t.fx[k], t.fy[k]);
                let lerp = |a: f32, b: f32, f: f32| a + (b - a) * f;
                // sample_flow(fwd, px, py)
                let (top_u, top_v) = (
                    lerp(t.f[0][k], t.f[1][k], fx),
                    lerp(t.f[4][k], t.f[5][k], fx),
                );
                let (bot_u, bot_v) = (
                    lerp(t.f[2][k], t.f[3][k], fx),
                    lerp(t.f[6][k], t.f[7][k], fx),
                );
                let (fu, fv) = (lerp(top_u, bot_u, fy), lerp(top_v, bot_v, fy));
                let (bu, bv) = (t.bu[k], t.bv[k]);
                let (eu, ev) = (bu + fu, bv + fv);
                let err = eu * eu + ev * ev;
                let thr = p.fb_relative * (bu * bu + bv * bv + fu * fu + fv * fv) + p.fb_absolute;
                let c_fb = (2.0 - err / thr).clamp(0.0, 1.0);
                // sample_bilinear(prev, px, py)
                let top = lerp(t.l[0][k], t.l[1][k], fx);
                let bottom = lerp(t.l[2][k], t.l[3][k], fx);
                let diff = (t.cur[k] - lerp(top, bottom, fy)).abs();
                let c_ph = (2.0 - diff / p.photometric).clamp(0.0, 1.0);
                let g = &t.g;
                let grad =
                    g[0][k] * g[0][k] + g[1][k] * g[1][k] + g[2][k] * g[2][k] + g[3][k] * g[3][k];
                let mb_thr = p.mb_relative * (bu * bu + bv * bv) + p.mb_absolute;
                let c_mb = (2.0 - grad / mb_thr).clamp(0.0, 1.0);
                t.c[k] = if t.inside[k] { c_fb * c_ph * c_mb } else { 0.0 };
            }
            conf[y * w + x0..y * w + x0 + len].copy_from_slice(&t.c[..len]);
            good += t.c[..len].iter().filter(|&&c| c > 0.5).count();
        }
    }
    good as f32 / (w * h) as f32
}

/// Pixels of a row that [`confidence`] handles at once.
const CONF_TILE: usize = 64;

/// One tile of [`confidence`]'s gathered inputs, structure of arrays.
struct ConfTile {
    inside: [bool; CONF_TILE],
    bu: [f32; CONF_TILE],
    bv: [f32; CONF_TILE],
    fx: [f32; CONF_TILE],
    fy: [f32; CONF_TILE],
    /// Index of the top-left neighbour of the moved position, and the steps to the right
    /// (0 or 1) and bottom (0 or the width) ones.
    at: [i32; CONF_TILE],
    right: [i32; CONF_TILE],
    down: [i32; CONF_TILE],
    /// Forward flow u at the four neighbours (top-left, top-right, bottom-left,
    /// bottom-right), then v.
    f: [[f32; CONF_TILE]; 8],
    /// Previous luma at the four neighbours.
    l: [[f32; CONF_TILE]; 4],
    cur: [f32; CONF_TILE],
    /// Backward flow gradient: du/dx, du/dy, dv/dx, dv/dy.
    g: [[f32; CONF_TILE]; 4],
    c: [f32; CONF_TILE],
}

impl Default for ConfTile {
    fn default() -> Self {
        let (z, zi) = ([0.0; CONF_TILE], [0; CONF_TILE]);
        Self {
            inside: [false; CONF_TILE],
            bu: z,
            bv: z,
            fx: z,
            fy: z,
            at: zi,
            right: zi,
            down: zi,
            f: [z; 8],
            l: [z; 4],
            cur: z,
            g: [z; 4],
            c: z,
        }
    }
}

/// [`confidence`] one pixel at a time, for maps whose sizes differ (each sampled within its
/// own bounds).
fn confidence_scalar(
    cur: &GrayImage,
    prev: &GrayImage,
    bwd: &FlowField,
    fwd: &FlowField,
    p: &ConfidenceParams,
    conf: &mut [f32],
) -> f32 {
    let (w, h) = (cur.width(), cur.height());
    if w == 0 || h == 0 {
        return 0.0;
    }
    let (maxx, maxy) = ((w - 1) as f32, (h - 1) as f32);
    let cd = cur.data();
    let bd = bwd.data();
    let mut good = 0usize;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (bu, bv) = (bd[2 * i], bd[2 * i + 1]);
            let (px, py) = (x as f32 + bu, y as f32 + bv);
            let c = if !(0.0..=maxx).contains(&px) || !(0.0..=maxy).contains(&py) {
                0.0
            } else {
                let (fu, fv) = sample_flow(fwd, px, py);
                let (eu, ev) = (bu + fu, bv + fv);
                let err = eu * eu + ev * ev;
                let thr = p.fb_relative * (bu * bu + bv * bv + fu * fu + fv * fv) + p.fb_absolute;
                let c_fb = (2.0 - err / thr).clamp(0.0, 1.0);
                let diff = (cd[i] as f32 - sample_bilinear(prev, px, py)).abs();
                let c_ph = (2.0 - diff / p.photometric).clamp(0.0, 1.0);
                let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
                let dx = |k: usize| {
                    (bd[2 * (y * w + xr) + k] - bd[2 * (y * w + xl) + k]) / (xr - xl).max(1) as f32
                };
                let dy = |k: usize| {
                    (bd[2 * (yd * w + x) + k] - bd[2 * (yu * w + x) + k]) / (yd - yu).max(1) as f32
                };
                let grad = dx(0).powi(2) + dy(0).powi(2) + dx(1).powi(2) + dy(1).powi(2);
                let mb_thr = p.mb_relative * (bu * bu + bv * bv) + p.mb_absolute;
                let c_mb = (2.0 - grad / mb_thr).clamp(0.0, 1.0);
                c_fb * c_ph * c_mb
            };
            conf[i] = c;
            good += (c > 0.5) as usize;
        }
    }
    good as f32 / (w * h) as f32
}

/// Scratch space of [`warp_blend`], kept between frames.
#[derive(Debug, Default)]
pub struct WarpScratch {
    /// Runs of output columns between the same two low-res columns: first column, end,
    /// left low-res column, right one.
    runs: Vec<Run>,
    /// Per output column: weight of the right low-res column.
    fx: Vec<f32>,
    /// Per output column, as a float.
    xs: Vec<f32>,
    /// Two low-res rows (u, v, confidence), each interpolated to the output width, and
    /// which low-res rows they hold.
    up: [[Vec<f32>; 3]; 2],
    held: [usize; 2],
    /// One output row of: blend weight (0..=256), byte index of the top-left source pixel,
    /// bilinear weights (0..=256).
    a: Vec<u32>,
    idx: Vec<u32>,
    gx: Vec<u32>,
    gy: Vec<u32>,
    /// Size the tables were built for.
    built: (usize, usize, usize),
}

/// Output columns `start..end` between low-res columns `left` and `right`.
type Run = (u32, u32, u32, u32);

/// What the per-row kernels of [`warp_blend`] share.
#[derive(Clone, Copy, Debug)]
struct RowGeom {
    /// The output row, and its weight between the two low-res rows held.
    yf: f32,
    fy: f32,
    /// Largest source position, 1/256 pixel.
    maxxf: f32,
    maxyf: f32,
    /// Largest top-left source pixel (one from the right and bottom edges).
    lastx: i32,
    lasty: i32,
    hstride: u32,
    bpp: u32,
    /// `weight × 256`.
    weight256: f32,
}

/// Blends `out` (the new stylised frame) with `history` (the previous output, same size and
/// format) moved along `bwd` (low-res flow current → previous, `n` times smaller than the
/// frame): `out += weight × confidence × (warped history − out)`. Alpha and padding bytes
/// are left alone. Frames narrower or shorter than two pixels are left as they are.
///
/// Confidence is expected in 0..=1 (as [`confidence`] makes it); the blend weight is clamped
/// to that range.
pub fn warp_blend(
    out: &mut FrameMut<'_>,
    history: &Frame<'_>,
    bwd: &FlowField,
    conf: &[f32],
    n: usize,
    weight: f32,
    scratch: &mut WarpScratch,
) {
    warp_blend_with(out, history, bwd, conf, n, weight, scratch, true);
}

/// [`warp_blend`], with or without the SIMD kernels (when the CPU has them): both give the
/// same bytes, which the tests check.
#[allow(clippy::too_many_arguments)]
fn warp_blend_with(
    out: &mut FrameMut<'_>,
    history: &Frame<'_>,
    bwd: &FlowField,
    conf: &[f32],
    n: usize,
    weight: f32,
    scratch: &mut WarpScratch,
    simd: bool,
) {
    let (w, h) = (out.width(), out.height());
    let (lw, lh) = (bwd.width(), bwd.height());
    debug_assert_eq!((history.width(), history.height()), (w, h));
    debug_assert_eq!(conf.len(), lw * lh);
    if w < 2 || h < 2 {
        return;
    }
    let nf = n as f32;
    let sc = scratch;
    if sc.built != (w, lw, n) {
        sc.runs.clear();
        sc.fx.clear();
        sc.xs.clear();
        for x in 0..w {
            let lx = ((x as f32 + 0.5) / nf - 0.5).clamp(0.0, (lw - 1) as f32);
            let x0 = lx as usize;
            let x1 = (x0 + 1).min(lw - 1);
            match sc.runs.last_mut() {
                Some(r) if (r.2, r.3) == (x0 as u32, x1 as u32) => r.1 = x as u32 + 1,
                _ => sc.runs.push((x as u32, x as u32 + 1, x0 as u32, x1 as u32)),
            }
            sc.fx.push(lx - x0 as f32);
            sc.xs.push(x as f32);
        }
        for row in sc.up.iter_mut() {
            for v in row.iter_mut() {
                v.resize(w, 0.0);
            }
        }
        sc.a.resize(w, 0);
        sc.idx.resize(w, 0);
        sc.gx.resize(w, 0);
        sc.gy.resize(w, 0);
        sc.built = (w, lw, n);
    }
    let bpp = out.format().bytes_per_pixel();
    let [ro, go, bo] = out.format().rgb_offsets();
    let hstride = history.stride();
    let hdata = history.data();
    // The SIMD kernels hold byte indices in signed 32-bit lanes.
    let simd = simd && hdata.len() <= i32::MAX as usize;
    let mut g = RowGeom {
        yf: 0.0,
        fy: 0.0,
        maxxf: ((w - 1) * 256) as f32,
        maxyf: ((h - 1) * 256) as f32,
        // The top-left source pixel stays at least one pixel from the right and bottom
        // edges (with a weight of 256 on the far one), so its neighbours are in the frame.
        lastx: (w - 2) as i32,
        lasty: (h - 2) as i32,
        hstride: hstride as u32,
        bpp: bpp as u32,
        weight256: weight.clamp(0.0, 1.0) * 256.0,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = simd && std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    let flow = bwd.data();
    // The flow changes every frame: nothing held is valid.
    sc.held = [usize::MAX; 2];
    for y in 0..h {
        let ly = ((y as f32 + 0.5) / nf - 0.5).clamp(0.0, (lh - 1) as f32);
        let y0 = ly as usize;
        let y1 = (y0 + 1).min(lh - 1);
        g.yf = y as f32;
        g.fy = ly - y0 as f32;
        // Each low-res row is interpolated to the output width once (a gather), not once per
        // output row: consecutive output rows share it.
        if sc.held[0] != y0 {
            if sc.held[1] == y0 {
                sc.up.swap(0, 1);
                sc.held.swap(0, 1);
            } else {
                upsample_row(y0, flow, conf, lw, (&sc.runs, &sc.fx), nf, &mut sc.up[0]);
                sc.held[0] = y0;
            }
        }
        if sc.held[1] != y1 {
            upsample_row(y1, flow, conf, lw, (&sc.runs, &sc.fx), nf, &mut sc.up[1]);
            sc.held[1] = y1;
        }
        let dst = out.row_mut(y);
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has AVX2 (checked above).
            done = unsafe {
                if bpp == 4 {
                    warp_row_avx2::<4>(dst, hdata, &g, &sc.up)
                } else {
                    warp_row_avx2::<3>(dst, hdata, &g, &sc.up)
                }
            };
        }
        if done == w {
            continue;
        }
        row_tables(
            &g,
            &sc.up,
            &sc.xs,
            done,
            [&mut sc.a, &mut sc.idx, &mut sc.gx, &mut sc.gy],
        );
        let tabs = Tabs {
            a: &sc.a[done..],
            idx: &sc.idx[done..],
            gx: &sc.gx[done..],
            gy: &sc.gy[done..],
        };
        let dst = &mut dst[done * bpp..];
        if bpp == 4 {
            blend_row4(dst, hdata, hstride, &tabs, [ro, go, bo]);
        } else {
            blend_row3(dst, hdata, hstride, &tabs, [ro, go, bo]);
        }
    }
}

/// Low-res row `ly` of the flow (in frame pixels) and of the confidence, interpolated to
/// the output width.
fn upsample_row(
    ly: usize,
    flow: &[f32],
    conf: &[f32],
    lw: usize,
    (runs, fxs): (&[Run], &[f32]),
    nf: f32,
    out: &mut [Vec<f32>; 3],
) {
    let frow = &flow[2 * ly * lw..2 * (ly + 1) * lw];
    let crow = &conf[ly * lw..(ly + 1) * lw];
    let [u, v, c] = out;
    // Run by run: the two low-res values are read once, and the interpolation over the run
    // is element-wise.
    for &(xs, xe, x0, x1) in runs {
        let (xs, xe, x0, x1) = (xs as usize, xe as usize, x0 as usize, x1 as usize);
        let (u0, u1) = (frow[2 * x0], frow[2 * x1]);
        let (v0, v1) = (frow[2 * x0 + 1], frow[2 * x1 + 1]);
        let (c0, c1) = (crow[x0], crow[x1]);
        let lerp = |u: &mut [f32], v: &mut [f32], c: &mut [f32], fx: &[f32]| {
            for (i, &fx) in fx.iter().enumerate() {
                u[i] = (u0 + (u1 - u0) * fx) * nf;
                v[i] = (v0 + (v1 - v0) * fx) * nf;
                c[i] = c0 + (c1 - c0) * fx;
            }
        };
        // Four at a time in fixed-size chunks (one vector each), then the rest.
        let (u, v, c, fx) = (&mut u[xs..xe], &mut v[xs..xe], &mut c[xs..xe], &fxs[xs..xe]);
        let split = fx.len() / 4 * 4;
        for (((u, v), c), fx) in u[..split]
            .chunks_exact_mut(4)
            .zip(v[..split].chunks_exact_mut(4))
            .zip(c[..split].chunks_exact_mut(4))
            .zip(fx[..split].chunks_exact(4))
        {
            let (u, v, c): (&mut [f32; 4], &mut [f32; 4], &mut [f32; 4]) = (
                u.try_into().expect("4 floats"),
                v.try_into().expect("4 floats"),
                c.try_into().expect("4 floats"),
            );
            let fx: &[f32; 4] = fx.try_into().expect("4 floats");
            lerp(u, v, c, fx);
        }
        lerp(
            &mut u[split..],
            &mut v[split..],
            &mut c[split..],
            &fx[split..],
        );
    }
}

/// One output row's source positions and weights, from pixel `x0` on: the flow and
/// confidence interpolated between the two low-res rows held, then fixed point (1/256
/// pixel). Element-wise over equal-length slices, so the compiler vectorises it.
fn row_tables(
    g: &RowGeom,
    up: &[[Vec<f32>; 3]; 2],
    xs: &[f32],
    x0: usize,
    [a, idx, gx, gy]: [&mut Vec<u32>; 4],
) {
    let n = xs.len() - x0;
    let xs = &xs[x0..];
    let ([u0, v0, c0], [u1, v1, c1]) = (&up[0], &up[1]);
    let (u0, v0, c0) = (&u0[x0..x0 + n], &v0[x0..x0 + n], &c0[x0..x0 + n]);
    let (u1, v1, c1) = (&u1[x0..x0 + n], &v1[x0..x0 + n], &c1[x0..x0 + n]);
    let (a, idx) = (&mut a[x0..x0 + n], &mut idx[x0..x0 + n]);
    let (gx, gy) = (&mut gx[x0..x0 + n], &mut gy[x0..x0 + n]);
    let fy = g.fy;
    for i in 0..n {
        let u = u0[i] + (u1[i] - u0[i]) * fy;
        let v = v0[i] + (v1[i] - v0[i]) * fy;
        let c = c0[i] + (c1[i] - c0[i]) * fy;
        // Clamped as floats, then truncated (NaN to 0): the same as truncating and clamping
        // the integer, in fewer instructions.
        let sx = ((xs[i] + u) * 256.0).clamp(0.0, g.maxxf) as i32;
        let sy = ((g.yf + v) * 256.0).clamp(0.0, g.maxyf) as i32;
        let ix = (sx >> 8).min(g.lastx);
        let iy = (sy >> 8).min(g.lasty);
        gx[i] = (sx - (ix << 8)) as u32;
        gy[i] = (sy - (iy << 8)) as u32;
        idx[i] = iy as u32 * g.hstride + ix as u32 * g.bpp;
        a[i] = (g.weight256 * c).clamp(0.0, 256.0) as u32;
    }
}

/// One row's source positions and weights.
struct Tabs<'a> {
    a: &'a [u32],
    idx: &'a [u32],
    gx: &'a [u32],
    gy: &'a [u32],
}

/// Moves `s` towards `w` by `a`/256 of the way, truncating the step so that a static scene
/// settles exactly on the new frame instead of sticking one level away.
#[inline(always)]
fn toward(s: u8, w: u32, a: i32) -> u8 {
    (s as i32 + (a * (w as i32 - s as i32)) / 256) as u8
}

/// Four-byte pixels (colour in bytes 0-2, alpha or padding in byte 3, which is kept).
#[cfg(target_arch = "x86_64")]
fn blend_row4(dst: &mut [u8], hdata: &[u8], hstride: usize, t: &Tabs<'_>, _offsets: [usize; 3]) {
    // SAFETY: SSE2 is part of the x86-64 baseline, so every x86-64 CPU has it.
    unsafe { blend_row4_sse2(dst, hdata, hstride, t) }
}

/// One pixel per iteration: the two source pixels of each row come in one 8-byte load,
/// widened to 16-bit lanes. Memory is only touched through checked slices.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn blend_row4_sse2(dst: &mut [u8], hdata: &[u8], hstride: usize, t: &Tabs<'_>) {
    use std::arch::x86_64::*;
    let zero = _mm_setzero_si128();
    let bytes8 = |i: usize| -> i64 {
        let b: [u8; 8] = hdata[i..i + 8].try_into().expect("8 bytes");
        i64::from_le_bytes(b)
    };
    for (x, px) in dst.chunks_exact_mut(4).enumerate() {
        let a = t.a[x] as i32;
        if a <= 0 {
            continue;
        }
        let (base, gx, gy) = (t.idx[x] as usize, t.gx[x] as i16, t.gy[x] as i16);
        let top = _mm_unpacklo_epi8(_mm_cvtsi64_si128(bytes8(base)), zero);
        let bot = _mm_unpacklo_epi8(_mm_cvtsi64_si128(bytes8(base + hstride)), zero);
        // Vertical: (top × (256 − gy) + bot × gy) >> 8, lanes stay below 65536.
        let v = _mm_srli_epi16(
            _mm_add_epi16(
                _mm_mullo_epi16(top, _mm_set1_epi16(256 - gy)),
                _mm_mullo_epi16(bot, _mm_set1_epi16(gy)),
            ),
            8,
        );
        // Horizontal: left pixel × (256 − gx) + right pixel × gx, then >> 8.
        let wx = _mm_set_epi16(gx, gx, gx, gx, 256 - gx, 256 - gx, 256 - gx, 256 - gx);
        let m = _mm_mullo_epi16(v, wx);
        let warped = _mm_srli_epi16(_mm_add_epi16(m, _mm_srli_si128(m, 8)), 8);
        // Blend: s + trunc(a/2 × (warped − s) / 128), signed 16-bit; byte 3 gets weight 0.
        let cur = _mm_unpacklo_epi8(
            _mm_cvtsi32_si128(i32::from_le_bytes([px[0], px[1], px[2], px[3]])),
            zero,
        );
        let a7 = (a / 2) as i16;
        let prod = _mm_mullo_epi16(
            _mm_sub_epi16(warped, cur),
            _mm_set_epi16(0, 0, 0, 0, 0, a7, a7, a7),
        );
        // Arithmetic shifts round towards −∞: add 127 to negative values to truncate to 0.
        let bias = _mm_and_si128(_mm_srai_epi16(prod, 15), _mm_set1_epi16(127));
        let step = _mm_srai_epi16(_mm_add_epi16(prod, bias), 7);
        let out = _mm_packus_epi16(_mm_add_epi16(cur, step), zero);
        px.copy_from_slice(&_mm_cvtsi128_si32(out).to_le_bytes());
    }
}

/// Four-byte pixels, portable: two channels at once in each 32-bit word.
#[cfg(not(target_arch = "x86_64"))]
fn blend_row4(dst: &mut [u8], hdata: &[u8], hstride: usize, t: &Tabs<'_>, offsets: [usize; 3]) {
    const M: u32 = 0x00ff_00ff;
    #[inline(always)]
    fn lerp2(a: u32, b: u32, w: u32) -> u32 {
        ((a * (256 - w) + b * w) >> 8) & M
    }
    let word = |i: usize| u32::from_le_bytes([hdata[i], hdata[i + 1], hdata[i + 2], hdata[i + 3]]);
    for (x, px) in dst.chunks_exact_mut(4).enumerate() {
        let a = t.a[x] as i32;
        if a <= 0 {
            continue;
        }
        let (base, gx, gy) = (t.idx[x] as usize, t.gx[x], t.gy[x]);
        let (p00, p10) = (word(base), word(base + 4));
        let (p01, p11) = (word(base + hstride), word(base + hstride + 4));
        let lo = lerp2(lerp2(p00 & M, p10 & M, gx), lerp2(p01 & M, p11 & M, gx), gy);
        let hi = lerp2(
            lerp2((p00 >> 8) & M, (p10 >> 8) & M, gx),
            lerp2((p01 >> 8) & M, (p11 >> 8) & M, gx),
            gy,
        );
        let warped = lo | (hi << 8);
        for o in offsets {
            px[o] = toward(px[o], (warped >> (8 * o)) & 0xff, a);
        }
    }
}

/// Three-byte pixels.
fn blend_row3(dst: &mut [u8], hdata: &[u8], hstride: usize, t: &Tabs<'_>, offsets: [usize; 3]) {
    for (x, px) in dst.chunks_exact_mut(3).enumerate() {
        let a = t.a[x] as i32;
        if a <= 0 {
            continue;
        }
        let (base, gx, gy) = (t.idx[x] as usize, t.gx[x], t.gy[x]);
        for o in offsets {
            let b = base + o;
            let top = hdata[b] as u32 * (256 - gx) + hdata[b + 3] as u32 * gx;
            let bot = hdata[b + hstride] as u32 * (256 - gx) + hdata[b + hstride + 3] as u32 * gx;
            let warped = (top * (256 - gy) + bot * gy) >> 16;
            px[o] = toward(px[o], warped, a);
        }
    }
}

/// [`row_tables`] and [`blend_row4`] / [`blend_row3`] fused, eight pixels per iteration
/// (two groups of four in 256-bit registers), with the same arithmetic: same results to the
/// bit. Three-byte pixels are widened to four (a zero byte) after loading and narrowed back
/// before storing. Returns how many pixels of the row it did (a multiple of eight); the
/// caller does the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn warp_row_avx2<const BPP: usize>(
    dst: &mut [u8],
    hdata: &[u8],
    g: &RowGeom,
    up: &[[Vec<f32>; 3]; 2],
) -> usize {
    use std::arch::x86_64::*;
    let w = dst.len() / BPP;
    let ([u0, v0, c0], [u1, v1, c1]) = (&up[0], &up[1]);
    let hstride = g.hstride as usize;
    // Largest top-left byte index whose two 8-byte rows lie in `hdata`. Indices follow from
    // clamped positions and pass (but at the very end of a packed three-byte frame, where
    // the caller's scalar code takes over); the check below makes the loads safe regardless.
    let Some(limit) = hdata.len().checked_sub(hstride + 8) else {
        return 0;
    };
    // `hdata.len() <= i32::MAX` (checked by the caller), so the limit and every index fit in
    // signed 32-bit lanes.
    let limit = _mm256_set1_epi32(limit as i32);
    let fy = _mm256_set1_ps(g.fy);
    let yf = _mm256_set1_ps(g.yf);
    let (zero_ps, c256_ps) = (_mm256_setzero_ps(), _mm256_set1_ps(256.0));
    let (maxx, maxy) = (_mm256_set1_ps(g.maxxf), _mm256_set1_ps(g.maxyf));
    let (lastx, lasty) = (_mm256_set1_epi32(g.lastx), _mm256_set1_epi32(g.lasty));
    let hstride8 = _mm256_set1_epi32(g.hstride as i32);
    let weight256 = _mm256_set1_ps(g.weight256);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let zero = _mm256_setzero_si256();
    let c127 = _mm256_set1_epi16(127);
    // 32-bit lanes picked from the per-pixel weights for each group of four pixels: one
    // pixel's weight per 64 bits (pixels 0 1 | 2 3), or per 128 bits for pixels 0 | 2 and
    // 1 | 3 (as the source pixels sit after unpacking).
    let sel = [
        _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3),
        _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7),
    ];
    let sel02 = [
        _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2),
        _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6),
    ];
    let sel13 = [
        _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3),
        _mm256_setr_epi32(5, 5, 5, 5, 7, 7, 7, 7),
    ];
    let colour = _mm256_set1_epi64x(0x0000_ffff_ffff_ffff);
    // Three-byte pixels: 4 × 16-bit lanes per pixel (r, r', g, g', b, b', 0, 0) from the
    // first and from the second 8 bytes loaded in each 128 bits, each pair a channel of the
    // left and right source pixels; the row's 12 bytes to 16 (a zero byte after each pixel)
    // and back.
    #[rustfmt::skip]
    let pair = |o: i8| _mm256_broadcastsi128_si256(_mm_setr_epi8(
        o, -1, o + 3, -1, o + 1, -1, o + 4, -1, o + 2, -1, o + 5, -1, -1, -1, -1, -1,
    ));
    let pairs = [pair(0), pair(8)];
    let widen = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    let narrow = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    let sel01 = [
        _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1),
        _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5),
    ];
    let sel23 = [
        _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
        _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7),
    ];
    let c255 = _mm256_set1_epi32(255);
    let lerp = |a: __m256, b: __m256| _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), fy));
    let clamp =
        |v: __m256, max: __m256| _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, zero_ps), max));
    // (a × (256 − f) + b × f) >> 8 per 16-bit lane, as a × 256 + (b − a) × f modulo 2^16:
    // the true value is below 65 536.
    let mix = |a: __m256i, b: __m256i, f: __m256i| {
        _mm256_srli_epi16(
            _mm256_add_epi16(
                _mm256_slli_epi16(a, 8),
                _mm256_mullo_epi16(_mm256_sub_epi16(b, a), f),
            ),
            8,
        )
    };
    // The two source rows (8 bytes at each index and at index + stride) of four pixels of
    // a group whose indices passed the check below, the pixels in the order given (one per
    // 64 bits).
    macro_rules! source_rows {
        ($ix:expr, $order:expr) => {{
            let (ix, order): (&[u32], [usize; 4]) = ($ix, $order);
            let row = |o: usize| {
                // SAFETY: every index is at most `limit` (checked before this is used), so
                // the 8 bytes at each index and at index + stride are inside `hdata`.
                unsafe {
                    let p = hdata.as_ptr().add(o);
                    let at = |k: usize| p.add(ix[order[k]] as usize) as *const f64;
                    let lo = _mm_loadh_pd(_mm_load_sd(at(0)), at(1));
                    let hi = _mm_loadh_pd(_mm_load_sd(at(2)), at(3));
                    _mm256_castpd_si256(_mm256_insertf128_pd::<1>(_mm256_castpd128_pd256(lo), hi))
                }
            };
            (row(0), row(hstride))
        }};
    }
    let mut x = 0;
    while x + 8 <= w {
        let load = |s: &[f32]| {
            let s: &[f32; 8] = s[x..x + 8].try_into().expect("8 floats");
            // SAFETY: `s` is 8 floats; unaligned loads are allowed.
            unsafe { _mm256_loadu_ps(s.as_ptr()) }
        };
        let u = lerp(load(u0), load(u1));
        let v = lerp(load(v0), load(v1));
        let c = lerp(load(c0), load(c1));
        let xf = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(x as i32), lanes));
        // max_ps returns its second operand for NaN: NaN positions and weights become 0,
        // as in `row_tables` (where `as` turns NaN into 0).
        let sx = clamp(_mm256_mul_ps(_mm256_add_ps(xf, u), c256_ps), maxx);
        let sy = clamp(_mm256_mul_ps(_mm256_add_ps(yf, v), c256_ps), maxy);
        let a = clamp(_mm256_mul_ps(weight256, c), c256_ps);
        let ix = _mm256_min_epi32(_mm256_srai_epi32(sx, 8), lastx);
        let iy = _mm256_min_epi32(_mm256_srai_epi32(sy, 8), lasty);
        let gx = _mm256_sub_epi32(sx, _mm256_slli_epi32(ix, 8));
        let gy = _mm256_sub_epi32(sy, _mm256_slli_epi32(iy, 8));
        let ix_bytes = if BPP == 4 {
            _mm256_slli_epi32(ix, 2)
        } else {
            _mm256_add_epi32(_mm256_slli_epi32(ix, 1), ix)
        };
        let idx = _mm256_add_epi32(_mm256_mullo_epi32(iy, hstride8), ix_bytes);
        if _mm256_movemask_epi8(_mm256_cmpgt_epi32(idx, limit)) != 0 {
            break;
        }
        let mut idx8 = [0u32; 8];
        // SAFETY: `idx8` is 32 writable bytes; unaligned stores are allowed.
        unsafe { _mm256_storeu_si256(idx8.as_mut_ptr() as *mut __m256i, idx) };
        x += 8;
        if _mm256_testz_si256(a, a) != 0 {
            // Nothing to blend (no confidence): the pixels stay as they are.
            continue;
        }
        let px = &mut dst[(x - 8) * BPP..x * BPP];
        if BPP == 4 {
            // Four-byte pixels, as `blend_row4_sse2`: vertical then horizontal interpolation,
            // each truncated to 8 bits, then s + trunc(a/2 × (warped − s) / 128) in 16-bit
            // lanes.
            // Weights in both 16-bit halves of each 32-bit lane: bilinear, and blend (a / 2).
            let dup = |v: __m256i| _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
            let (gx, gy, a7) = (dup(gx), dup(gy), dup(_mm256_srli_epi32(a, 1)));
            for (half, px) in px.chunks_exact_mut(16).enumerate() {
                let (top, bot) = source_rows!(&idx8[half * 4..half * 4 + 4], [0, 1, 2, 3]);
                // Source pixels (left and right, 8 × 16 bits) of pixels 0 | 2 and 1 | 3.
                let (t02, t13) = (
                    _mm256_unpacklo_epi8(top, zero),
                    _mm256_unpackhi_epi8(top, zero),
                );
                let (b02, b13) = (
                    _mm256_unpacklo_epi8(bot, zero),
                    _mm256_unpackhi_epi8(bot, zero),
                );
                let (sel02, sel13, sel) = (sel02[half], sel13[half], sel[half]);
                // Vertical, on left and right pixels together.
                let v02 = mix(t02, b02, _mm256_permutevar8x32_epi32(gy, sel02));
                let v13 = mix(t13, b13, _mm256_permutevar8x32_epi32(gy, sel13));
                // Horizontal, on the four pixels together: left pixels 0 1 | 2 3, right ones.
                let (left, right) = (
                    _mm256_unpacklo_epi64(v02, v13),
                    _mm256_unpackhi_epi64(v02, v13),
                );
                let warped = mix(left, right, _mm256_permutevar8x32_epi32(gx, sel));
                let px: &mut [u8; 16] = px.try_into().expect("16 bytes");
                // SAFETY: `px` is 16 bytes; unaligned loads are allowed.
                let cur = unsafe { _mm_loadu_si128(px.as_ptr() as *const __m128i) };
                let cur = _mm256_cvtepu8_epi16(cur);
                // a / 2 for the three colour bytes, 0 for the fourth.
                let a7 = _mm256_and_si256(_mm256_permutevar8x32_epi32(a7, sel), colour);
                let prod = _mm256_mullo_epi16(_mm256_sub_epi16(warped, cur), a7);
                let bias = _mm256_and_si256(_mm256_srai_epi16(prod, 15), c127);
                let res = _mm256_add_epi16(cur, _mm256_srai_epi16(_mm256_add_epi16(prod, bias), 7));
                let res = _mm_packus_epi16(
                    _mm256_castsi256_si128(res),
                    _mm256_extracti128_si256::<1>(res),
                );
                // SAFETY: `px` is 16 writable bytes; unaligned stores are allowed.
                unsafe { _mm_storeu_si128(px.as_mut_ptr() as *mut __m128i, res) };
            }
        } else {
            // Three-byte pixels, as `blend_row3`: horizontal then vertical interpolation in 32
            // bits, truncated once, then s + trunc(a × (warped − s) / 256).
            // Horizontal weights as 16-bit pairs (256 − gx, gx).
            let wx = _mm256_or_si256(
                _mm256_sub_epi32(_mm256_set1_epi32(256), gx),
                _mm256_slli_epi32(gx, 16),
            );
            for (half, px) in px.chunks_exact_mut(12).enumerate() {
                // Pixels 0 2 | 1 3 loaded, so that each shuffle below gives two pixels (0 | 1,
                // then 2 | 3), each channel's left and right source next to each other.
                let (top, bot) = source_rows!(&idx8[half * 4..half * 4 + 4], [0, 2, 1, 3]);
                let (sel01, sel23) = (sel01[half], sel23[half]);
                let (wx01, wx23) = (
                    _mm256_permutevar8x32_epi32(wx, sel01),
                    _mm256_permutevar8x32_epi32(wx, sel23),
                );
                let horizontal = |v: __m256i| {
                    (
                        _mm256_madd_epi16(_mm256_shuffle_epi8(v, pairs[0]), wx01),
                        _mm256_madd_epi16(_mm256_shuffle_epi8(v, pairs[1]), wx23),
                    )
                };
                let ((t01, t23), (b01, b23)) = (horizontal(top), horizontal(bot));
                // (t × (256 − gy) + b × gy) >> 16, as t × 256 + (b − t) × gy: below 2^24.
                let vertical = |t: __m256i, b: __m256i, sel: __m256i| {
                    let gy = _mm256_permutevar8x32_epi32(gy, sel);
                    _mm256_srli_epi32(
                        _mm256_add_epi32(
                            _mm256_slli_epi32(t, 8),
                            _mm256_mullo_epi32(_mm256_sub_epi32(b, t), gy),
                        ),
                        16,
                    )
                };
                let (w01, w23) = (vertical(t01, b01, sel01), vertical(t23, b23, sel23));
                let mut b = [0u8; 16];
                b[..12].copy_from_slice(px);
                // SAFETY: `b` is 16 bytes; unaligned loads are allowed.
                let cur = _mm_shuffle_epi8(
                    unsafe { _mm_loadu_si128(b.as_ptr() as *const __m128i) },
                    widen,
                );
                let (c01, c23) = (
                    _mm256_cvtepu8_epi32(cur),
                    _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(cur)),
                );
                // The zero fourth byte stays zero: warped and current are both 0 there.
                let step = |w: __m256i, c: __m256i, sel: __m256i| {
                    let prod = _mm256_mullo_epi32(
                        _mm256_sub_epi32(w, c),
                        _mm256_permutevar8x32_epi32(a, sel),
                    );
                    let bias = _mm256_and_si256(_mm256_srai_epi32(prod, 31), c255);
                    _mm256_add_epi32(c, _mm256_srai_epi32(_mm256_add_epi32(prod, bias), 8))
                };
                let res = _mm256_packus_epi32(step(w01, c01, sel01), step(w23, c23, sel23));
                // Pixels 0 2 | 1 3 after packing, back to 0 1 | 2 3.
                let res = _mm256_permute4x64_epi64::<0b11_01_10_00>(res);
                let res = _mm_packus_epi16(
                    _mm256_castsi256_si128(res),
                    _mm256_extracti128_si256::<1>(res),
                );
                // SAFETY: `b` is 16 writable bytes; unaligned stores are allowed.
                unsafe {
                    _mm_storeu_si128(
                        b.as_mut_ptr() as *mut __m128i,
                        _mm_shuffle_epi8(res, narrow),
                    )
                };
                px.copy_from_slice(&b[..12]);
            }
        }
    }
    x
}
