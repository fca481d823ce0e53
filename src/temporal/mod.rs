//! Temporal consistency: blending each stylised frame with the previous output so that the
//! picture does not flicker.
//!
//! - [`flow`]: dense optical flow (DIS) between consecutive input frames;
//! - [`TemporalFilter`]: the blending state for one stream, in three modes
//!   ([`TemporalMode`]): none, an exponential moving average, or the previous output moved
//!   along the motion of the scene, trusted only where the flow is (`flow`);
//! - [`eval`]: the warping-error metric of Lai et al. 2018 and the drift from per-frame
//!   output.
//!
//! ```no_run
//! use stylize::frame::OwnedFrame;
//! use stylize::temporal::{TemporalFilter, TemporalMode, TemporalOptions};
//! # fn stylise(_: &mut stylize::frame::FrameMut<'_>) {}
//! # let frames: Vec<OwnedFrame> = Vec::new();
//! let mut filter = TemporalFilter::new(TemporalOptions::default());
//! for mut frame in frames {
//!     filter.observe(&frame.as_frame(), TemporalMode::Flow);
//!     stylise(&mut frame.as_frame_mut());
//!     filter.blend(&mut frame.as_frame_mut(), TemporalMode::Flow, 0.7).unwrap();
//! }
//! ```

pub mod blend;
pub mod eval;
pub mod flow;

use crate::frame::{Frame, FrameError, FrameMut, OwnedFrame, PixelFormat, mix};
pub use blend::ConfidenceParams;
use blend::{WarpScratch, confidence, luma_downscale, warp_blend};
pub use flow::{DisFlow, DisParams, FlowError, FlowField, FlowPreset, GrayImage};

/// How successive stylised frames are blended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TemporalMode {
    /// Every frame on its own.
    #[default]
    None,
    /// `out = new + weight × (previous output − new)`, ignoring motion.
    Ema,
    /// The previous output moved along the optical flow of the input, blended where the
    /// flow passes the forward-backward and photometric checks.
    Flow,
}

/// Settings of flow blending.
#[derive(Clone, Debug, PartialEq)]
pub struct TemporalOptions {
    /// DIS preset of the flow.
    pub preset: FlowPreset,
    /// The flow runs on luma `flow_divisor` times smaller than the frame; 0 picks it from
    /// the frame width (about 320 pixels wide).
    pub flow_divisor: usize,
    /// A frame where fewer than this fraction of pixels can be followed from the previous
    /// one is a scene cut: the history is dropped instead of blended.
    pub cut_threshold: f32,
    /// Confidence thresholds.
    pub confidence: ConfidenceParams,
}

impl Default for TemporalOptions {
    fn default() -> Self {
        Self {
            preset: FlowPreset::Medium,
            flow_divisor: 0,
            cut_threshold: 0.3,
            confidence: ConfidenceParams::default(),
        }
    }
}

/// The flow divisor for a frame width: the flow image is about 320 pixels wide.
pub fn auto_flow_divisor(width: usize) -> usize {
    (width / 320).max(1)
}

/// DIS parameters for a luma image `width` pixels wide: the preset's patch size, stride and
/// iterations, with the finest scale chosen so that the flow field is between
/// [`min_flow_width`] and twice that. Finer flow costs time on every frame; coarser blurs
/// motion boundaries over more pixels and leaves more flicker (measured in
/// docs/TEMPORAL.md).
pub fn flow_params(preset: FlowPreset, width: usize) -> DisParams {
    let mut p = DisParams::preset(preset);
    p.finest_scale = (width / min_flow_width(preset)).max(1).ilog2() as usize;
    p
}

/// The narrowest flow field a preset computes: 160 pixels for `ultrafast` (the real-time
/// choice), 320 for the others.
pub fn min_flow_width(preset: FlowPreset) -> usize {
    match preset {
        FlowPreset::UltraFast => 160,
        FlowPreset::Fast | FlowPreset::Medium => 320,
    }
}

/// What [`TemporalFilter::blend`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlendOutcome {
    /// Left as it was (mode none, weight 0, or the first frame after a reset).
    PerFrame,
    /// Blended with the previous output.
    Blended {
        /// Fraction of pixels the flow could follow (1 for EMA).
        tracked: f32,
    },
    /// A scene cut: the history was dropped.
    Cut {
        /// Fraction of pixels the flow could follow.
        tracked: f32,
    },
}

/// Time spent in each temporal stage of the last frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TemporalTimes {
    /// Input luma at the flow's resolution (in `observe`).
    pub luma: std::time::Duration,
    /// Both optical flows and the confidence map.
    pub flow: std::time::Duration,
    /// Warp of the history and the blend, or the EMA mix, and keeping the new history.
    pub blend: std::time::Duration,
}

/// Most inputs observed ahead of their blend (frames in flight in parallel models).
pub const MAX_AHEAD: usize = 8;

/// Blending state for one stream. Allocates only when the frame size changes.
///
/// Every frame goes through [`observe`](Self::observe) (the input, before stylisation) and
/// then [`blend`](Self::blend) (the output), in stream order; several frames may be observed
/// before the first of them is blended (up to [`MAX_AHEAD`]), as when frames are stylised in
/// parallel. [`skip`](Self::skip) stands for the blend of a frame that produced no output.
#[derive(Debug)]
pub struct TemporalFilter {
    options: TemporalOptions,
    dis: DisFlow,
    /// Luma of the input whose output is the history, and its divisor.
    prev: GrayImage,
    prev_divisor: usize,
    prev_valid: bool,
    /// Observed inputs not blended yet, oldest first: (luma, divisor), or `None` for a frame
    /// observed outside flow mode.
    ahead: std::collections::VecDeque<Option<(GrayImage, usize)>>,
    /// Luma buffers to reuse.
    spare: Vec<GrayImage>,
    fwd: FlowField,
    bwd: FlowField,
    conf: Vec<f32>,
    scratch: WarpScratch,
    history: OwnedFrame,
    history_valid: bool,
    cuts: u64,
    times: TemporalTimes,
}

impl TemporalFilter {
    /// A filter with no history.
    pub fn new(options: TemporalOptions) -> Self {
        Self {
            dis: DisFlow::new(DisParams::preset(options.preset)),
            options,
            prev: GrayImage::default(),
            prev_divisor: 1,
            prev_valid: false,
            ahead: std::collections::VecDeque::with_capacity(MAX_AHEAD + 1),
            spare: Vec::with_capacity(MAX_AHEAD + 2),
            fwd: FlowField::default(),
            bwd: FlowField::default(),
            conf: Vec::new(),
            scratch: WarpScratch::default(),
            history: OwnedFrame::new(1, 1, PixelFormat::Rgb).expect("1x1 frame"),
            history_valid: false,
            cuts: 0,
            times: TemporalTimes::default(),
        }
    }

    /// The settings.
    pub fn options(&self) -> &TemporalOptions {
        &self.options
    }

    /// Changes the settings; a new preset or divisor drops the history.
    pub fn set_options(&mut self, options: TemporalOptions) {
        if options.preset != self.options.preset
            || options.flow_divisor != self.options.flow_divisor
        {
            // The estimator itself is rebuilt by the next `observe`.
            self.reset();
        }
        self.options = options;
    }

    /// Forgets the past: the next frame blended is output as it is (flush, discontinuity,
    /// new segment, new caps, new model). Frames already observed stay observed.
    pub fn reset(&mut self) {
        self.history_valid = false;
        self.prev_valid = false;
    }

    /// Scene cuts seen since the filter was made.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    /// Stage times: luma of the last observed frame, flow and blend of the last blended one.
    pub fn times(&self) -> TemporalTimes {
        self.times
    }

    /// The confidence map of the last blended frame (flow resolution) and its width.
    pub fn confidence_map(&self) -> (&[f32], usize) {
        (&self.conf, self.bwd.width())
    }

    /// Takes the input frame, before it is stylised (flow mode needs its luma).
    pub fn observe(&mut self, input: &Frame<'_>, mode: TemporalMode) {
        if self.ahead.len() >= MAX_AHEAD {
            // Observed frames that were never blended: the oldest no longer line up.
            if let Some(Some((l, _))) = self.ahead.pop_front() {
                self.spare.push(l);
            }
            self.reset();
        }
        if mode != TemporalMode::Flow {
            self.ahead.push_back(None);
            return;
        }
        let divisor = match self.options.flow_divisor {
            0 => auto_flow_divisor(input.width()),
            d => d,
        };
        let t = std::time::Instant::now();
        let mut luma = self.spare.pop().unwrap_or_default();
        luma_downscale(input, divisor, &mut luma);
        self.times.luma = t.elapsed();
        let params = flow_params(self.options.preset, luma.width());
        if *self.dis.params() != params {
            self.dis = DisFlow::new(params);
        }
        self.ahead.push_back(Some((luma, divisor)));
    }

    /// Records a frame whose input could not be read: it will be blended without flow.
    pub fn observe_none(&mut self) {
        if self.ahead.len() >= MAX_AHEAD {
            self.skip();
        }
        self.ahead.push_back(None);
    }

    /// Stands for the blend of the oldest observed frame when it produced no output
    /// (inference failed): the history no longer matches what follows.
    pub fn skip(&mut self) {
        if let Some(Some((l, _))) = self.ahead.pop_front() {
            self.spare.push(l);
        }
        self.reset();
    }

    /// Blends the stylised `out` (the oldest observed frame) with the history and makes it
    /// the new history.
    pub fn blend(
        &mut self,
        out: &mut FrameMut<'_>,
        mode: TemporalMode,
        weight: f32,
    ) -> Result<BlendOutcome, FrameError> {
        let cur = self.ahead.pop_front().flatten();
        let outcome = self.blend_with(out, mode, weight, cur.as_ref());
        // The current input's luma becomes the previous one, whatever happened.
        match cur {
            Some((luma, divisor)) => {
                let old = std::mem::replace(&mut self.prev, luma);
                self.spare.push(old);
                self.prev_divisor = divisor;
                self.prev_valid = outcome.is_ok();
            }
            None => self.prev_valid = false,
        }
        if outcome.is_err() {
            self.history_valid = false;
        }
        outcome
    }

    fn blend_with(
        &mut self,
        out: &mut FrameMut<'_>,
        mode: TemporalMode,
        weight: f32,
        cur: Option<&(GrayImage, usize)>,
    ) -> Result<BlendOutcome, FrameError> {
        let weight = weight.clamp(0.0, 1.0);
        self.times.flow = std::time::Duration::ZERO;
        self.times.blend = std::time::Duration::ZERO;
        if mode == TemporalMode::None || weight <= 0.0 {
            self.history_valid = false;
            return Ok(BlendOutcome::PerFrame);
        }
        let shape = (out.width(), out.height(), out.format());
        let same = self.history_valid
            && (
                self.history.width(),
                self.history.height(),
                self.history.format(),
            ) == shape;
        let follows = |c: &(GrayImage, usize)| {
            self.prev_valid
                && c.1 == self.prev_divisor
                && (c.0.width(), c.0.height()) == (self.prev.width(), self.prev.height())
        };
        let t = std::time::Instant::now();
        let outcome = match (mode, cur) {
            (TemporalMode::Ema, _) if same => {
                mix(out, &self.history.as_frame(), weight)?;
                BlendOutcome::Blended { tracked: 1.0 }
            }
            (TemporalMode::Flow, Some(c)) if same && follows(c) => {
                let (prev, (cur, divisor)) = (&self.prev, c);
                // Flow fails only on images smaller than a patch: such frames stay per-frame.
                let flows = self
                    .dis
                    .calc(cur, prev, &mut self.bwd)
                    .and_then(|()| self.dis.calc(prev, cur, &mut self.fwd));
                if flows.is_err() {
                    self.history_valid = false;
                    return Ok(BlendOutcome::PerFrame);
                }
                let tracked = confidence(
                    cur,
                    prev,
                    &self.bwd,
                    &self.fwd,
                    &self.options.confidence,
                    &mut self.conf,
                );
                self.times.flow = t.elapsed();
                if tracked < self.options.cut_threshold {
                    self.cuts += 1;
                    BlendOutcome::Cut { tracked }
                } else {
                    warp_blend(
                        out,
                        &self.history.as_frame(),
                        &self.bwd,
                        &self.conf,
                        *divisor,
                        weight,
                        &mut self.scratch,
                    );
                    BlendOutcome::Blended { tracked }
                }
            }
            _ => BlendOutcome::PerFrame,
        };
        if !same {
            self.history.reshape(shape.0, shape.1, shape.2)?;
        }
        self.history.as_frame_mut().copy_from(&out.as_frame())?;
        self.history_valid = true;
        self.times.blend = t.elapsed() - self.times.flow;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth random-looking texture (sum of sinusoids), sampled at `x + dx`.
    fn texture(x: f32, y: f32, seed: f32) -> f32 {
        128.0
            + 45.0 * (x * 0.21 + seed).sin() * (y * 0.17 - seed).cos()
            + 35.0 * ((x - y) * 0.093 + 2.0 * seed).sin()
            + 25.0 * (x * 0.051 + y * 0.077 + seed * 3.0).cos()
    }

    /// Blocky value noise: nothing in it lines up with [`texture`].
    fn other_scene(w: usize, h: usize) -> OwnedFrame {
        let mut d = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let cell = ((x / 6) * 7919 + (y / 6) * 104_729) as u32;
                let v = (cell.wrapping_mul(2_654_435_761) >> 24) as u8;
                d[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[v, v / 2 + 60, 255 - v]);
            }
        }
        OwnedFrame::from_vec(d, w, h, PixelFormat::Rgb).unwrap()
    }

    /// An RGB frame of the texture moved right by `dx` (so its flow is +dx).
    fn frame(w: usize, h: usize, dx: f32, seed: f32) -> OwnedFrame {
        let mut d = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let v = texture(x as f32 - dx, y as f32, seed);
                let i = (y * w + x) * 3;
                // Strong luma contrast, so that the photometric check means something.
                d[i] = v.clamp(0.0, 255.0) as u8;
                d[i + 1] = (v * 0.8 + 20.0).clamp(0.0, 255.0) as u8;
                d[i + 2] = (255.0 - v).clamp(0.0, 255.0) as u8;
            }
        }
        OwnedFrame::from_vec(d, w, h, PixelFormat::Rgb).unwrap()
    }

    /// A stand-in for the model: a pixel-wise colour change plus flicker `noise`.
    fn stylise(f: &OwnedFrame, noise: i32) -> OwnedFrame {
        let d = f
            .data()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                (255 - v as i32 + if i % 2 == 0 { noise } else { -noise }).clamp(0, 255) as u8
            })
            .collect();
        OwnedFrame::from_vec(d, f.width(), f.height(), f.format()).unwrap()
    }

    fn mean_abs(a: &OwnedFrame, b: &OwnedFrame, margin: usize) -> f32 {
        let (w, h) = (a.width(), a.height());
        let mut sum = 0u64;
        let mut n = 0u64;
        for y in margin..h - margin {
            for x in margin * 3..(w - margin) * 3 {
                let i = y * w * 3 + x;
                sum += (a.data()[i] as i32 - b.data()[i] as i32).unsigned_abs() as u64;
                n += 1;
            }
        }
        sum as f32 / n as f32
    }

    /// Runs one frame through the filter: observe the input, "stylise", blend.
    fn step(
        t: &mut TemporalFilter,
        input: &OwnedFrame,
        styled: &OwnedFrame,
        mode: TemporalMode,
        weight: f32,
    ) -> (OwnedFrame, BlendOutcome) {
        t.observe(&input.as_frame(), mode);
        let mut out = styled.clone();
        let o = t.blend(&mut out.as_frame_mut(), mode, weight).unwrap();
        (out, o)
    }

    #[test]
    fn weight_zero_is_bit_exact_per_frame() {
        let mut t = TemporalFilter::new(TemporalOptions::default());
        for i in 0..4 {
            let f = frame(96, 64, i as f32 * 2.0, 0.3);
            let s = stylise(&f, 7 * (i % 2));
            let (out, o) = step(&mut t, &f, &s, TemporalMode::Flow, 0.0);
            assert_eq!(out.data(), s.data());
            assert_eq!(o, BlendOutcome::PerFrame);
        }
    }

    #[test]
    fn a_static_scene_settles_and_flicker_is_damped() {
        let mut t = TemporalFilter::new(TemporalOptions::default());
        let f = frame(120, 80, 0.0, 1.0);
        let mut outs = Vec::new();
        for i in 0..12 {
            // Per-frame flicker of ±8 levels, alternating.
            let s = stylise(&f, if i % 2 == 0 { 8 } else { -8 });
            let (out, o) = step(&mut t, &f, &s, TemporalMode::Flow, 0.7);
            if i > 0 {
                assert!(
                    matches!(o, BlendOutcome::Blended { tracked } if tracked > 0.9),
                    "{o:?}"
                );
            }
            outs.push(out);
        }
        // Per frame, consecutive outputs differ by 16 levels; blended, by about
        // 16 × 0.3 / 1.7 ≈ 2.8, plus up to a level from truncating each step.
        let d = mean_abs(&outs[10], &outs[11], 0);
        assert!(d < 4.5, "consecutive outputs differ by {d}");
        // Without flicker the output settles on the per-frame picture.
        let s = stylise(&f, 0);
        let mut last = None;
        for _ in 0..20 {
            last = Some(step(&mut t, &f, &s, TemporalMode::Flow, 0.7).0);
        }
        let d = mean_abs(last.as_ref().unwrap(), &s, 0);
        assert!(d < 1.0, "settled {d} levels away from the per-frame output");
    }

    #[test]
    fn motion_is_followed_without_ghosts() {
        // The texture pans 3 px per frame: blending along the flow stays on the per-frame
        // picture, blending in place (EMA) smears it.
        let (w, h) = (160, 96);
        let mut flow = TemporalFilter::new(TemporalOptions::default());
        let mut ema = TemporalFilter::new(TemporalOptions::default());
        let (mut d_flow, mut d_ema) = (0.0, 0.0);
        for i in 0..8 {
            let f = frame(w, h, i as f32 * 3.0, 0.7);
            let s = stylise(&f, 0);
            let (a, _) = step(&mut flow, &f, &s, TemporalMode::Flow, 0.7);
            let (b, _) = step(&mut ema, &f, &s, TemporalMode::Ema, 0.7);
            if i >= 2 {
                d_flow += mean_abs(&a, &s, 12);
                d_ema += mean_abs(&b, &s, 12);
            }
        }
        assert!(
            d_flow / 6.0 < 2.5,
            "flow blend is {} levels off",
            d_flow / 6.0
        );
        assert!(d_ema > 4.0 * d_flow, "ema {d_ema} vs flow {d_flow}");
    }

    #[test]
    fn frames_observed_ahead_blend_as_in_sequence() {
        // Two frames in flight (parallel models): observe runs one frame ahead of blend, and
        // the outputs are those of the one-at-a-time order.
        let (w, h) = (128, 80);
        let frames: Vec<OwnedFrame> = (0..6).map(|i| frame(w, h, i as f32 * 2.0, 0.5)).collect();
        let styled: Vec<OwnedFrame> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| stylise(f, 5 * (i as i32 % 2)))
            .collect();
        let mut seq = TemporalFilter::new(TemporalOptions::default());
        let expected: Vec<OwnedFrame> = (0..6)
            .map(|i| step(&mut seq, &frames[i], &styled[i], TemporalMode::Flow, 0.8).0)
            .collect();
        let mut ahead = TemporalFilter::new(TemporalOptions::default());
        ahead.observe(&frames[0].as_frame(), TemporalMode::Flow);
        for i in 0..6 {
            if i + 1 < 6 {
                ahead.observe(&frames[i + 1].as_frame(), TemporalMode::Flow);
            }
            let mut out = styled[i].clone();
            ahead
                .blend(&mut out.as_frame_mut(), TemporalMode::Flow, 0.8)
                .unwrap();
            assert_eq!(out.data(), expected[i].data(), "frame {i}");
        }
        // A frame that produced no output: the next one starts afresh.
        ahead.observe(&frames[0].as_frame(), TemporalMode::Flow);
        ahead.observe(&frames[1].as_frame(), TemporalMode::Flow);
        ahead.skip();
        let mut out = styled[1].clone();
        let o = ahead
            .blend(&mut out.as_frame_mut(), TemporalMode::Flow, 0.8)
            .unwrap();
        assert_eq!((o, out.data()), (BlendOutcome::PerFrame, styled[1].data()));
    }

    #[test]
    fn a_scene_cut_resets_without_a_ghost() {
        let mut t = TemporalFilter::new(TemporalOptions::default());
        let a = frame(128, 80, 0.0, 0.1);
        for _ in 0..3 {
            step(&mut t, &a, &stylise(&a, 0), TemporalMode::Flow, 0.9);
        }
        let b = other_scene(128, 80);
        let sb = stylise(&b, 0);
        let (out, o) = step(&mut t, &b, &sb, TemporalMode::Flow, 0.9);
        assert!(matches!(o, BlendOutcome::Cut { .. }), "{o:?}");
        assert_eq!(out.data(), sb.data(), "nothing of the old scene is left");
        assert_eq!(t.cuts(), 1);
        // The new scene is then blended again.
        let (_, o) = step(&mut t, &b, &sb, TemporalMode::Flow, 0.9);
        assert!(matches!(o, BlendOutcome::Blended { .. }), "{o:?}");
    }

    #[test]
    fn reset_and_size_change_drop_the_history() {
        let mut t = TemporalFilter::new(TemporalOptions::default());
        let a = frame(96, 64, 0.0, 0.1);
        step(&mut t, &a, &stylise(&a, 0), TemporalMode::Flow, 0.8);
        t.reset();
        let s = stylise(&a, 9);
        let (out, o) = step(&mut t, &a, &s, TemporalMode::Flow, 0.8);
        assert_eq!((o, out.data()), (BlendOutcome::PerFrame, s.data()));
        let b = frame(80, 64, 0.0, 0.1);
        let sb = stylise(&b, 3);
        let (out, o) = step(&mut t, &b, &sb, TemporalMode::Flow, 0.8);
        assert_eq!((o, out.data()), (BlendOutcome::PerFrame, sb.data()));
    }

    #[test]
    fn disoccluded_pixels_are_distrusted() {
        // A textured square moves 6 px right over a static texture: the strip it uncovers
        // has no past, the background far from it has.
        let (w, h) = (160, 120);
        let scene = |pos: usize| {
            let mut f = frame(w, h, 0.0, 0.4);
            let sq = frame(w, h, 0.0, 2.2);
            let mut fm = f.as_frame_mut();
            for y in 40..80 {
                // The square's own texture moves with it.
                let src = &sq.data()[y * w * 3..(y * w + 40) * 3];
                fm.row_mut(y)[pos * 3..(pos + 40) * 3].copy_from_slice(src);
            }
            f
        };
        let mut t = TemporalFilter::new(TemporalOptions::default());
        let (f0, f1) = (scene(50), scene(56));
        step(&mut t, &f0, &stylise(&f0, 0), TemporalMode::Flow, 0.8);
        let (_, o) = step(&mut t, &f1, &stylise(&f1, 0), TemporalMode::Flow, 0.8);
        assert!(matches!(o, BlendOutcome::Blended { .. }), "{o:?}");
        let (conf, cw) = t.confidence_map();
        assert_eq!(cw, w, "flow at full size for a small frame");
        let mean = |x0: usize, x1: usize, y0: usize, y1: usize| {
            let mut s = 0.0;
            for y in y0..y1 {
                for x in x0..x1 {
                    s += conf[y * cw + x];
                }
            }
            s / ((x1 - x0) * (y1 - y0)) as f32
        };
        let uncovered = mean(51, 55, 44, 76);
        let background = mean(110, 150, 10, 30);
        assert!(uncovered < 0.5, "uncovered strip confidence {uncovered}");
        assert!(background > 0.9, "background confidence {background}");
    }
}
