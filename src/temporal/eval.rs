//! Temporal-stability metrics.
//!
//! - The warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"):
//!   output frame t moved back onto frame t−1 with the flow of the *input*, squared
//!   difference with output t−1 over the pixels the flow can follow (forward-backward
//!   check), colours in [0, 1], averaged over pixels and channels, then over frame pairs.
//!   The same is computed for the input itself, the floor that any output has.
//! - The drift: mean absolute difference (in [0, 1]) between an output and the per-frame
//!   output it was blended from.
//!
//! The flow comes from our DIS at a finer preset than the blending uses, at full
//! resolution by default, so the metric is not measured with the blend's own flow.

use serde::Serialize;

use super::blend::{luma_downscale, sample_flow};
use super::flow::{DisFlow, DisParams, FlowField, FlowPreset, GrayImage};
use crate::frame::{Frame, FrameError, OwnedFrame, PixelFormat};

/// Settings of the metric.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricOptions {
    /// DIS preset of the metric's flow.
    pub preset: FlowPreset,
    /// Flow on luma this many times smaller than the frame (1 = full resolution).
    pub flow_divisor: usize,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self {
            preset: FlowPreset::Medium,
            flow_divisor: 1,
        }
    }
}

/// Results of [`TemporalMetric`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MetricReport {
    /// Frames seen.
    pub frames: usize,
    /// Warping error of the input video.
    pub warp_error_input: f64,
    /// Warping error of the output video.
    pub warp_error_output: f64,
    /// Warping error of the per-frame reference, when one was given.
    pub warp_error_reference: Option<f64>,
    /// `(E_reference − E_output) / (E_reference − E_input)`: the share of the flicker that
    /// per-frame stylisation adds which the output removes.
    pub flicker_removed: Option<f64>,
    /// Mean absolute difference between output and reference, in [0, 1].
    pub drift: Option<f64>,
    /// Mean fraction of pixels where the flow could be followed (the others are not
    /// counted in the warping errors).
    pub followed: f64,
}

/// Accumulates the metrics over a video, one frame (input, output, reference) at a time.
#[derive(Debug)]
pub struct TemporalMetric {
    options: MetricOptions,
    dis: DisFlow,
    luma: [GrayImage; 2],
    fwd: FlowField,
    bwd: FlowField,
    prev: [OwnedFrame; 3],
    mask: Vec<u8>,
    frames: usize,
    pairs: usize,
    sum_in: f64,
    sum_out: f64,
    sum_ref: f64,
    sum_followed: f64,
    drift_sum: f64,
    drift_frames: usize,
    have_reference: bool,
}

impl TemporalMetric {
    /// An empty accumulator.
    pub fn new(options: MetricOptions) -> Self {
        let blank = || OwnedFrame::new(1, 1, PixelFormat::Rgb).expect("1x1 frame");
        Self {
            dis: DisFlow::new(DisParams::preset(options.preset)),
            options,
            luma: [GrayImage::default(), GrayImage::default()],
            fwd: FlowField::default(),
            bwd: FlowField::default(),
            prev: [blank(), blank(), blank()],
            mask: Vec::new(),
            frames: 0,
            pairs: 0,
            sum_in: 0.0,
            sum_out: 0.0,
            sum_ref: 0.0,
            sum_followed: 0.0,
            drift_sum: 0.0,
            drift_frames: 0,
            have_reference: false,
        }
    }

    /// Adds one frame of the input, the output and optionally the per-frame reference, all
    /// of the same size.
    pub fn push(
        &mut self,
        input: &Frame<'_>,
        output: &Frame<'_>,
        reference: Option<&Frame<'_>>,
    ) -> Result<(), FrameError> {
        let (w, h) = (input.width(), input.height());
        for f in [Some(output), reference].into_iter().flatten() {
            if (f.width(), f.height()) != (w, h) {
                return Err(FrameError::Mismatch(format!(
                    "frame {} is {}x{} but the input is {w}x{h}",
                    self.frames,
                    f.width(),
                    f.height()
                )));
            }
        }
        if self.frames > 0 && reference.is_some() != self.have_reference {
            return Err(FrameError::Mismatch(
                "the reference must be given for every frame or none".into(),
            ));
        }
        self.have_reference = reference.is_some();
        let n = self.options.flow_divisor.max(1);
        let cur = self.frames % 2;
        luma_downscale(input, n, &mut self.luma[cur]);
        if let Some(r) = reference {
            self.drift_sum += mean_abs_diff(output, r);
            self.drift_frames += 1;
        }
        let same = (self.prev[0].width(), self.prev[0].height()) == (w, h);
        if self.frames > 0 && same {
            let (a, b) = (&self.luma[cur ^ 1], &self.luma[cur]);
            if self.dis.calc(a, b, &mut self.fwd).is_ok()
                && self.dis.calc(b, a, &mut self.bwd).is_ok()
            {
                let followed = follow_mask(&self.fwd, &self.bwd, n, w, h, &mut self.mask);
                self.sum_followed += followed;
                self.sum_in +=
                    warp_error(&self.prev[0].as_frame(), input, &self.fwd, n, &self.mask);
                self.sum_out +=
                    warp_error(&self.prev[1].as_frame(), output, &self.fwd, n, &self.mask);
                if let Some(r) = reference {
                    self.sum_ref +=
                        warp_error(&self.prev[2].as_frame(), r, &self.fwd, n, &self.mask);
                }
                self.pairs += 1;
            }
        }
        for (slot, f) in self
            .prev
            .iter_mut()
            .zip([Some(input), Some(output), reference])
        {
            if let Some(f) = f {
                if (slot.width(), slot.height(), slot.format()) != (w, h, f.format()) {
                    slot.reshape(w, h, f.format())?;
                }
                slot.as_frame_mut().copy_from(f)?;
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// The metrics so far.
    pub fn report(&self) -> MetricReport {
        let pairs = self.pairs.max(1) as f64;
        let (e_in, e_out) = (self.sum_in / pairs, self.sum_out / pairs);
        let e_ref = self.have_reference.then(|| self.sum_ref / pairs);
        MetricReport {
            frames: self.frames,
            warp_error_input: e_in,
            warp_error_output: e_out,
            warp_error_reference: e_ref,
            flicker_removed: e_ref
                .filter(|r| r - e_in > 0.0)
                .map(|r| (r - e_out) / (r - e_in)),
            drift: (self.drift_frames > 0).then(|| self.drift_sum / self.drift_frames as f64),
            followed: self.sum_followed / pairs,
        }
    }
}

/// Marks (1) the full-resolution pixels of frame t−1 whose forward flow lands inside frame
/// t and comes back (Sundaram et al. 2010's check, in full-resolution pixels). Returns the
/// fraction marked.
fn follow_mask(
    fwd: &FlowField,
    bwd: &FlowField,
    n: usize,
    w: usize,
    h: usize,
    mask: &mut Vec<u8>,
) -> f64 {
    mask.resize(w * h, 0);
    let nf = n as f32;
    let to_low = |v: f32| (v + 0.5) / nf - 0.5;
    let mut count = 0usize;
    for y in 0..h {
        for x in 0..w {
            let (fu, fv) = sample_flow(fwd, to_low(x as f32), to_low(y as f32));
            let (fu, fv) = (fu * nf, fv * nf);
            let (px, py) = (x as f32 + fu, y as f32 + fv);
            let ok = px >= 0.0 && py >= 0.0 && px <= (w - 1) as f32 && py <= (h - 1) as f32 && {
                let (bu, bv) = sample_flow(bwd, to_low(px), to_low(py));
                let (bu, bv) = (bu * nf, bv * nf);
                let e = (fu + bu).powi(2) + (fv + bv).powi(2);
                e < 0.01 * (fu * fu + fv * fv + bu * bu + bv * bv) + 0.5
            };
            mask[y * w + x] = ok as u8;
            count += ok as usize;
        }
    }
    count as f64 / (w * h) as f64
}

/// Mean over marked pixels of the squared colour difference (in [0, 1]) between `prev` and
/// `cur` sampled at `x + fwd(x)`.
fn warp_error(prev: &Frame<'_>, cur: &Frame<'_>, fwd: &FlowField, n: usize, mask: &[u8]) -> f64 {
    let (w, h) = (prev.width(), prev.height());
    let nf = n as f32;
    let to_low = |v: f32| (v + 0.5) / nf - 0.5;
    let (pb, cb) = (
        prev.format().bytes_per_pixel(),
        cur.format().bytes_per_pixel(),
    );
    let (po, co) = (prev.format().rgb_offsets(), cur.format().rgb_offsets());
    let mut sum = 0.0f64;
    let mut count = 0usize;
    for y in 0..h {
        let prow = prev.row(y);
        for x in 0..w {
            if mask[y * w + x] == 0 {
                continue;
            }
            let (fu, fv) = sample_flow(fwd, to_low(x as f32), to_low(y as f32));
            let sx = (x as f32 + fu * nf).clamp(0.0, (w - 1) as f32);
            let sy = (y as f32 + fv * nf).clamp(0.0, (h - 1) as f32);
            let (x0, y0) = (sx as usize, sy as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (gx, gy) = (sx - x0 as f32, sy - y0 as f32);
            let (r0, r1) = (cur.row(y0), cur.row(y1));
            let mut e = 0.0f32;
            for c in 0..3 {
                let at = |r: &[u8], xx: usize| r[xx * cb + co[c]] as f32;
                let top = at(r0, x0) + (at(r0, x1) - at(r0, x0)) * gx;
                let bot = at(r1, x0) + (at(r1, x1) - at(r1, x0)) * gx;
                let v = top + (bot - top) * gy;
                let d = (v - prow[x * pb + po[c]] as f32) / 255.0;
                e += d * d;
            }
            sum += (e / 3.0) as f64;
            count += 1;
        }
    }
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// Mean absolute colour difference in [0, 1].
fn mean_abs_diff(a: &Frame<'_>, b: &Frame<'_>) -> f64 {
    let (ab, bb) = (a.format().bytes_per_pixel(), b.format().bytes_per_pixel());
    let (ao, bo) = (a.format().rgb_offsets(), b.format().rgb_offsets());
    let mut sum = 0u64;
    for y in 0..a.height() {
        for (pa, pb) in a.row(y).chunks_exact(ab).zip(b.row(y).chunks_exact(bb)) {
            for c in 0..3 {
                sum += (pa[ao[c]] as i32 - pb[bo[c]] as i32).unsigned_abs() as u64;
            }
        }
    }
    sum as f64 / (a.width() * a.height() * 3) as f64 / 255.0
}
