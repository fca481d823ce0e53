//! Antialiased bilinear resampling of 8-bit frames and of single planes (I420's Y, U, V).
//!
//! This is the convolution resampler of Pillow (`Image.resize(..., BILINEAR)`): a triangle
//! filter widened by the scale factor when shrinking, coefficients in 22-bit fixed point, a
//! horizontal pass into an 8-bit intermediate, then a vertical pass. Matching Pillow bit for bit
//! lets the project's Python reference scripts and this code agree exactly on fixed-size models.

use super::{Frame, FrameError, FrameMut};

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Filter taps for one axis: for each output index, the first input index, the count of taps
/// and `ksize` fixed-point weights.
#[derive(Debug, Clone, Default)]
struct Taps {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl Taps {
    fn new(in_size: usize, out_size: usize) -> Taps {
        const SUPPORT: f64 = 1.0;
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // Truncation toward zero, then clamping, exactly as Pillow does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(xmax) {
                let t = ((x + xmin) as f64 - center + 0.5) * ss;
                let w = (1.0 - t.abs()).max(0.0);
                *kx = w;
                ww += w;
            }
            let row = &mut weights[xx * ksize..(xx + 1) * ksize];
            for x in 0..xmax {
                let w = if ww != 0.0 { k[x] / ww } else { k[x] };
                let f = w * (1u32 << PRECISION_BITS) as f64;
                row[x] = if w < 0.0 {
                    (-0.5 + f) as i32
                } else {
                    (0.5 + f) as i32
                };
            }
            bounds.push((xmin, xmax));
        }
        Taps {
            ksize,
            bounds,
            weights,
        }
    }
}

#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples frames of one size to another, reusing its tables and scratch memory.
#[derive(Debug, Clone, Default)]
pub struct Resizer {
    key: (usize, usize, usize, usize),
    h: Taps,
    v: Taps,
    /// Horizontal-pass output: `dst_w` × (rows the vertical pass reads), packed.
    tmp: Vec<u8>,
    /// One row of vertical-pass sums.
    acc: Vec<i32>,
    /// Shrinking a plane by an exact factor: see `Polyphase`.
    poly: Option<Polyphase>,
    /// The polyphase pass's input phases and sums.
    phases: Vec<i32>,
    sums: Vec<i32>,
}

/// A horizontal shrink by an exact factor `k` (input `k` times the output): away from the
/// borders every output `x` in `lo..hi` has the same taps, starting at input `k·x − d`. Split
/// into its `k` phases, the input makes each tap one contiguous multiply-add over all those
/// outputs (vector code), instead of a short gather per output.
#[derive(Debug, Clone, Copy)]
struct Polyphase {
    k: usize,
    d: usize,
    lo: usize,
    hi: usize,
}

impl Polyphase {
    fn find(taps: &Taps, in_size: usize, out_size: usize) -> Option<Polyphase> {
        if out_size < 8 || !in_size.is_multiple_of(out_size) || in_size / out_size < 2 {
            return None;
        }
        let k = in_size / out_size;
        let mid = out_size / 2;
        let (xmin, n) = taps.bounds[mid];
        let d = (k * mid).checked_sub(xmin)?;
        let w = |x: usize| &taps.weights[x * taps.ksize..x * taps.ksize + taps.bounds[x].1];
        let same = |x: usize| {
            let (xm, nx) = taps.bounds[x];
            nx == n && k * x >= d && xm == k * x - d && w(x) == w(mid)
        };
        let mut lo = mid;
        while lo > 0 && same(lo - 1) {
            lo -= 1;
        }
        let mut hi = mid + 1;
        while hi < out_size && same(hi) {
            hi += 1;
        }
        (hi - lo >= out_size / 2).then_some(Polyphase { k, d, lo, hi })
    }
}

impl Resizer {
    /// An empty resizer; tables are built on first use for each size pair.
    pub fn new() -> Self {
        Self::default()
    }

    fn prepare(&mut self, sw: usize, sh: usize, dw: usize, dh: usize) {
        if self.key != (sw, sh, dw, dh) || self.h.bounds.is_empty() {
            self.h = Taps::new(sw, dw);
            self.v = Taps::new(sh, dh);
            self.key = (sw, sh, dw, dh);
            self.poly = Polyphase::find(&self.h, sw, dw);
        }
    }

    /// Resamples `src` into `dst` (same pixel format, any sizes). All bytes of each pixel are
    /// resampled, alpha included. Allocates only when the sizes change.
    pub fn resize(&mut self, src: &Frame<'_>, dst: &mut FrameMut<'_>) -> Result<(), FrameError> {
        if src.format() != dst.format() {
            return Err(FrameError::Mismatch(format!(
                "cannot resize a {} frame into a {} frame",
                src.format(),
                dst.format()
            )));
        }
        let bpp = src.format().bytes_per_pixel();
        let s = Src {
            data: src.data(),
            stride: src.stride(),
            w: src.width(),
            h: src.height(),
        };
        let (dw, dh, stride) = (dst.width(), dst.height(), dst.stride());
        let d = Dst {
            data: &mut *dst.data,
            stride,
            w: dw,
            h: dh,
        };
        self.dispatch(bpp, s, d);
        Ok(())
    }

    /// Resamples one plane of 8-bit samples (e.g. the Y, U or V plane of an I420 frame):
    /// `src` is `sw`×`sh` with rows `src_stride` bytes apart, `dst` likewise.
    #[allow(clippy::too_many_arguments)]
    pub fn resize_plane(
        &mut self,
        src: &[u8],
        (sw, sh, src_stride): (usize, usize, usize),
        dst: &mut [u8],
        (dw, dh, dst_stride): (usize, usize, usize),
    ) -> Result<(), FrameError> {
        let fits = |len: usize, w: usize, h: usize, stride: usize| {
            w > 0 && h > 0 && stride >= w && len >= (h - 1) * stride + w
        };
        if !fits(src.len(), sw, sh, src_stride) || !fits(dst.len(), dw, dh, dst_stride) {
            return Err(FrameError::Mismatch(format!(
                "plane of {sw}x{sh} (stride {src_stride}, {} bytes) into {dw}x{dh} (stride {dst_stride}, {} bytes) does not fit",
                src.len(),
                dst.len()
            )));
        }
        let s = Src {
            data: src,
            stride: src_stride,
            w: sw,
            h: sh,
        };
        let d = Dst {
            data: dst,
            stride: dst_stride,
            w: dw,
            h: dh,
        };
        self.dispatch(1, s, d);
        Ok(())
    }

    fn dispatch(&mut self, bpp: usize, src: Src<'_>, dst: Dst<'_>) {
        self.prepare(src.w, src.h, dst.w, dst.h);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.run_avx2(bpp, src, dst) };
            return;
        }
        self.run_any(bpp, src, dst);
    }

    /// [`Self::run_any`] compiled for AVX2: the same integer arithmetic, so the same bytes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&mut self, bpp: usize, src: Src<'_>, dst: Dst<'_>) {
        self.run_any(bpp, src, dst);
    }

    #[inline(always)]
    fn run_any(&mut self, bpp: usize, src: Src<'_>, dst: Dst<'_>) {
        match bpp {
            1 => self.run::<1>(src, dst),
            3 => self.run::<3>(src, dst),
            _ => self.run::<4>(src, dst),
        }
    }

    #[inline(always)]
    fn run<const BPP: usize>(&mut self, src: Src<'_>, mut dst: Dst<'_>) {
        let (sw, sh, dw, dh) = (src.w, src.h, dst.w, dst.h);
        let need_h = sw != dw;
        let need_v = sh != dh;
        if !need_h && !need_v {
            for y in 0..dh {
                dst.row::<BPP>(y).copy_from_slice(src.row::<BPP>(y));
            }
            return;
        }
        if !need_h {
            vertical::<BPP>(&self.v, |y| src.row::<BPP>(y), &mut dst, 0, &mut self.acc);
            return;
        }
        // Only the rows the vertical pass reads go through the horizontal pass.
        let (first, last) = if need_v {
            let (b0, _) = self.v.bounds[0];
            let (bl, nl) = self.v.bounds[dh - 1];
            (b0, bl + nl)
        } else {
            (0, sh)
        };
        let row_len = dw * BPP;
        if !need_v {
            for y in 0..sh {
                horizontal::<BPP>(&self.h, src.row::<BPP>(y), dst.row::<BPP>(y));
            }
            return;
        }
        self.tmp.resize(row_len * (last - first), 0);
        for y in first..last {
            let out = &mut self.tmp[(y - first) * row_len..(y - first + 1) * row_len];
            match self.poly {
                Some(p) if BPP == 1 => polyphase(
                    &self.h,
                    p,
                    src.row::<BPP>(y),
                    out,
                    &mut self.phases,
                    &mut self.sums,
                ),
                _ => horizontal::<BPP>(&self.h, src.row::<BPP>(y), out),
            }
        }
        let tmp = &self.tmp;
        vertical::<BPP>(
            &self.v,
            |y| &tmp[y * row_len..(y + 1) * row_len],
            &mut dst,
            first,
            &mut self.acc,
        );
    }
}

/// Rows of the picture being resampled.
#[derive(Clone, Copy)]
struct Src<'a> {
    data: &'a [u8],
    stride: usize,
    w: usize,
    h: usize,
}

impl<'a> Src<'a> {
    #[inline(always)]
    fn row<const BPP: usize>(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + self.w * BPP]
    }
}

/// Rows of the picture written.
struct Dst<'a> {
    data: &'a mut [u8],
    stride: usize,
    w: usize,
    h: usize,
}

impl Dst<'_> {
    #[inline(always)]
    fn row<const BPP: usize>(&mut self, y: usize) -> &mut [u8] {
        &mut self.data[y * self.stride..y * self.stride + self.w * BPP]
    }
}

/// Horizontal pass of one row. Each output pixel's taps read one slice of whole pixels, so
/// the loop has no bounds checks inside and the channels of a tap form one vector.
#[inline(always)]
fn horizontal<const BPP: usize>(taps: &Taps, src: &[u8], out: &mut [u8]) {
    for (xx, px) in out.chunks_exact_mut(BPP).enumerate() {
        let (xmin, n) = taps.bounds[xx];
        let k = &taps.weights[xx * taps.ksize..xx * taps.ksize + n];
        let window = &src[xmin * BPP..(xmin + n) * BPP];
        let mut acc = [1i32 << (PRECISION_BITS - 1); BPP];
        for (p, &w) in window.chunks_exact(BPP).zip(k) {
            for c in 0..BPP {
                acc[c] += p[c] as i32 * w;
            }
        }
        for c in 0..BPP {
            px[c] = clip8(acc[c]);
        }
    }
}

/// `horizontal` for one channel shrunk by `p.k` (see [`Polyphase`]): the borders as there,
/// the rest phase by phase. The same integer sums, so the same bytes.
#[inline(always)]
fn polyphase(
    taps: &Taps,
    p: Polyphase,
    src: &[u8],
    out: &mut [u8],
    phases: &mut Vec<i32>,
    sums: &mut Vec<i32>,
) {
    let Polyphase { k, d, lo, hi } = p;
    horizontal::<1>(taps, src, &mut out[..lo]);
    let (n, ksize) = (taps.bounds[lo].1, taps.ksize);
    let w = &taps.weights[lo * ksize..lo * ksize + n];
    let m = hi - lo;
    // Phase r holds inputs base + r, base + r + k, ...: as many as the last tap reaches.
    let base = k * lo - d;
    let len = m + (n - 1) / k + 1;
    phases.resize(k * len, 0);
    let row = &src[base..];
    if k == 4 {
        // The usual case (inference scale 0.25): whole groups of four in one pass; the
        // phases past the row's end are never read with a weight.
        let (p0, rest) = phases.split_at_mut(len);
        let (p1, rest) = rest.split_at_mut(len);
        let (p2, p3) = rest.split_at_mut(len);
        for ((((c, a), b), e), f) in row.chunks_exact(4).zip(p0).zip(p1).zip(p2).zip(p3) {
            (*a, *b, *e, *f) = (c[0] as i32, c[1] as i32, c[2] as i32, c[3] as i32);
        }
    } else if k == 2 {
        // Inference scale 0.25 on I420 chroma, 0.5 on luma.
        let (p0, p1) = phases.split_at_mut(len);
        for ((c, a), b) in row.chunks_exact(2).zip(p0).zip(p1) {
            (*a, *b) = (c[0] as i32, c[1] as i32);
        }
    } else {
        for r in 0..k {
            let ph = &mut phases[r * len..(r + 1) * len];
            let mut it = row.get(r..).unwrap_or_default().iter().step_by(k);
            for v in ph.iter_mut() {
                *v = it.next().map_or(0, |&b| b as i32);
            }
        }
    }
    sums.clear();
    sums.resize(m, 1i32 << (PRECISION_BITS - 1));
    for (t, &wt) in w.iter().enumerate() {
        let (q, r) = (t / k, t % k);
        let ph = &phases[r * len + q..r * len + q + m];
        for (a, &v) in sums.iter_mut().zip(ph) {
            *a += v * wt;
        }
    }
    for (o, &a) in out[lo..hi].iter_mut().zip(sums.iter()) {
        *o = clip8(a);
    }
    // The right border: its own taps, written where they belong.
    let tail = &mut out[hi..];
    for (i, px) in tail.iter_mut().enumerate() {
        let xx = hi + i;
        let (xmin, n) = taps.bounds[xx];
        let k = &taps.weights[xx * ksize..xx * ksize + n];
        let sum: i32 = src[xmin..xmin + n]
            .iter()
            .zip(k)
            .map(|(&p, &w)| p as i32 * w)
            .sum();
        *px = clip8((1i32 << (PRECISION_BITS - 1)) + sum);
    }
}

/// Vertical pass, one output row at a time: taps outermost, accumulating whole rows into
/// `acc` so the inner loop is a contiguous multiply-add the compiler vectorises.
#[inline(always)]
fn vertical<'s, const BPP: usize>(
    taps: &Taps,
    row: impl Fn(usize) -> &'s [u8],
    dst: &mut Dst<'_>,
    first: usize,
    acc: &mut Vec<i32>,
) {
    let width = dst.w * BPP;
    acc.resize(width, 0);
    for yy in 0..dst.h {
        let (ymin, n) = taps.bounds[yy];
        let k = &taps.weights[yy * taps.ksize..yy * taps.ksize + n];
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (i, &w) in k.iter().enumerate() {
            let r = &row(ymin - first + i)[..width];
            for (a, &p) in acc.iter_mut().zip(r) {
                *a += p as i32 * w;
            }
        }
        for (o, &a) in dst.row::<BPP>(yy).iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{OwnedFrame, PixelFormat};

    fn solid(w: usize, h: usize, v: [u8; 3]) -> OwnedFrame {
        let data = (0..w * h).flat_map(|_| v).collect();
        OwnedFrame::from_vec(data, w, h, PixelFormat::Rgb).unwrap()
    }

    #[test]
    fn solid_colour_stays_solid() {
        let src = solid(37, 23, [10, 128, 251]);
        for (w, h) in [(100, 61), (5, 3), (37, 50), (80, 23), (1, 1)] {
            let mut dst = OwnedFrame::new(w, h, PixelFormat::Rgb).unwrap();
            Resizer::new()
                .resize(&src.as_frame(), &mut dst.as_frame_mut())
                .unwrap();
            assert!(dst.data().chunks(3).all(|p| p == [10, 128, 251]), "{w}x{h}");
        }
    }

    #[test]
    fn same_size_is_a_copy_and_upscale_keeps_corners() {
        let data: Vec<u8> = (0..4 * 3 * 4).map(|i| (i * 5) as u8).collect();
        let src = OwnedFrame::from_vec(data.clone(), 4, 3, PixelFormat::Rgba).unwrap();
        let mut dst = OwnedFrame::new(4, 3, PixelFormat::Rgba).unwrap();
        let mut r = Resizer::new();
        r.resize(&src.as_frame(), &mut dst.as_frame_mut()).unwrap();
        assert_eq!(dst.data(), &data[..]);
        // 2x upscale of a horizontal ramp: Pillow gives 3/4,1/4 blends between samples.
        let ramp =
            OwnedFrame::from_vec(vec![0, 0, 0, 100, 100, 100], 2, 1, PixelFormat::Rgb).unwrap();
        let mut up = OwnedFrame::new(4, 1, PixelFormat::Rgb).unwrap();
        r.resize(&ramp.as_frame(), &mut up.as_frame_mut()).unwrap();
        let row: Vec<u8> = up.data().chunks(3).map(|p| p[0]).collect();
        assert_eq!(row, vec![0, 25, 75, 100]);
    }

    #[test]
    fn planes_resize_like_one_channel_of_a_packed_frame() {
        // The one-channel paths (the polyphase shrink included) against the packed one.
        let mut seed = 12345u32;
        for ((sw, sh), (dw, dh)) in [
            ((640, 360), (160, 90)),
            ((320, 180), (160, 90)),
            ((96, 64), (24, 16)),
            ((100, 30), (25, 10)),
            ((61, 47), (16, 12)),
            ((35, 9), (7, 3)),
            ((40, 40), (80, 20)),
        ] {
            let plane: Vec<u8> = (0..sw * sh)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let mut got = vec![0u8; dw * dh];
            Resizer::new()
                .resize_plane(&plane, (sw, sh, sw), &mut got, (dw, dh, dw))
                .unwrap();
            let rgb = OwnedFrame::from_vec(
                plane.iter().flat_map(|&v| [v, v, v]).collect(),
                sw,
                sh,
                PixelFormat::Rgb,
            )
            .unwrap();
            let mut want = OwnedFrame::new(dw, dh, PixelFormat::Rgb).unwrap();
            Resizer::new()
                .resize(&rgb.as_frame(), &mut want.as_frame_mut())
                .unwrap();
            let want: Vec<u8> = want.data().chunks(3).map(|p| p[0]).collect();
            assert_eq!(got, want, "{sw}x{sh} -> {dw}x{dh}");
        }
    }

    #[test]
    fn downscale_by_two_averages_with_neighbours() {
        // Shrinking by 2 widens the triangle to 4 taps: weights 1/8, 3/8, 3/8, 1/8.
        let src = OwnedFrame::from_vec(
            vec![0, 80, 160, 240]
                .into_iter()
                .flat_map(|v| [v; 3])
                .collect(),
            4,
            1,
            PixelFormat::Rgb,
        )
        .unwrap();
        let mut dst = OwnedFrame::new(2, 1, PixelFormat::Rgb).unwrap();
        Resizer::new()
            .resize(&src.as_frame(), &mut dst.as_frame_mut())
            .unwrap();
        // Left: (0*3 + 80*3 + 160*1) / 7 at the border = 57.1; right mirrors it.
        assert_eq!(dst.data()[0], 57);
        assert_eq!(dst.data()[3], 183);
    }
}
