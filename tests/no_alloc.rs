//! After the first frame of a size, stylising more frames of that size allocates nothing on
//! the Rust side (ONNX Runtime's own arena is separate and reuses its memory).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use stylize::engine::{EngineOptions, Provider};
use stylize::frame::{FrameMut, OwnedFrame, PixelFormat};
use stylize::temporal::{FlowPreset, TemporalFilter, TemporalMode, TemporalOptions};
use stylize::{SpecOverrides, Stylizer, StylizerOptions, Upsampler};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_steady_state(model: &str, format: PixelFormat, scale: f32, upsampler: Upsampler) -> usize {
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    let bpp = format.bytes_per_pixel();
    let mut buf = vec![0u8; w * h * bpp];
    for (d, s) in buf.chunks_mut(bpp).zip(rgb.chunks(3)) {
        d[..3].copy_from_slice(s);
    }
    let opts = EngineOptions {
        provider: Provider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let mut s = Stylizer::load(
        &data().join(model),
        &SpecOverrides::default(),
        &opts,
        StylizerOptions {
            inference_scale: scale,
            upsampler,
        },
    )
    .unwrap();
    let run = |s: &mut Stylizer, buf: &mut [u8]| {
        let mut f = FrameMut::new(buf, w, h, w * bpp, format).unwrap();
        s.process(&mut f, 0.8).unwrap();
    };
    for _ in 0..2 {
        run(&mut s, &mut buf);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..10 {
        run(&mut s, &mut buf);
    }
    ALLOCS.load(Ordering::Relaxed) - before
}

/// Flow blending of a panning picture: luma, both flows, confidence, warp and blend.
fn count_temporal(format: PixelFormat, preset: FlowPreset) -> usize {
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    let bpp = format.bytes_per_pixel();
    let frames: Vec<OwnedFrame> = (0..3)
        .map(|shift| {
            let mut buf = vec![0u8; w * h * bpp];
            for y in 0..h {
                for x in 0..w {
                    let sx = (x + shift) % w;
                    let d = (y * w + x) * bpp;
                    buf[d..d + 3].copy_from_slice(&rgb[(y * w + sx) * 3..(y * w + sx) * 3 + 3]);
                }
            }
            OwnedFrame::from_vec(buf, w, h, format).unwrap()
        })
        .collect();
    let mut t = TemporalFilter::new(TemporalOptions {
        preset,
        ..TemporalOptions::default()
    });
    let mut out = frames[0].clone();
    let mut run = |i: usize, t: &mut TemporalFilter| {
        let f = &frames[i % 3];
        t.observe(&f.as_frame(), TemporalMode::Flow);
        out.as_frame_mut().copy_from(&f.as_frame()).unwrap();
        t.blend(&mut out.as_frame_mut(), TemporalMode::Flow, 0.8)
            .unwrap();
    };
    for i in 0..2 {
        run(i, &mut t);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 2..12 {
        run(i, &mut t);
    }
    ALLOCS.load(Ordering::Relaxed) - before
}

// One test: the allocation counter is global, so nothing else may run beside it.
#[test]
fn steady_state_frames_do_not_allocate() {
    assert_eq!(count_temporal(PixelFormat::Rgbx, FlowPreset::Medium), 0);
    assert_eq!(count_temporal(PixelFormat::Rgb, FlowPreset::UltraFast), 0);
    // Same size as the model: frame -> tensor -> frame.
    assert_eq!(
        count_steady_state(
            "models/gan_pm1_mult8.onnx",
            PixelFormat::Rgb,
            1.0,
            Upsampler::Guided
        ),
        0
    );
    // fp16 model, NHWC, with alpha.
    assert_eq!(
        count_steady_state(
            "models/nhwc_unit_fp16.onnx",
            PixelFormat::Rgba,
            1.0,
            Upsampler::Guided
        ),
        0
    );
    // Fixed-size model: resize in and out, strength mix.
    assert_eq!(
        count_steady_state(
            "models/fns_bgr_224_opset7.onnx",
            PixelFormat::Bgrx,
            1.0,
            Upsampler::Guided
        ),
        0
    );
    // Inference scale, with each upsampler.
    for upsampler in [Upsampler::Guided, Upsampler::Bilinear] {
        assert_eq!(
            count_steady_state(
                "models/gan_pm1_mult8.onnx",
                PixelFormat::Bgra,
                0.5,
                upsampler
            ),
            0
        );
    }
}
