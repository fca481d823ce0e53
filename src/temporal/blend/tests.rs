//! The vectorised kernels against the one-pixel-at-a-time ones they replaced
//! ([`super::reference`]): the same bytes and the same confidence bits, on random inputs,
//! odd sizes, padded strides and every pixel format.

use super::reference;
use super::*;
use crate::frame::PixelFormat;

/// A small deterministic generator (64-bit LCG, high bits).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    /// Uniform in [lo, hi).
    fn float(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() as f32 / (1u64 << 31) as f32)
    }
}

/// Random bytes for a `w`×`h` frame with `pad` bytes after each row: (buffer, stride).
fn random_frame(rng: &mut Rng, w: usize, h: usize, f: PixelFormat, pad: usize) -> (Vec<u8>, usize) {
    let stride = w * f.bytes_per_pixel() + pad;
    let data = (0..stride * h).map(|_| rng.byte()).collect();
    (data, stride)
}

/// A smooth random-looking image, so that block sums and interpolation see real structure,
/// with some noise.
fn smooth_frame(rng: &mut Rng, w: usize, h: usize, f: PixelFormat, pad: usize) -> (Vec<u8>, usize) {
    let bpp = f.bytes_per_pixel();
    let stride = w * bpp + pad;
    let mut data = vec![0u8; stride * h];
    let s = rng.float(0.0, 6.0);
    for y in 0..h {
        for x in 0..w {
            for c in 0..bpp {
                let v = 128.0
                    + 80.0 * ((x as f32 * 0.13 + s + c as f32).sin() * (y as f32 * 0.07 - s).cos())
                    + rng.float(-20.0, 20.0);
                data[y * stride + x * bpp + c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    (data, stride)
}

#[test]
fn block_divisor_is_exact() {
    for n in 1..=LUMA_MAX_BLOCK as u32 {
        let area = n * n;
        let d = BlockDivisor::new(area * 256);
        let max = 65_408 * area;
        let check = |x: u32| assert_eq!(d.div(x), x / (area * 256), "n {n} x {x}");
        for q in 0..=256u64 {
            let m = q * u64::from(area) * 256;
            for x in [m.saturating_sub(1), m, m + 1, m + u64::from(area) * 128] {
                if x <= u64::from(max) {
                    check(x as u32);
                }
            }
        }
        check(max);
        let mut rng = Rng(n as u64);
        for _ in 0..1000 {
            check(rng.next() % (max + 1));
        }
    }
}

#[test]
fn luma_downscale_matches_the_reference() {
    let mut rng = Rng(1);
    let sizes = [
        (1, 1),
        (3, 2),
        (5, 7),
        (17, 9),
        (64, 36),
        (130, 77),
        (1283, 9),
        (700, 300),
    ];
    for (w, h) in sizes {
        for f in PixelFormat::ALL {
            for n in [1, 2, 3, 4, 5, 6, 7, 8, 16, 33, 64, 65, 100, 256] {
                if n > 2 * w.max(h) {
                    continue;
                }
                let pad = rng.next() as usize % 9;
                let (data, stride) = if rng.next().is_multiple_of(2) {
                    random_frame(&mut rng, w, h, f, pad)
                } else {
                    smooth_frame(&mut rng, w, h, f, pad)
                };
                let frame = Frame::new(&data, w, h, stride, f).unwrap();
                let (mut fast, mut slow) = (GrayImage::default(), GrayImage::default());
                luma_downscale(&frame, n, &mut fast);
                reference::luma_downscale(&frame, n, &mut slow);
                assert_eq!((fast.width(), fast.height()), (slow.width(), slow.height()));
                assert_eq!(fast.data(), slow.data(), "{w}x{h} {f} n {n}");
            }
        }
    }
    // Blocks too large for the column sums, on a frame dark enough that the reference's
    // 32-bit sums do not wrap.
    let data = vec![3u8; 600 * 300 * 4];
    let frame = Frame::new(&data, 600, 300, 2400, PixelFormat::Rgba).unwrap();
    let (mut fast, mut slow) = (GrayImage::default(), GrayImage::default());
    luma_downscale(&frame, 290, &mut fast);
    reference::luma_downscale(&frame, 290, &mut slow);
    assert_eq!(fast.data(), slow.data());
}

/// A random flow field: mostly smooth motion of up to `amp` pixels, some noise, some
/// pixels moved out of the image, and a few non-finite values.
fn random_flow(rng: &mut Rng, w: usize, h: usize, amp: f32) -> FlowField {
    let mut f = FlowField::new(w, h);
    let (a, b) = (rng.float(-amp, amp), rng.float(-amp, amp));
    for (i, d) in f.data_mut().iter_mut().enumerate() {
        let (x, y) = ((i / 2) % w, (i / 2) / w);
        let smooth = if i % 2 == 0 {
            a * (y as f32 * 0.1).cos()
        } else {
            b * (x as f32 * 0.1).sin()
        };
        *d = match rng.next() % 200 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -1e9,
            3 => 0.0,
            4..=30 => rng.float(-2.0 * amp, 2.0 * amp),
            // Whole and half pixels: sample positions exactly on the grid.
            31..=40 => (rng.float(-amp, amp) * 2.0).round() / 2.0,
            _ => smooth + rng.float(-0.3, 0.3),
        };
    }
    f
}

fn random_luma(rng: &mut Rng, w: usize, h: usize) -> GrayImage {
    let (data, _) = smooth_frame(rng, w, h, PixelFormat::Rgb, 0);
    GrayImage::from_vec(w, h, data.chunks_exact(3).map(|p| p[1]).collect()).unwrap()
}

#[test]
fn confidence_matches_the_reference_bit_for_bit() {
    let mut rng = Rng(2);
    let sizes = [
        (1, 1),
        (2, 3),
        (5, 4),
        (63, 2),
        (64, 5),
        (65, 9),
        (70, 33),
        (320, 180),
    ];
    let params = [
        ConfidenceParams::default(),
        ConfidenceParams {
            fb_relative: 0.05,
            fb_absolute: 0.5,
            mb_relative: 0.1,
            mb_absolute: 0.01,
            photometric: 5.0,
        },
    ];
    for (w, h) in sizes {
        for amp in [0.5, 3.0, 20.0] {
            for p in &params {
                let (cur, prev) = (random_luma(&mut rng, w, h), random_luma(&mut rng, w, h));
                let (bwd, fwd) = (
                    random_flow(&mut rng, w, h, amp),
                    random_flow(&mut rng, w, h, amp),
                );
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                let a = confidence(&cur, &prev, &bwd, &fwd, p, &mut fast);
                let b = reference::confidence(&cur, &prev, &bwd, &fwd, p, &mut slow);
                assert_eq!(a.to_bits(), b.to_bits(), "{w}x{h} amp {amp}");
                // Bits, with every NaN (from non-finite flow) the same: vector and scalar
                // instructions give NaNs of different signs.
                let bits = |v: &[f32]| {
                    v.iter()
                        .map(|c| if c.is_nan() { u32::MAX } else { c.to_bits() })
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&fast), bits(&slow), "{w}x{h} amp {amp}");
            }
        }
    }
}

#[test]
fn warp_blend_matches_the_reference() {
    let mut rng = Rng(3);
    let sizes = [
        (2, 2),
        (3, 5),
        (8, 2),
        (9, 3),
        (17, 9),
        (64, 40),
        (131, 67),
        (320, 24),
    ];
    // One scratch for all the calls, as a filter keeps one across frames (and sizes).
    let (mut scratch, mut scalar_scratch) = (WarpScratch::default(), WarpScratch::default());
    let mut ref_scratch = reference::WarpScratch::default();
    for (w, h) in sizes {
        for f in PixelFormat::ALL {
            for n in [1, 2, 3, 4] {
                let (lw, lh) = ((w / n).max(1), (h / n).max(1));
                let bwd = random_flow(&mut rng, lw, lh, 3.0);
                let conf: Vec<f32> = (0..lw * lh)
                    .map(|_| match rng.next() % 20 {
                        0 => 0.0,
                        1 => 1.0,
                        2 => f32::NAN,
                        3 => 0.004,
                        _ => rng.float(0.0, 1.0),
                    })
                    .collect();
                let pad = rng.next() as usize % 7;
                let (hist, hstride) = smooth_frame(&mut rng, w, h, f, pad);
                let history = Frame::new(&hist, w, h, hstride, f).unwrap();
                let pad = rng.next() as usize % 7;
                let (new, stride) = random_frame(&mut rng, w, h, f, pad);
                for weight in [0.0, 0.3, 0.8, 1.0] {
                    let run = |kind: u8, s: &mut WarpScratch, r: &mut reference::WarpScratch| {
                        let mut d = new.clone();
                        let mut out = FrameMut::new(&mut d, w, h, stride, f).unwrap();
                        match kind {
                            0 => {
                                reference::warp_blend(&mut out, &history, &bwd, &conf, n, weight, r)
                            }
                            1 => warp_blend_with(
                                &mut out, &history, &bwd, &conf, n, weight, s, false,
                            ),
                            _ => {
                                warp_blend_with(&mut out, &history, &bwd, &conf, n, weight, s, true)
                            }
                        }
                        d
                    };
                    let expected = run(0, &mut scratch, &mut ref_scratch);
                    let scalar = run(1, &mut scalar_scratch, &mut ref_scratch);
                    let simd = run(2, &mut scratch, &mut ref_scratch);
                    assert!(
                        expected == scalar,
                        "scalar: {w}x{h} {f} n {n} weight {weight}"
                    );
                    assert!(expected == simd, "simd: {w}x{h} {f} n {n} weight {weight}");
                }
            }
        }
    }
}
