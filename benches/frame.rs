//! The frame path's stages one by one at 640x360, 1280x720 and 1920x1080:
//! frame -> tensor (pack), tensor -> frame (unpack, with and without strength mix) and the
//! resampler used for fixed-size models and inference scale, and the guided upsampler of
//! inference scale 0.25 against the bilinear path it replaces (resize up, then mix), and the
//! strength mix alone.
//!
//!     cargo bench --bench frame

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stylize::frame::{
    ChannelOrder, FrameMut, GuidedUpsampler, I420Mut, Layout, OwnedFrame, PixelFormat, Resizer,
    TensorFormat, ValueRange, YuvMatrix, chroma_size, mix, pack, rgb_to_i420, unpack,
};

const SIZES: [(usize, usize); 3] = [(640, 360), (1280, 720), (1920, 1080)];

fn frame(w: usize, h: usize, format: PixelFormat) -> OwnedFrame {
    let bpp = format.bytes_per_pixel();
    let data = (0..w * h * bpp).map(|i| (i * 31 % 251) as u8).collect();
    OwnedFrame::from_vec(data, w, h, format).unwrap()
}

fn nchw() -> TensorFormat {
    TensorFormat {
        layout: Layout::Nchw,
        order: ChannelOrder::Rgb,
        range: ValueRange::Byte,
    }
}

fn bench_pack(c: &mut Criterion) {
    let mut g = c.benchmark_group("pack");
    for (w, h) in SIZES {
        g.throughput(Throughput::Elements((w * h) as u64));
        for format in [PixelFormat::Rgbx, PixelFormat::Rgb] {
            let f = frame(w, h, format);
            let mut t = vec![0.0f32; w * h * 3];
            g.bench_with_input(
                BenchmarkId::new(format!("{format}-nchw"), format!("{w}x{h}")),
                &(),
                |b, _| b.iter(|| pack(&f.as_frame(), &mut t, w, h, nchw()).unwrap()),
            );
        }
    }
    g.finish();
}

fn bench_unpack(c: &mut Criterion) {
    let mut g = c.benchmark_group("unpack");
    for (w, h) in SIZES {
        g.throughput(Throughput::Elements((w * h) as u64));
        let t: Vec<f32> = (0..w * h * 3).map(|i| (i % 300) as f32 - 20.0).collect();
        let mut f = frame(w, h, PixelFormat::Rgbx);
        for strength in [1.0f32, 0.7] {
            g.bench_with_input(
                BenchmarkId::new(format!("RGBx-nchw-s{strength}"), format!("{w}x{h}")),
                &(),
                |b, _| {
                    b.iter(|| {
                        let mut fm: FrameMut<'_> = f.as_frame_mut();
                        unpack(&t, w, h, nchw(), &mut fm, strength).unwrap()
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_resize(c: &mut Criterion) {
    let mut g = c.benchmark_group("resize");
    for (w, h) in SIZES {
        g.throughput(Throughput::Elements((w * h) as u64));
        let full = frame(w, h, PixelFormat::Rgbx);
        let mut half = OwnedFrame::new(w / 2, h / 2, PixelFormat::Rgbx).unwrap();
        let mut back = OwnedFrame::new(w, h, PixelFormat::Rgbx).unwrap();
        let mut r = Resizer::new();
        g.bench_with_input(
            BenchmarkId::new("down-half", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    r.resize(&full.as_frame(), &mut half.as_frame_mut())
                        .unwrap()
                })
            },
        );
        // The luma plane of an I420 frame, quartered.
        let plane = vec![77u8; w * h];
        let mut small = vec![0u8; (w / 4) * (h / 4)];
        let mut r = Resizer::new();
        g.bench_with_input(
            BenchmarkId::new("plane-quarter", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    r.resize_plane(&plane, (w, h, w), &mut small, (w / 4, h / 4, w / 4))
                        .unwrap()
                })
            },
        );
        let mut half_plane = vec![0u8; (w / 2) * (h / 2)];
        let mut r = Resizer::new();
        g.bench_with_input(
            BenchmarkId::new("plane-half", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    r.resize_plane(&plane, (w, h, w), &mut half_plane, (w / 2, h / 2, w / 2))
                        .unwrap()
                })
            },
        );
        // Inference scale 0.25: the frame the model gets.
        let mut quarter = OwnedFrame::new(w / 4, h / 4, PixelFormat::Rgbx).unwrap();
        let mut r = Resizer::new();
        g.bench_with_input(
            BenchmarkId::new("down-quarter", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    r.resize(&full.as_frame(), &mut quarter.as_frame_mut())
                        .unwrap()
                })
            },
        );
        let mut r = Resizer::new();
        g.bench_with_input(
            BenchmarkId::new("up-double", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    r.resize(&half.as_frame(), &mut back.as_frame_mut())
                        .unwrap()
                })
            },
        );
    }
    g.finish();
}

fn bench_upsample(c: &mut Criterion) {
    let mut g = c.benchmark_group("upsample_x4");
    for (w, h) in SIZES {
        g.throughput(Throughput::Elements((w * h) as u64));
        let format = PixelFormat::Rgbx;
        let input = frame(w, h, format);
        let mut guide = OwnedFrame::new(w / 4, h / 4, format).unwrap();
        Resizer::new()
            .resize(&input.as_frame(), &mut guide.as_frame_mut())
            .unwrap();
        let styled = frame(w / 4, h / 4, format);
        let mut out = input.clone();
        let mut up = GuidedUpsampler::new();
        g.bench_with_input(
            BenchmarkId::new("guided", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    up.upsample_mix(
                        &guide.as_frame(),
                        &styled.as_frame(),
                        &mut out.as_frame_mut(),
                        1.0,
                    )
                    .unwrap()
                })
            },
        );
        // The same on an I420 frame, written as Y, U and V.
        let (cw, ch) = chroma_size(w, h);
        let mut planes = vec![128u8; w * h + 2 * cw * ch];
        let m = YuvMatrix::BT709;
        {
            let (y, rest) = planes.split_at_mut(w * h);
            let (u, v) = rest.split_at_mut(cw * ch);
            rgb_to_i420(
                &input.as_frame(),
                &mut I420Mut::new([y, u, v], [w, cw, cw], w, h).unwrap(),
                &m,
            )
            .unwrap();
        }
        let mut up = GuidedUpsampler::new();
        g.bench_with_input(
            BenchmarkId::new("guided-i420", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    let (y, rest) = planes.split_at_mut(w * h);
                    let (u, v) = rest.split_at_mut(cw * ch);
                    let mut f = I420Mut::new([y, u, v], [w, cw, cw], w, h).unwrap();
                    up.upsample_mix_i420(&guide.as_frame(), &styled.as_frame(), &mut f, &m, 1.0)
                        .unwrap()
                })
            },
        );
        let mut full = input.clone();
        let mut r = Resizer::new();
        g.bench_with_input(
            BenchmarkId::new("bilinear", format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    r.resize(&styled.as_frame(), &mut full.as_frame_mut())
                        .unwrap();
                    mix(&mut out.as_frame_mut(), &full.as_frame(), 1.0).unwrap()
                })
            },
        );
    }
    g.finish();
}

fn bench_mix(c: &mut Criterion) {
    let mut g = c.benchmark_group("mix");
    for (w, h) in SIZES {
        g.throughput(Throughput::Elements((w * h) as u64));
        for format in [PixelFormat::Rgbx, PixelFormat::Rgba, PixelFormat::Rgb] {
            let styled = frame(w, h, format);
            let mut out = frame(w, h, format);
            for strength in [1.0f32, 0.5] {
                g.bench_with_input(
                    BenchmarkId::new(format!("{format}@{strength}"), format!("{w}x{h}")),
                    &(),
                    |b, _| {
                        b.iter(|| {
                            mix(&mut out.as_frame_mut(), &styled.as_frame(), strength).unwrap()
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_pack, bench_unpack, bench_resize, bench_upsample, bench_mix
}
criterion_main!(benches);
