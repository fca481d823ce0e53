//! Flow blending per frame: input luma, forward and backward flow at low resolution, the
//! confidence map, and the full-resolution warp and blend, at 640x360, 1280x720 and
//! 1920x1080, one core.
//!
//!     cargo bench --bench temporal

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stylize::frame::{OwnedFrame, PixelFormat};
use stylize::temporal::blend::{
    ConfidenceParams, WarpScratch, confidence, luma_downscale, warp_blend,
};
use stylize::temporal::{
    DisFlow, FlowField, FlowPreset, GrayImage, TemporalFilter, TemporalMode, TemporalOptions,
    auto_flow_divisor, flow_params,
};

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

/// The stages of one frame at 1280x720 (flow on 320x180 luma), one by one.
fn bench_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_stages_1280x720");
    g.sample_size(30);
    let (w, h) = (1280, 720);
    let n = auto_flow_divisor(w);
    let (a, b) = (frame(w, h, 0.0), frame(w, h, 2.5));
    let (mut la, mut lb) = (GrayImage::default(), GrayImage::default());
    // Inputs of the later stages are made up front, so that any one stage can be run alone
    // (`cargo bench --bench temporal -- flow_stages_1280x720/confidence`).
    luma_downscale(&a.as_frame(), n, &mut la);
    luma_downscale(&b.as_frame(), n, &mut lb);
    let mut luma = GrayImage::default();
    g.bench_function("luma", |bn| {
        bn.iter(|| luma_downscale(&a.as_frame(), n, &mut luma))
    });
    let mut flow = FlowField::default();
    for preset in [FlowPreset::UltraFast, FlowPreset::Fast, FlowPreset::Medium] {
        let mut dis = DisFlow::new(flow_params(preset, la.width()));
        g.bench_function(format!("flow_{preset:?}"), |bn| {
            bn.iter(|| dis.calc(&la, &lb, &mut flow).unwrap())
        });
    }
    // The flows of the confidence and warp stages (medium forward, fast backward).
    let (mut fwd, mut bwd) = (FlowField::default(), FlowField::default());
    DisFlow::new(flow_params(FlowPreset::Medium, la.width()))
        .calc(&la, &lb, &mut fwd)
        .unwrap();
    let mut dis = DisFlow::new(flow_params(FlowPreset::Fast, la.width()));
    dis.calc(&lb, &la, &mut bwd).unwrap();
    let mut conf = Vec::new();
    let p = ConfidenceParams::default();
    confidence(&lb, &la, &bwd, &fwd, &p, &mut conf);
    let mut conf_bench = Vec::new();
    g.bench_function("confidence", |bn| {
        bn.iter(|| confidence(&lb, &la, &bwd, &fwd, &p, &mut conf_bench))
    });
    for format in [PixelFormat::Rgbx, PixelFormat::Rgb] {
        let hist = frame(w, h, 0.0);
        let hist = if format == PixelFormat::Rgbx {
            hist
        } else {
            let rgb: Vec<u8> = hist
                .data()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            OwnedFrame::from_vec(rgb, w, h, PixelFormat::Rgb).unwrap()
        };
        let mut out = hist.clone();
        let mut scratch = WarpScratch::default();
        g.bench_function(format!("warp_blend_{format}"), |bn| {
            bn.iter(|| {
                warp_blend(
                    &mut out.as_frame_mut(),
                    &hist.as_frame(),
                    &bwd,
                    &conf,
                    n,
                    0.8,
                    &mut scratch,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_flow_blend, bench_stages);
criterion_main!(benches);
