//! DIS optical flow (one thread) per preset at 320x180 (the real-time path's downscaled
//! frames), 640x360 and 1280x720, on a synthetic textured pair with sub-pixel motion.
//!
//!     cargo bench --bench flow

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stylize::temporal::flow::{DisFlow, DisParams, FlowField, FlowPreset, GrayImage};

const SIZES: [(usize, usize); 3] = [(320, 180), (640, 360), (1280, 720)];

/// A textured image (sum of sinusoids scaled to the image size) shifted by `(dx, dy)`.
fn frame(w: usize, h: usize, dx: f32, dy: f32) -> GrayImage {
    let s = 640.0 / w as f32;
    let data = (0..w * h)
        .map(|i| {
            let (x, y) = (((i % w) as f32 - dx) * s, ((i / w) as f32 - dy) * s);
            let v = 128.0
                + 40.0 * (0.05 * x + 0.3).sin() * (0.04 * y).cos()
                + 25.0 * (0.13 * x - 0.09 * y + 1.0).sin()
                + 15.0 * (0.31 * x + 0.27 * y).sin();
            v.clamp(0.0, 255.0) as u8
        })
        .collect();
    GrayImage::from_vec(w, h, data).unwrap()
}

fn bench_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("dis");
    for (w, h) in SIZES {
        let scale = w as f32 / 640.0;
        let (a, b) = (
            frame(w, h, 0.0, 0.0),
            frame(w, h, 3.3 * scale, -1.6 * scale),
        );
        g.throughput(Throughput::Elements((w * h) as u64));
        for (name, preset) in [
            ("ultrafast", FlowPreset::UltraFast),
            ("fast", FlowPreset::Fast),
            ("medium", FlowPreset::Medium),
        ] {
            let mut dis = DisFlow::new(DisParams::preset(preset));
            let mut flow = FlowField::default();
            g.bench_with_input(
                BenchmarkId::new(name, format!("{w}x{h}")),
                &(),
                |bench, _| bench.iter(|| dis.calc(&a, &b, &mut flow).unwrap()),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
