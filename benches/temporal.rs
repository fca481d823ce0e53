//! Flow blending per frame: input luma, forward and backward flow at low resolution, the
//! confidence map, and the full-resolution warp and blend, at 640x360, 1280x720 and
//! 1920x1080, one core.
//!
//!     cargo bench --bench temporal

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stylize::frame::{OwnedFrame, PixelFormat};
use stylize::temporal::{FlowPreset, TemporalFilter, TemporalMode, TemporalOptions};

const SIZES: [(usize, usize); 3] = [(640, 360), (1280, 720), (1920, 1080)];

/// A smooth texture shifted by `dx` pixels, so that the flow has something to follow.
fn frame(w: usize, h: usize, dx: f32) -> OwnedFrame {
    let mut data = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let xf = x as f32 + dx;
            let yf = y as f32;
            let v = 128.0
                + 50.0 * (xf * 0.07).sin() * (yf * 0.05).cos()
                + 40.0 * ((xf + yf) * 0.031).sin()
                + 30.0 * (xf * 0.013 - yf * 0.021).cos();
            let i = (y * w + x) * 4;
            data[i] = v as u8;
            data[i + 1] = (255.0 - v) as u8;
            data[i + 2] = (v * 0.5 + 60.0) as u8;
        }
    }
    OwnedFrame::from_vec(data, w, h, PixelFormat::Rgbx).unwrap()
}

fn bench_flow_blend(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_blend");
    g.sample_size(30);
    for (w, h) in SIZES {
        g.throughput(Throughput::Elements((w * h) as u64));
        let frames = [frame(w, h, 0.0), frame(w, h, 2.5)];
        for preset in [FlowPreset::UltraFast, FlowPreset::Fast, FlowPreset::Medium] {
            let mut filter = TemporalFilter::new(TemporalOptions {
                preset,
                ..TemporalOptions::default()
            });
            let mut out = frames[0].clone();
            let mut i = 0usize;
            g.bench_with_input(
                BenchmarkId::new(format!("{preset:?}"), format!("{w}x{h}")),
                &(),
                |b, _| {
                    b.iter(|| {
                        // Alternate two frames so that every call sees motion.
                        let f = &frames[i % 2];
                        i += 1;
                        filter.observe(&f.as_frame(), TemporalMode::Flow);
                        out.as_frame_mut().copy_from(&f.as_frame()).unwrap();
                        filter
                            .blend(&mut out.as_frame_mut(), TemporalMode::Flow, 0.7)
                            .unwrap()
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_flow_blend);
criterion_main!(benches);
