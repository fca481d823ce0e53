//! Edge-aware upsampling of a low-resolution stylised frame, guided by the full-resolution
//! input.
//!
//! When the model runs on a frame scaled by `inference-scale`, plain bilinear upsampling of its
//! output blurs every edge of the scene. This upsampler keeps the stylised picture's own
//! texture (what bilinear gives) and adds back the input's fine detail where the stylisation
//! follows the input, in the manner of the fast guided filter (He & Sun 2015):
//!
//! - at low resolution, for each colour channel `c`, a local linear fit of the stylised output
//!   `p_c` against the input's luma `I` over a (2r+1)² window:
//!   `a_c = cov(I, p_c) / (var(I) + ε)`, then averaged over the same window;
//! - at full resolution: `q_c = up(p_c) + up(a_c) · (I_full − up(I_low))`, where `up` is
//!   bilinear and `I_full − up(I_low)` is the detail the low-resolution run never saw.
//!
//! In flat parts of the input the detail term vanishes and the result is the bilinear one; at
//! the input's edges the result is as sharp as the input, in the colours of the style. Scratch
//! memory is kept between frames; the strength mix is fused into the full-resolution pass.

use super::yuv::{I420Mut, YuvMatrix, chroma_size};
use super::{Frame, FrameError, FrameMut};

/// Window radius of the low-resolution fit, in low-resolution pixels.
const RADIUS: usize = 1;
/// Regulariser of the fit, for values in 0..255 (ε = 5e-4 on values in 0..1): small enough
/// that weak edges transfer, large enough that noise in flat regions does not. Chosen on 10
/// frames of two clips against the scale-1 output (examples/realtime_quality.rs); 2e-4 and
/// 2e-3 were within 1% of it.
const EPS: f32 = 5e-4 * 255.0 * 255.0;
/// The detail gain is bounded so that a fit on few pixels cannot blow up noise.
const MAX_GAIN: f32 = 4.0;

/// Luma weights (BT.601), by byte position of R, G and B.
fn luma_weights(offsets: [usize; 3]) -> [f32; 3] {
    let mut w = [0.0; 3];
    w[offsets[0]] = 0.299;
    w[offsets[1]] = 0.587;
    w[offsets[2]] = 0.114;
    w
}

/// Planes held at low resolution: the base picture (3), the gain (3), the guide's luma (1).
const PLANES: usize = 7;

/// Guided upsampler with its scratch memory; reuse one per stream.
#[derive(Debug, Clone, Default)]
pub struct GuidedUpsampler {
    /// Low-resolution size the tables were made for, and the full-resolution size.
    key: (usize, usize, usize, usize),
    /// Low-resolution planes, `PLANES` × lw × lh: p0 p1 p2 a0 a1 a2 I.
    planes: Vec<f32>,
    /// Box-filter scratch: sums of 8 planes, then the box means.
    stats: Vec<f32>,
    tmp: Vec<f32>,
    /// For each full-resolution column: left low-resolution column and weight of the right one.
    x0: Vec<u32>,
    wx: Vec<f32>,
    /// Whether the width grows by exactly 2 or 4 with `x0`/`wx` periodic inside the row (see
    /// `widen_periodic`): that factor, else 0.
    period: usize,
    /// Two low-resolution rows interpolated to full width (`PLANES` × fw each), and which rows.
    rows: RowPair,
    /// I420 output: low-resolution bases and gains of Y, U and V and the guide's luma.
    yuv_planes: Vec<f32>,
    /// I420 output: for each chroma column, left low-resolution column and right weight, and
    /// `period` for them (at inference scale 0.5 the chroma planes are the low-resolution size
    /// and at 0.25 twice it).
    cx0: Vec<u32>,
    cwx: Vec<f32>,
    chroma_period: usize,
    /// I420 output: the luma detail of one chroma row.
    chroma_row: Vec<f32>,
    /// I420 output: two low-resolution rows of the chroma pass's planes, at chroma width.
    crows: RowPair,
}

impl GuidedUpsampler {
    /// A new upsampler; tables are made on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `frame + strength × (up(styled) − frame)` into `frame`, where `up` upsamples the
    /// low-resolution `styled` guided by `frame` itself, and `guide` is `frame` downscaled to
    /// `styled`'s size (the picture the model saw). Alpha and padding bytes are kept.
    pub fn upsample_mix(
        &mut self,
        guide: &Frame<'_>,
        styled: &Frame<'_>,
        frame: &mut FrameMut<'_>,
        strength: f32,
    ) -> Result<(), FrameError> {
        let (lw, lh) = (styled.width(), styled.height());
        let (fw, fh) = (frame.width(), frame.height());
        if (guide.width(), guide.height()) != (lw, lh)
            || guide.format() != frame.format()
            || styled.format() != frame.format()
        {
            return Err(FrameError::Mismatch(format!(
                "guided upsampling needs a guide of the stylised frame's size and both in the frame's format: guide {}x{} {}, stylised {}x{} {}, frame {}",
                guide.width(),
                guide.height(),
                guide.format(),
                lw,
                lh,
                styled.format(),
                frame.format()
            )));
        }
        if lw == 0 || lh == 0 || fw == 0 || fh == 0 {
            return Ok(());
        }
        self.prepare(lw, lh, fw, fh);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.fit_apply_avx2(guide, styled, frame, strength.clamp(0.0, 1.0)) };
            return Ok(());
        }
        self.fit(guide, styled, luma_weights(guide.format().rgb_offsets()));
        self.apply(frame, strength.clamp(0.0, 1.0));
        Ok(())
    }

    /// `fit` and `apply` compiled for AVX2: the same operations in the same order (no fused
    /// multiply-add), so the same bytes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fit_apply_avx2(
        &mut self,
        guide: &Frame<'_>,
        styled: &Frame<'_>,
        frame: &mut FrameMut<'_>,
        strength: f32,
    ) {
        self.fit(guide, styled, luma_weights(guide.format().rgb_offsets()));
        self.apply(frame, strength);
    }

    /// [`Self::upsample_mix`] for an I420 frame: the same fit, with the guide's luma weighted
    /// as `matrix` weighs it, and the result written straight into Y, U and V. Y, U and V are
    /// linear in R, G and B, so each is `base + gain · detail` with its own base and gain,
    /// made once at low resolution from the three colours' (`frame`'s luma is Y itself): one
    /// full-resolution plane and two quarter-size ones instead of three full-resolution
    /// colours and a conversion. Unlike the RGB path, R, G and B are not clipped to 0..255
    /// before the conversion (only Y, U and V are), which differs only in colours outside
    /// what RGB can show. `guide` is the frame downscaled to `styled`'s size, in RGB.
    pub fn upsample_mix_i420(
        &mut self,
        guide: &Frame<'_>,
        styled: &Frame<'_>,
        frame: &mut I420Mut<'_>,
        matrix: &YuvMatrix,
        strength: f32,
    ) -> Result<(), FrameError> {
        let (lw, lh) = (styled.width(), styled.height());
        let (fw, fh) = (frame.width(), frame.height());
        if (guide.width(), guide.height()) != (lw, lh) || guide.format() != styled.format() {
            return Err(FrameError::Mismatch(format!(
                "guided upsampling needs a guide of the stylised frame's size and format: guide {}x{} {}, stylised {}x{} {}",
                guide.width(),
                guide.height(),
                guide.format(),
                lw,
                lh,
                styled.format()
            )));
        }
        if lw == 0 || lh == 0 || fw == 0 || fh == 0 {
            return Ok(());
        }
        self.prepare(lw, lh, fw, fh);
        let s = strength.clamp(0.0, 1.0);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.fit_apply_i420_avx2(guide, styled, frame, matrix, s) };
            return Ok(());
        }
        self.fit_apply_i420(guide, styled, frame, matrix, s);
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fit_apply_i420_avx2(
        &mut self,
        guide: &Frame<'_>,
        styled: &Frame<'_>,
        frame: &mut I420Mut<'_>,
        matrix: &YuvMatrix,
        s: f32,
    ) {
        self.fit_apply_i420(guide, styled, frame, matrix, s);
    }

    #[inline(always)]
    fn fit_apply_i420(
        &mut self,
        guide: &Frame<'_>,
        styled: &Frame<'_>,
        frame: &mut I420Mut<'_>,
        m: &YuvMatrix,
        s: f32,
    ) {
        let offsets = guide.format().rgb_offsets();
        let mut weights = [0f32; 3];
        for (c, &o) in offsets.iter().enumerate() {
            weights[o] = m.luma()[c];
        }
        self.fit(guide, styled, weights);
        let (lw, lh, fw, fh) = self.key;
        let n = lw * lh;
        // Planes p and a are in the frame's byte order: weights by byte position.
        let by_offset = |w: [f32; 3]| {
            let mut out = [0f32; 3];
            for (c, &o) in offsets.iter().enumerate() {
                out[o] = w[c];
            }
            out
        };
        let (cu, cv) = m.chroma();
        let (wy, wu, wv) = (by_offset(m.luma()), by_offset(cu), by_offset(cv));
        // Low-resolution planes: base and gain of Y (as luma), of U − 128 and of V − 128, and
        // the guide's luma.
        self.yuv_planes.resize(7 * n, 0.0);
        {
            let (p, a, i) = (
                &self.planes[..3 * n],
                &self.planes[3 * n..6 * n],
                &self.planes[6 * n..7 * n],
            );
            let out = &mut self.yuv_planes;
            for (k, w) in [wy, wu, wv].into_iter().enumerate() {
                for j in 0..n {
                    out[2 * k * n + j] = w[0] * p[j] + w[1] * p[n + j] + w[2] * p[2 * n + j];
                    out[(2 * k + 1) * n + j] = w[0] * a[j] + w[1] * a[n + j] + w[2] * a[2 * n + j];
                }
            }
            out[6 * n..].copy_from_slice(i);
        }
        let (yo, ys) = (m.y_offset(), m.y_scale());
        let ([yp, up, vp], [y_stride, u_stride, v_stride]) = frame.planes_mut();
        // Chroma first: it reads the input's Y, which the luma pass then overwrites.
        let (cw, ch) = chroma_size(fw, fh);
        let sy = lh as f32 / fh as f32;
        let inv_ys = 1.0 / ys;
        // Chroma rows: the five planes it needs (guide luma, base and gain of U and of V)
        // widened to chroma width, two low-resolution rows at a time.
        const CHROMA_PLANES: [usize; 5] = [6, 2, 3, 4, 5];
        self.crows.reset(5 * cw);
        let mut detail = std::mem::take(&mut self.chroma_row);
        detail.resize(cw, 0.0);
        for cy in 0..ch {
            let (ly0, wyy) = chroma_pos(cy, sy, lh);
            let ly1 = (ly0 + 1).min(lh - 1);
            let (planes, x0, wx, period) =
                (&self.yuv_planes, &self.cx0, &self.cwx, self.chroma_period);
            self.crows.hold(ly0, ly1, |ly, out| {
                widen_planes(planes, CHROMA_PLANES, (lw, lh), ly, out, (x0, wx, period));
            });
            // The input's luma over each chroma sample's pixels, less the guide's.
            let (r0, r1) = (2 * cy, (2 * cy + 1).min(fh - 1));
            let ya = &yp[r0 * y_stride..r0 * y_stride + fw];
            let yb = &yp[r1 * y_stride..r1 * y_stride + fw];
            for ((d, a), b) in detail
                .iter_mut()
                .zip(ya.chunks_exact(2))
                .zip(yb.chunks_exact(2))
            {
                let sum = a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16;
                *d = sum as f32 * 0.25;
            }
            if fw % 2 == 1 {
                detail[cw - 1] = (ya[fw - 1] as u16 + yb[fw - 1] as u16) as f32 * 0.5;
            }
            let [t, b] = &self.crows.rows;
            let (ti, bi) = (&t[..cw], &b[..cw]);
            for ((d, &ti), &bi) in detail.iter_mut().zip(ti).zip(bi) {
                *d = (*d - yo) * inv_ys - (ti + wyy * (bi - ti));
            }
            for (k, (plane, stride)) in [(&mut *up, u_stride), (&mut *vp, v_stride)]
                .into_iter()
                .enumerate()
            {
                let (tb, bb) = (
                    &t[(1 + 2 * k) * cw..(2 + 2 * k) * cw],
                    &b[(1 + 2 * k) * cw..(2 + 2 * k) * cw],
                );
                let (tg, bg) = (
                    &t[(2 + 2 * k) * cw..(3 + 2 * k) * cw],
                    &b[(2 + 2 * k) * cw..(3 + 2 * k) * cw],
                );
                let row = &mut plane[cy * stride..cy * stride + cw];
                for (c, px) in row.chunks_mut(CHUNK).enumerate() {
                    let x0 = c * CHUNK;
                    let m = px.len();
                    let mut v = [0f32; CHUNK];
                    for (v, &p) in v.iter_mut().zip(px.iter()) {
                        *v = p as f32;
                    }
                    let (tb, bb, tg, bg, d) = (
                        &tb[x0..x0 + m],
                        &bb[x0..x0 + m],
                        &tg[x0..x0 + m],
                        &bg[x0..x0 + m],
                        &detail[x0..x0 + m],
                    );
                    for i in 0..m {
                        let base = tb[i] + wyy * (bb[i] - tb[i]);
                        let gain = tg[i] + wyy * (bg[i] - tg[i]);
                        let q = 128.0 + base + gain * d[i];
                        v[i] += s * (q - v[i]);
                    }
                    for (p, &v) in px.iter_mut().zip(v.iter()) {
                        *p = to_byte_clamped(v);
                    }
                }
            }
        }
        self.chroma_row = detail;
        // Luma: base, gain and the guide's luma widened to full width, per row.
        self.rows.reset(3 * fw);
        for y in 0..fh {
            let (y0, wyy) = source_pos(y, sy, lh);
            let y1 = (y0 + 1).min(lh - 1);
            let (planes, x0, wx, period) = (&self.yuv_planes, &self.x0, &self.wx, self.period);
            self.rows.hold(y0, y1, |ly, out| {
                widen_planes(planes, [0, 1, 6], (lw, lh), ly, out, (x0, wx, period));
            });
            let [a, b] = &self.rows.rows;
            let row = &mut yp[y * y_stride..y * y_stride + fw];
            // A chunk at a time: bytes to floats, the arithmetic over contiguous floats
            // (vector code), back to bytes.
            for (c, px) in row.chunks_mut(CHUNK).enumerate() {
                let x0 = c * CHUNK;
                let m = px.len();
                let mut v = [0f32; CHUNK];
                for (v, &p) in v.iter_mut().zip(px.iter()) {
                    *v = p as f32;
                }
                let (o0, o1, o2) = (x0, fw + x0, 2 * fw + x0);
                let (ab, ag, ai) = (&a[o0..o0 + m], &a[o1..o1 + m], &a[o2..o2 + m]);
                let (bb, bg, bi) = (&b[o0..o0 + m], &b[o1..o1 + m], &b[o2..o2 + m]);
                for i in 0..m {
                    let base = ab[i] + wyy * (bb[i] - ab[i]);
                    let gain = ag[i] + wyy * (bg[i] - ag[i]);
                    let li = ai[i] + wyy * (bi[i] - ai[i]);
                    let luma = (v[i] - yo) * inv_ys;
                    let q = yo + ys * (base + gain * (luma - li));
                    v[i] += s * (q - v[i]);
                }
                for (p, &v) in px.iter_mut().zip(v.iter()) {
                    *p = to_byte_clamped(v);
                }
            }
        }
    }

    fn prepare(&mut self, lw: usize, lh: usize, fw: usize, fh: usize) {
        if self.key == (lw, lh, fw, fh) {
            return;
        }
        self.key = (lw, lh, fw, fh);
        let n = lw * lh;
        self.planes.resize(PLANES * n, 0.0);
        self.stats.resize(8 * n, 0.0);
        self.tmp.resize(n, 0.0);
        self.x0.clear();
        self.wx.clear();
        let sx = lw as f32 / fw as f32;
        for x in 0..fw {
            let (i, w) = source_pos(x, sx, lw);
            self.x0.push(i as u32);
            self.wx.push(w);
        }
        self.period = [2, 4]
            .into_iter()
            .find(|&k| periodic(&self.x0, &self.wx, lw, fw, k))
            .unwrap_or(0);
        // Chroma sample `c` sits at the centre of full-resolution pixels 2c and 2c + 1.
        let (cw, _) = chroma_size(fw, fh);
        self.cx0.clear();
        self.cwx.clear();
        for cx in 0..cw {
            let (i, w) = chroma_pos(cx, sx, lw);
            self.cx0.push(i as u32);
            self.cwx.push(w);
        }
        self.chroma_period = if periodic(&self.cx0, &self.cwx, lw, cw, 2) {
            2
        } else {
            0
        };
    }

    /// The low-resolution fit: base planes, gains and the guide's luma.
    #[inline(always)]
    fn fit(&mut self, guide: &Frame<'_>, styled: &Frame<'_>, lw_: [f32; 3]) {
        let (lw, lh) = (styled.width(), styled.height());
        let n = lw * lh;
        let bpp = guide.format().bytes_per_pixel();
        // Raw statistics: I, I², p_c, I·p_c.
        {
            let (s_i, rest) = self.stats.split_at_mut(n);
            let (s_ii, rest) = rest.split_at_mut(n);
            let (s_p, s_ip) = rest.split_at_mut(3 * n);
            for y in 0..lh {
                let g = guide.row(y);
                let p = styled.row(y);
                for x in 0..lw {
                    let j = y * lw + x;
                    let gp = &g[x * bpp..x * bpp + 3];
                    let i = lw_[0] * gp[0] as f32 + lw_[1] * gp[1] as f32 + lw_[2] * gp[2] as f32;
                    s_i[j] = i;
                    s_ii[j] = i * i;
                    for c in 0..3 {
                        let v = p[x * bpp + c] as f32;
                        s_p[c * n + j] = v;
                        s_ip[c * n + j] = i * v;
                    }
                }
            }
        }
        // The base planes are the raw picture and luma (bilinear keeps the style's texture).
        self.planes[..3 * n].copy_from_slice(&self.stats[2 * n..5 * n]);
        self.planes[6 * n..7 * n].copy_from_slice(&self.stats[..n]);
        for k in 0..8 {
            box_mean(&mut self.stats[k * n..(k + 1) * n], &mut self.tmp, lw, lh);
        }
        let (m_i, rest) = self.stats.split_at(n);
        let (m_ii, rest) = rest.split_at(n);
        let (m_p, m_ip) = rest.split_at(3 * n);
        for c in 0..3 {
            let a = &mut self.planes[(3 + c) * n..(4 + c) * n];
            for j in 0..n {
                let var = (m_ii[j] - m_i[j] * m_i[j]).max(0.0);
                let cov = m_ip[c * n + j] - m_i[j] * m_p[c * n + j];
                a[j] = (cov / (var + EPS)).clamp(-MAX_GAIN, MAX_GAIN);
            }
        }
        for c in 0..3 {
            box_mean(
                &mut self.planes[(3 + c) * n..(4 + c) * n],
                &mut self.tmp,
                lw,
                lh,
            );
        }
    }

    #[inline(always)]
    fn apply(&mut self, frame: &mut FrameMut<'_>, s: f32) {
        let (lw, lh, fw, fh) = self.key;
        // The I420 path keeps three planes in these rows (the capacity stays).
        self.rows.reset(PLANES * fw);
        let bpp = frame.format().bytes_per_pixel();
        let lw_ = luma_weights(frame.format().rgb_offsets());
        let sy = lh as f32 / fh as f32;
        for y in 0..fh {
            let (y0, wy) = source_pos(y, sy, lh);
            let y1 = (y0 + 1).min(lh - 1);
            let (planes, x0, wx, period) = (&self.planes, &self.x0, &self.wx, self.period);
            self.rows.hold(y0, y1, |ly, out| {
                widen_planes(planes, 0..PLANES, (lw, lh), ly, out, (x0, wx, period));
            });
            let row = frame.row_mut(y);
            let [r0, r1] = &self.rows.rows;
            if bpp == 4 {
                apply_row::<4>(row, r0, r1, wy, fw, lw_, s);
            } else {
                apply_row::<3>(row, r0, r1, wy, fw, lw_, s);
            }
        }
    }
}

/// Two low-resolution rows of some planes, widened, for the full-resolution rows between
/// them; rows are visited in order, so each low-resolution row is widened once.
#[derive(Debug, Clone, Default)]
struct RowPair {
    rows: [Vec<f32>; 2],
    /// Which low-resolution row each holds (`usize::MAX`: none).
    ids: [usize; 2],
}

impl RowPair {
    /// Forgets the rows held, for a frame with `len` values a row.
    fn reset(&mut self, len: usize) {
        for r in &mut self.rows {
            r.resize(len, 0.0);
        }
        self.ids = [usize::MAX; 2];
    }

    /// Holds rows `y0` and `y1`, widening with `widen(ly, out)` only the one not held yet.
    #[inline(always)]
    fn hold(&mut self, y0: usize, y1: usize, mut widen: impl FnMut(usize, &mut [f32])) {
        for (slot, ly) in [(0, y0), (1, y1)] {
            if self.ids[slot] == ly {
                continue;
            }
            if self.ids[1 - slot] == ly {
                self.rows.swap(0, 1);
                self.ids.swap(0, 1);
            } else {
                widen(ly, &mut self.rows[slot]);
                self.ids[slot] = ly;
            }
        }
    }
}

/// Low-resolution row `ly` of each of `which` planes (of `lw`×`lh`), interpolated to the
/// width of the tables `x0`/`wx` (periodic in `period`, 0 when not) one after another into
/// `out`.
#[inline(always)]
fn widen_planes(
    planes: &[f32],
    which: impl IntoIterator<Item = usize>,
    (lw, lh): (usize, usize),
    ly: usize,
    out: &mut [f32],
    (x0, wx, period): (&[u32], &[f32], usize),
) {
    let (n, width) = (lw * lh, x0.len());
    for (k, plane) in which.into_iter().enumerate() {
        let src = &planes[plane * n + ly * lw..plane * n + (ly + 1) * lw];
        let dst = &mut out[k * width..(k + 1) * width];
        match period {
            2 => widen_periodic::<2>(src, dst, x0, wx),
            4 => widen_periodic::<4>(src, dst, x0, wx),
            _ => widen_any(src, dst, x0, wx),
        }
    }
}

/// The low-resolution position of chroma sample `c` (the centre of full-resolution pixels
/// 2c and 2c + 1): left index and the right one's weight.
fn chroma_pos(c: usize, scale: f32, len: usize) -> (usize, f32) {
    let v = ((2 * c + 1) as f32 * scale - 0.5).max(0.0);
    let i = (v as usize).min(len - 1);
    (i, if i + 1 < len { v - i as f32 } else { 0.0 })
}

/// Pixels per chunk of `apply_row`: a chunk's planes stay in L1.
const CHUNK: usize = 64;

/// One full-resolution row: `q = base + gain · (luma − low-resolution luma)`, mixed into the
/// row by `s`. `r0` and `r1` hold the planes (base ×3, gain ×3, luma) of the low-resolution
/// rows above and below, widened; `wy` is the weight of the one below.
///
/// A chunk of pixels at a time, in three passes: the bytes into three float planes, the
/// arithmetic over contiguous floats (which the compiler vectorises), the results back into
/// bytes. Every value goes through the same operations in the same order as one pixel at a
/// time, so the bytes are the same.
#[inline(always)]
fn apply_row<const BPP: usize>(
    row: &mut [u8],
    r0: &[f32],
    r1: &[f32],
    wy: f32,
    fw: usize,
    lw_: [f32; 3],
    s: f32,
) {
    let row = &mut row[..fw * BPP];
    let mut rgb = [[0f32; CHUNK]; 3];
    for (c, pixels) in row.chunks_mut(CHUNK * BPP).enumerate() {
        let x0 = c * CHUNK;
        let n = pixels.len() / BPP;
        for (i, px) in pixels.chunks_exact(BPP).enumerate() {
            rgb[0][i] = px[0] as f32;
            rgb[1][i] = px[1] as f32;
            rgb[2][i] = px[2] as f32;
        }
        #[inline(always)]
        fn plane(r: &[f32], k: usize, fw: usize, x0: usize, n: usize) -> &[f32] {
            &r[k * fw + x0..k * fw + x0 + n]
        }
        let (u6, d6) = (plane(r0, 6, fw, x0, n), plane(r1, 6, fw, x0, n));
        let mut detail = [0f32; CHUNK];
        for i in 0..n {
            let li = u6[i] + wy * (d6[i] - u6[i]);
            detail[i] = lw_[0] * rgb[0][i] + lw_[1] * rgb[1][i] + lw_[2] * rgb[2][i] - li;
        }
        for (ch, v) in rgb.iter_mut().enumerate() {
            let (ub, db) = (plane(r0, ch, fw, x0, n), plane(r1, ch, fw, x0, n));
            let (ug, dg) = (plane(r0, 3 + ch, fw, x0, n), plane(r1, 3 + ch, fw, x0, n));
            for i in 0..n {
                let base = ub[i] + wy * (db[i] - ub[i]);
                let gain = ug[i] + wy * (dg[i] - ug[i]);
                let q = base + gain * detail[i];
                let x = v[i];
                v[i] = x + s * (q.clamp(0.0, 255.0) - x);
            }
        }
        for (i, px) in pixels.chunks_exact_mut(BPP).enumerate() {
            px[0] = to_byte(rgb[0][i]);
            px[1] = to_byte(rgb[1][i]);
            px[2] = to_byte(rgb[2][i]);
        }
    }
}

/// The low-resolution position of full-resolution index `x` (pixel centres aligned, as the
/// antialiased downscale places them): left index and the right one's weight.
#[inline(always)]
fn source_pos(x: usize, scale: f32, len: usize) -> (usize, f32) {
    let s = ((x as f32 + 0.5) * scale - 0.5).max(0.0);
    let i = (s as usize).min(len - 1);
    let w = if i + 1 < len { s - i as f32 } else { 0.0 };
    (i, w)
}

/// One row widened through the tables: `dst[x] = lerp(src[x0[x]], src[x0[x] + 1], wx[x])`.
#[inline(always)]
fn widen_any(src: &[f32], dst: &mut [f32], x0: &[u32], wx: &[f32]) {
    let last = src.len() - 1;
    for ((d, &i), &w) in dst.iter_mut().zip(x0).zip(wx) {
        let i = i as usize;
        let a = src[i];
        let b = src[(i + 1).min(last)];
        *d = a + w * (b - a);
    }
}

/// Whether the tables of a width grown exactly `K` times repeat every `K` columns away from
/// the borders: column `K·q + j` then reads low-resolution columns `q + d_j` and `q + d_j + 1`
/// with weight `w_j`, the same for every `q`.
fn periodic(x0: &[u32], wx: &[f32], lw: usize, fw: usize, k: usize) -> bool {
    if lw < 3 || fw != k * lw || x0[k..2 * k].iter().any(|&i| i > 1) {
        return false;
    }
    (k..fw - k).all(|x| {
        let (q, j) = (x / k, x % k);
        let base = k + j;
        x0[x] as i64 - q as i64 == x0[base] as i64 - 1 && wx[x] == wx[base]
    })
}

/// `widen_any` for tables `periodic` in `K`: the interior without index tables, one phase of
/// the period at a time over contiguous columns, then interleaved. The same operations on the
/// same values, so the same results. The whole upsampler at 640x360 from 160x90 took 0.66
/// against 1.02 ms (medians of 3 alternating criterion runs; 1920x1080: 6.5 against 8.5 ms).
/// Indexing a period's three source columns by its offsets instead was 60 % slower than the
/// tables.
#[inline(always)]
fn widen_periodic<const K: usize>(src: &[f32], dst: &mut [f32], x0: &[u32], wx: &[f32]) {
    let lw = src.len();
    widen_any(src, &mut dst[..K], &x0[..K], &wx[..K]);
    widen_any(
        src,
        &mut dst[(lw - 1) * K..],
        &x0[(lw - 1) * K..],
        &wx[(lw - 1) * K..],
    );
    // Phase j of column q reads columns q - 1 and q (off 0) or q and q + 1 (off 1).
    let inner = lw - 2;
    let left = &src[..inner + 1];
    let right = &src[1..];
    let mut d = dst[K..(lw - 1) * K].chunks_exact_mut(K);
    // Blocks of columns: for each phase a contiguous lerp (vector code), then interleaved.
    const B: usize = 32;
    let mut phase = [[0f32; B]; K];
    let mut q0 = 0;
    while q0 < inner {
        let n = B.min(inner - q0);
        for j in 0..K {
            let o = x0[K + j] as usize;
            let (a, b) = (&left[q0 + o..q0 + o + n], &right[q0 + o..q0 + o + n]);
            let w = wx[K + j];
            for ((p, &a), &b) in phase[j][..n].iter_mut().zip(a).zip(b) {
                *p = a + w * (b - a);
            }
        }
        for (i, out) in (&mut d).take(n).enumerate() {
            for j in 0..K {
                out[j] = phase[j][i];
            }
        }
        q0 += n;
    }
}

#[inline(always)]
fn to_byte_clamped(v: f32) -> u8 {
    // Through i32, which converts as a vector (straight to u8 converted one value at a time).
    (v + 0.5).clamp(0.0, 255.0) as i32 as u8
}

#[inline(always)]
fn to_byte(v: f32) -> u8 {
    // Finite and in range here; +0.5 then truncation rounds half up.
    (v + 0.5) as u8
}

/// Mean over a (2·RADIUS+1)² window (RADIUS = 1), shrunk at the borders, in place.
#[inline(always)]
fn box_mean(plane: &mut [f32], tmp: &mut [f32], w: usize, h: usize) {
    const _: () = assert!(RADIUS == 1);
    const THIRD: f32 = 1.0 / 3.0;
    // Horizontal pass into tmp.
    for (src, dst) in plane.chunks_exact(w).zip(tmp.chunks_exact_mut(w)).take(h) {
        if w < 3 {
            let m = src.iter().sum::<f32>() / w as f32;
            dst.fill(m);
            continue;
        }
        dst[0] = (src[0] + src[1]) * 0.5;
        dst[w - 1] = (src[w - 2] + src[w - 1]) * 0.5;
        for (d, t) in dst[1..w - 1].iter_mut().zip(src.windows(3)) {
            *d = (t[0] + t[1] + t[2]) * THIRD;
        }
    }
    // Vertical pass back into plane.
    for y in 0..h {
        let lo = y.saturating_sub(1);
        let hi = (y + 2).min(h);
        let dst = &mut plane[y * w..(y + 1) * w];
        match hi - lo {
            3 => {
                let (a, b, c) = (
                    &tmp[lo * w..(lo + 1) * w],
                    &tmp[(lo + 1) * w..(lo + 2) * w],
                    &tmp[(lo + 2) * w..(lo + 3) * w],
                );
                for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
                    *d = (a + b + c) * THIRD;
                }
            }
            2 => {
                let (a, b) = (&tmp[lo * w..(lo + 1) * w], &tmp[(lo + 1) * w..(lo + 2) * w]);
                for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
                    *d = (a + b) * 0.5;
                }
            }
            _ => dst.copy_from_slice(&tmp[lo * w..(lo + 1) * w]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(lw: usize, fw: usize) -> (Vec<u32>, Vec<f32>) {
        let sx = lw as f32 / fw as f32;
        (0..fw)
            .map(|x| source_pos(x, sx, lw))
            .map(|(i, w)| (i as u32, w))
            .unzip()
    }

    #[test]
    fn periodic_widening_matches_the_tables() {
        for (lw, k) in [(3, 2), (3, 4), (5, 4), (37, 2), (40, 4), (160, 4), (161, 2)] {
            let fw = lw * k;
            let (x0, wx) = tables(lw, fw);
            assert!(periodic(&x0, &wx, lw, fw, k), "{lw} x{k}");
            let src: Vec<f32> = (0..lw)
                .map(|i| ((i * 37 % 101) as f32).sqrt() * 9.7)
                .collect();
            let mut want = vec![0.0; fw];
            widen_any(&src, &mut want, &x0, &wx);
            let mut got = vec![-1.0; fw];
            match k {
                2 => widen_periodic::<2>(&src, &mut got, &x0, &wx),
                _ => widen_periodic::<4>(&src, &mut got, &x0, &wx),
            }
            assert_eq!(got, want, "{lw} x{k}");
        }
        // Not an exact multiple, or too narrow: the tables are used as they are.
        for (lw, fw, k) in [(160, 641, 4), (161, 640, 4), (2, 8, 4), (160, 640, 2)] {
            let (x0, wx) = tables(lw, fw);
            assert!(!periodic(&x0, &wx, lw, fw, k), "{lw} -> {fw} x{k}");
        }
    }
    use crate::frame::{OwnedFrame, PixelFormat, Resizer, mix};

    /// A full-resolution scene with sharp edges and a smooth gradient, and a "stylisation" of
    /// it: a colour mapping of each pixel plus a low-frequency texture.
    fn scene(w: usize, h: usize, format: PixelFormat) -> (OwnedFrame, OwnedFrame) {
        let bpp = format.bytes_per_pixel();
        let mut input = vec![0u8; w * h * bpp];
        let mut styled = vec![0u8; w * h * bpp];
        for y in 0..h {
            for x in 0..w {
                let inside = (x / 13 + y / 11) % 2 == 0;
                let grad = (x * 100 / w) as u8;
                let v = if inside { 180 } else { 40 } + grad / 2;
                let i = (y * w + x) * bpp;
                let rgb = [v, v / 2 + 20, 255 - v];
                let texture = ((x as f32 * 0.2).sin() * 10.0) as i32;
                let mapped = [255 - v as i32, v as i32 / 3 + 60, v as i32];
                for (c, &o) in format.rgb_offsets().iter().enumerate() {
                    input[i + o] = rgb[c];
                    styled[i + o] = (mapped[c] + texture).clamp(0, 255) as u8;
                }
                if bpp == 4 {
                    input[i + 3] = 77;
                    styled[i + 3] = 77;
                }
            }
        }
        (
            OwnedFrame::from_vec(input, w, h, format).unwrap(),
            OwnedFrame::from_vec(styled, w, h, format).unwrap(),
        )
    }

    fn shrink(f: &OwnedFrame, w: usize, h: usize) -> OwnedFrame {
        let mut out = OwnedFrame::new(w, h, f.format()).unwrap();
        Resizer::new()
            .resize(&f.as_frame(), &mut out.as_frame_mut())
            .unwrap();
        out
    }

    fn mean_abs_diff(a: &OwnedFrame, b: &OwnedFrame) -> f64 {
        let bpp = a.format().bytes_per_pixel();
        let mut sum = 0u64;
        let mut n = 0u64;
        for (pa, pb) in a.data().chunks(bpp).zip(b.data().chunks(bpp)) {
            for c in 0..3 {
                sum += (pa[c] as i64 - pb[c] as i64).unsigned_abs();
                n += 1;
            }
        }
        sum as f64 / n as f64
    }

    #[test]
    fn edges_come_back_sharper_than_bilinear() {
        for format in [PixelFormat::Rgb, PixelFormat::Bgrx] {
            let (w, h) = (256, 144);
            let (input, truth) = scene(w, h, format);
            let (lw, lh) = (64, 36);
            let guide = shrink(&input, lw, lh);
            let styled_small = shrink(&truth, lw, lh);

            let mut guided = input.clone();
            GuidedUpsampler::new()
                .upsample_mix(
                    &guide.as_frame(),
                    &styled_small.as_frame(),
                    &mut guided.as_frame_mut(),
                    1.0,
                )
                .unwrap();
            let mut up = OwnedFrame::new(w, h, format).unwrap();
            Resizer::new()
                .resize(&styled_small.as_frame(), &mut up.as_frame_mut())
                .unwrap();
            let e_guided = mean_abs_diff(&guided, &truth);
            let e_bilinear = mean_abs_diff(&up, &truth);
            assert!(
                e_guided < 0.6 * e_bilinear,
                "{format}: guided {e_guided:.2} vs bilinear {e_bilinear:.2}"
            );
            // Padding / alpha bytes are untouched.
            if format.bytes_per_pixel() == 4 {
                assert!(guided.data().chunks(4).all(|p| p[3] == 77));
            }
        }
    }

    #[test]
    fn flat_input_gives_the_bilinear_picture() {
        let (w, h) = (96, 64);
        let flat = OwnedFrame::from_vec(vec![120u8; w * h * 3], w, h, PixelFormat::Rgb).unwrap();
        let (_, styled) = scene(w, h, PixelFormat::Rgb);
        let small = shrink(&styled, 24, 16);
        let guide = shrink(&flat, 24, 16);
        let mut out = flat.clone();
        GuidedUpsampler::new()
            .upsample_mix(
                &guide.as_frame(),
                &small.as_frame(),
                &mut out.as_frame_mut(),
                1.0,
            )
            .unwrap();
        let mut up = OwnedFrame::new(w, h, PixelFormat::Rgb).unwrap();
        Resizer::new()
            .resize(&small.as_frame(), &mut up.as_frame_mut())
            .unwrap();
        // Both are bilinear with centre-aligned pixels; they differ by rounding only.
        assert!(
            mean_abs_diff(&out, &up) < 0.6,
            "{}",
            mean_abs_diff(&out, &up)
        );
    }

    #[test]
    fn strength_mixes_like_mix_and_zero_keeps_the_frame() {
        let (w, h) = (64, 48);
        let (input, styled) = scene(w, h, PixelFormat::Rgbx);
        let guide = shrink(&input, 32, 24);
        let small = shrink(&styled, 32, 24);
        let mut up = GuidedUpsampler::new();
        let mut zero = input.clone();
        up.upsample_mix(
            &guide.as_frame(),
            &small.as_frame(),
            &mut zero.as_frame_mut(),
            0.0,
        )
        .unwrap();
        assert_eq!(zero.data(), input.data());
        let mut full = input.clone();
        up.upsample_mix(
            &guide.as_frame(),
            &small.as_frame(),
            &mut full.as_frame_mut(),
            1.0,
        )
        .unwrap();
        let mut half = input.clone();
        up.upsample_mix(
            &guide.as_frame(),
            &small.as_frame(),
            &mut half.as_frame_mut(),
            0.5,
        )
        .unwrap();
        let mut expect = input.clone();
        mix(&mut expect.as_frame_mut(), &full.as_frame(), 0.5).unwrap();
        // Half strength of the clamped result, within rounding of the two paths.
        for (a, b) in half.data().iter().zip(expect.data()) {
            assert!((*a as i32 - *b as i32).abs() <= 1);
        }
    }

    /// An I420 frame (Y, U, V planes packed one after another) and a writable view of it.
    fn i420_of(rgb: &OwnedFrame, m: &YuvMatrix) -> (Vec<u8>, [usize; 3]) {
        let (w, h) = (rgb.width(), rgb.height());
        let (cw, ch) = chroma_size(w, h);
        let mut data = vec![0u8; w * h + 2 * cw * ch];
        let (y, rest) = data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(cw * ch);
        let mut f = I420Mut::new([y, u, v], [w, cw, cw], w, h).unwrap();
        crate::frame::rgb_to_i420(&rgb.as_frame(), &mut f, m).unwrap();
        (data, [w * h, cw * ch, cw * ch])
    }

    fn view(data: &mut [u8], sizes: [usize; 3], w: usize, h: usize) -> I420Mut<'_> {
        let cw = chroma_size(w, h).0;
        let (y, rest) = data.split_at_mut(sizes[0]);
        let (u, v) = rest.split_at_mut(sizes[1]);
        I420Mut::new([y, u, v], [w, cw, cw], w, h).unwrap()
    }

    #[test]
    fn i420_output_matches_the_rgb_path_converted() {
        // The same fit written straight into Y, U and V, against the RGB result converted to
        // I420: equal but for rounding and where RGB clipped (odd sizes too).
        for ((w, h), m) in [
            ((160, 90), YuvMatrix::BT601),
            ((161, 91), YuvMatrix::BT709),
            (
                (96, 64),
                YuvMatrix {
                    full_range: true,
                    ..YuvMatrix::BT709
                },
            ),
        ] {
            let (input, styled_full) = scene(w, h, PixelFormat::Rgbx);
            let (lw, lh) = (w.div_ceil(4), h.div_ceil(4));
            let styled = shrink(&styled_full, lw, lh);
            for strength in [1.0, 0.6] {
                // Reference: the RGB path on the RGB picture the I420 frame shows.
                let (data, sizes) = i420_of(&input, &m);
                let mut shown = OwnedFrame::new(w, h, PixelFormat::Rgbx).unwrap();
                let mut d = data.clone();
                crate::frame::i420_to_rgb(
                    &view(&mut d, sizes, w, h).as_i420(),
                    &mut shown.as_frame_mut(),
                    &m,
                )
                .unwrap();
                let mut guide = OwnedFrame::new(lw, lh, PixelFormat::Rgbx).unwrap();
                crate::frame::downscale_to_rgb(
                    &view(&mut d, sizes, w, h).as_i420(),
                    &mut guide.as_frame_mut(),
                    &m,
                    &mut [Resizer::new(), Resizer::new()],
                    &mut Vec::new(),
                )
                .unwrap();
                let mut want_rgb = shown.clone();
                GuidedUpsampler::new()
                    .upsample_mix(
                        &guide.as_frame(),
                        &styled.as_frame(),
                        &mut want_rgb.as_frame_mut(),
                        strength,
                    )
                    .unwrap();
                // What the packed path gives: the RGB result converted to I420.
                let (want, _) = i420_of(&want_rgb, &m);
                let mut got = data.clone();
                GuidedUpsampler::new()
                    .upsample_mix_i420(
                        &guide.as_frame(),
                        &styled.as_frame(),
                        &mut view(&mut got, sizes, w, h),
                        &m,
                        strength,
                    )
                    .unwrap();
                let diffs: Vec<i32> = got
                    .iter()
                    .zip(&want)
                    .map(|(&a, &b)| (a as i32 - b as i32).abs())
                    .collect();
                let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
                let max = *diffs.iter().max().unwrap();
                assert!(
                    mean < 0.5 && max <= 8,
                    "{w}x{h} {m:?} strength {strength}: mean {mean:.2}, max {max}"
                );
            }
            // Strength 0 keeps the frame bit for bit.
            let (data, sizes) = i420_of(&input, &m);
            let mut got = data.clone();
            GuidedUpsampler::new()
                .upsample_mix_i420(
                    &shrink(&input, lw, lh).as_frame(),
                    &styled.as_frame(),
                    &mut view(&mut got, sizes, w, h),
                    &m,
                    0.0,
                )
                .unwrap();
            assert_eq!(got, data);
        }
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let (input, styled) = scene(32, 32, PixelFormat::Rgb);
        let small = shrink(&styled, 16, 16);
        let guide = shrink(&input, 8, 8);
        let mut out = input.clone();
        assert!(
            GuidedUpsampler::new()
                .upsample_mix(
                    &guide.as_frame(),
                    &small.as_frame(),
                    &mut out.as_frame_mut(),
                    1.0
                )
                .is_err()
        );
    }
}
