//! The kernels as they were before they were vectorised (one pixel at a time), kept as the
//! reference the fast ones must match bit for bit.

#![allow(clippy::all)]

use super::{ConfidenceParams, sample_flow};
use crate::frame::{Frame, FrameMut};
use crate::temporal::flow::{FlowField, GrayImage, sample_bilinear};

/// Luma of `frame`, each `n`×`n` block averaged (BT.601 weights), into `out`
/// (`width / n` × `height / n`, reshaped as needed; the last partial block is dropped).
pub(super) fn luma_downscale(frame: &Frame<'_>, n: usize, out: &mut GrayImage) {
    let n = n.max(1);
    let (lw, lh) = ((frame.width() / n).max(1), (frame.height() / n).max(1));
    out.reshape(lw, lh);
    let bpp = frame.format().bytes_per_pixel();
    let [ro, go, bo] = frame.format().rgb_offsets();
    let rows = n.min(frame.height());
    let cols = n.min(frame.width());
    // Weights sum to 256 × block area, so one shift and one division per output pixel.
    let area = (rows * cols) as u32;
    let data = out.data_mut();
    for ly in 0..lh {
        let dst = &mut data[ly * lw..(ly + 1) * lw];
        for (lx, d) in dst.iter_mut().enumerate() {
            let mut sum = 0u32;
            for y in ly * n..ly * n + rows {
                let row = &frame.row(y)[lx * n * bpp..(lx * n + cols) * bpp];
                for p in row.chunks_exact(bpp) {
                    sum += 77 * p[ro] as u32 + 150 * p[go] as u32 + 29 * p[bo] as u32;
                }
            }
            *d = ((sum + area * 128) / (area * 256)) as u8;
        }
    }
}

/// Per-pixel confidence (0..1) that the previous frame, moved along `bwd`, shows the same
/// surface as the current one. `bwd` maps current → previous, `fwd` previous → current.
/// Returns the fraction of pixels with confidence above one half.
pub(super) fn confidence(
    cur: &GrayImage,
    prev: &GrayImage,
    bwd: &FlowField,
    fwd: &FlowField,
    p: &ConfidenceParams,
    conf: &mut Vec<f32>,
) -> f32 {
    let (w, h) = (cur.width(), cur.height());
    conf.resize(w * h, 0.0);
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
pub(super) struct WarpScratch {
    /// Per output column: left low-res column, right one, weight of the right one.
    xtab: Vec<(u32, u32, f32)>,
    /// Per output column, as a float.
    xs: Vec<f32>,
    /// Two low-res rows (u, v, confidence), each interpolated to the output width, and
    /// which low-res rows they hold.
    up: [[Vec<f32>; 3]; 2],
    held: [usize; 2],
    /// One output row of u, v (frame pixels) and confidence.
    u: Vec<f32>,
    v: Vec<f32>,
    c: Vec<f32>,
    /// One output row of: blend weight (0..=256), byte index of the top-left source pixel,
    /// bilinear weights (0..=256).
    a: Vec<i32>,
    idx: Vec<u32>,
    gx: Vec<u32>,
    gy: Vec<u32>,
    /// Size the tables were built for.
    built: (usize, usize, usize),
}

/// Blends `out` (the new stylised frame) with `history` (the previous output, same size and
/// format) moved along `bwd` (low-res flow current → previous, `n` times smaller than the
/// frame): `out += weight × confidence × (warped history − out)`. Alpha and padding bytes
/// are left alone. Frames narrower or shorter than two pixels are left as they are.
pub(super) fn warp_blend(
    out: &mut FrameMut<'_>,
    history: &Frame<'_>,
    bwd: &FlowField,
    conf: &[f32],
    n: usize,
    weight: f32,
    scratch: &mut WarpScratch,
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
        sc.xtab.clear();
        sc.xs.clear();
        for x in 0..w {
            let lx = ((x as f32 + 0.5) / nf - 0.5).clamp(0.0, (lw - 1) as f32);
            let x0 = lx as usize;
            let x1 = (x0 + 1).min(lw - 1);
            sc.xtab.push((x0 as u32, x1 as u32, lx - x0 as f32));
            sc.xs.push(x as f32);
        }
        for row in sc.up.iter_mut() {
            for v in row.iter_mut() {
                v.resize(w, 0.0);
            }
        }
        for v in [&mut sc.u, &mut sc.v, &mut sc.c] {
            v.resize(w, 0.0);
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
    let (maxxq, maxyq) = (((w - 1) * 256) as i32, ((h - 1) * 256) as i32);
    // The top-left source pixel stays at least one pixel from the right and bottom edges
    // (with a weight of 256 on the far one), so its neighbours need no bounds check.
    let (lastx, lasty) = ((w - 2) as i32, (h - 2) as i32);
    let flow = bwd.data();
    let hdata = history.data();
    let weight256 = weight * 256.0;
    // The flow changes every frame: nothing held is valid.
    sc.held = [usize::MAX; 2];
    for y in 0..h {
        let ly = ((y as f32 + 0.5) / nf - 0.5).clamp(0.0, (lh - 1) as f32);
        let y0 = ly as usize;
        let y1 = (y0 + 1).min(lh - 1);
        let fy = ly - y0 as f32;
        // Each low-res row is interpolated to the output width once (a gather), not once per
        // output row: consecutive output rows share it.
        if sc.held[0] != y0 {
            if sc.held[1] == y0 {
                sc.up.swap(0, 1);
                sc.held.swap(0, 1);
            } else {
                upsample_row(y0, flow, conf, lw, &sc.xtab, nf, &mut sc.up[0]);
                sc.held[0] = y0;
            }
        }
        if sc.held[1] != y1 {
            upsample_row(y1, flow, conf, lw, &sc.xtab, nf, &mut sc.up[1]);
            sc.held[1] = y1;
        }
        // Vertical interpolation: element-wise.
        let ([u0, v0, c0], [u1, v1, c1]) = (&sc.up[0], &sc.up[1]);
        for (d, (a, b)) in sc.u.iter_mut().zip(u0.iter().zip(u1)) {
            *d = a + (b - a) * fy;
        }
        for (d, (a, b)) in sc.v.iter_mut().zip(v0.iter().zip(v1)) {
            *d = a + (b - a) * fy;
        }
        for (d, (a, b)) in sc.c.iter_mut().zip(c0.iter().zip(c1)) {
            *d = a + (b - a) * fy;
        }
        // Source positions and weights: element-wise, so the compiler vectorises it.
        let yf = y as f32;
        let pos = sc.xs.iter().zip(&sc.u).zip(&sc.v).zip(&sc.c);
        let tabs = sc
            .gx
            .iter_mut()
            .zip(&mut sc.gy)
            .zip(&mut sc.idx)
            .zip(&mut sc.a);
        for ((((&xf, &u), &v), &c), (((gx, gy), idx), a)) in pos.zip(tabs) {
            // Fixed point (1/256 pixel): one float-to-int conversion per axis, then integer
            // clamps, so this vectorises.
            let sx = (((xf + u) * 256.0) as i32).clamp(0, maxxq);
            let sy = (((yf + v) * 256.0) as i32).clamp(0, maxyq);
            let ix = (sx >> 8).min(lastx);
            let iy = (sy >> 8).min(lasty);
            *gx = (sx - (ix << 8)) as u32;
            *gy = (sy - (iy << 8)) as u32;
            *idx = iy as u32 * hstride as u32 + ix as u32 * bpp as u32;
            *a = (weight256 * c) as i32;
        }
        let dst = out.row_mut(y);
        let tabs = Tabs {
            a: &sc.a,
            idx: &sc.idx,
            gx: &sc.gx,
            gy: &sc.gy,
        };
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
    xtab: &[(u32, u32, f32)],
    nf: f32,
    out: &mut [Vec<f32>; 3],
) {
    let frow = &flow[2 * ly * lw..2 * (ly + 1) * lw];
    let crow = &conf[ly * lw..(ly + 1) * lw];
    let [u, v, c] = out;
    for (x, &(x0, x1, fx)) in xtab.iter().enumerate() {
        let (x0, x1) = (x0 as usize, x1 as usize);
        u[x] = (frow[2 * x0] + (frow[2 * x1] - frow[2 * x0]) * fx) * nf;
        v[x] = (frow[2 * x0 + 1] + (frow[2 * x1 + 1] - frow[2 * x0 + 1]) * fx) * nf;
        c[x] = crow[x0] + (crow[x1] - crow[x0]) * fx;
    }
}

/// One row's source positions and weights.
struct Tabs<'a> {
    a: &'a [i32],
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
        let a = t.a[x];
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
        let a = t.a[x];
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
        let a = t.a[x];
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
