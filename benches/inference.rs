//! The model stage on its own: the shipped default style (the fast generator) on CPU, the
//! whole frame path of `Stylizer::process` (pack, inference, unpack, upsample, mix) at 640x360
//! for inference scales 1, 0.5 and 0.25, with one intra-op thread and with ONNX Runtime's
//! default (one per core).
//!
//!     cargo bench --bench inference
//!
//! Needs the ONNX Runtime library that `scripts/setup.sh` installs.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stylize::engine::{EngineOptions, Provider};
use stylize::frame::{OwnedFrame, PixelFormat};
use stylize::{SpecOverrides, Stylizer, StylizerOptions, Upsampler, catalog};

fn frame(w: usize, h: usize) -> OwnedFrame {
    let data = (0..w * h * 4).map(|i| (i * 31 % 251) as u8).collect();
    OwnedFrame::from_vec(data, w, h, PixelFormat::Rgbx).unwrap()
}

fn bench_process(c: &mut Criterion) {
    let model = catalog::default_model().expect("the shipped default model");
    let mut g = c.benchmark_group("process_640x360");
    let input = frame(640, 360);
    for threads in [1usize, 0] {
        for scale in [1.0f32, 0.5, 0.25] {
            for upsampler in [Upsampler::Guided, Upsampler::Bilinear] {
                if scale == 1.0 && upsampler == Upsampler::Bilinear {
                    continue;
                }
                let mut s = Stylizer::load(
                    &model,
                    &SpecOverrides::default(),
                    &EngineOptions {
                        provider: Provider::Cpu,
                        threads,
                        ..EngineOptions::default()
                    },
                    StylizerOptions {
                        inference_scale: scale,
                        upsampler,
                    },
                )
                .expect("the model loads");
                let mut f = input.clone();
                let name = format!(
                    "threads{}-scale{scale}-{}",
                    if threads == 0 {
                        "auto".into()
                    } else {
                        threads.to_string()
                    },
                    upsampler.name()
                );
                g.bench_with_input(BenchmarkId::new(name, "starry_night"), &(), |b, _| {
                    b.iter(|| {
                        f.as_frame_mut().copy_from(&input.as_frame()).unwrap();
                        s.process(&mut f.as_frame_mut(), 1.0).unwrap()
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_process
}
criterion_main!(benches);
