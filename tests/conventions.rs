//! Every model convention in tests/data/models runs through the real ONNX Runtime (CPU) and
//! gives the same picture as Python onnxruntime with the same pre/post-processing
//! (references made by scripts/make_test_models.py).

mod common;

use std::path::Path;

use common::*;
use stylize::engine::{ActiveProvider, ElemType, EngineOptions, Provider};
use stylize::frame::{ChannelOrder, FrameMut, Layout, PixelFormat, ValueRange};
use stylize::model::{SpecOverrides, parse_extra_input};
use stylize::{Stylizer, StylizerOptions, Upsampler};

fn flags_for(entry: &serde_json::Value) -> SpecOverrides {
    let mut f = SpecOverrides::default();
    for e in extra_inputs(entry) {
        let (k, v) = parse_extra_input(&e).unwrap();
        f.extra_inputs.insert(k, v);
    }
    f
}

fn stylise_file(model: &Path, flags: &SpecOverrides, input: &Path, strength: f32) -> Vec<u8> {
    let (w, h, mut rgb) = load_rgb(input);
    let mut s = Stylizer::load(model, flags, &cpu(), StylizerOptions::default()).unwrap();
    let mut f = FrameMut::new(&mut rgb, w, h, w * 3, PixelFormat::Rgb).unwrap();
    s.process(&mut f, strength).unwrap();
    rgb
}

#[test]
fn every_convention_matches_python_onnxruntime() {
    let m = manifest();
    let input = data().join("input.png");
    let models = m["models"].as_array().unwrap();
    assert_eq!(models.len(), 5);
    for entry in models {
        let name = entry["name"].as_str().unwrap();
        let model = data().join(entry["file"].as_str().unwrap());
        let got = stylise_file(&model, &flags_for(entry), &input, 1.0);
        let (_, _, want) = load_rgb(&data().join(entry["reference"].as_str().unwrap()));
        let mad = mean_abs_diff(&got, &want);
        eprintln!("{name}: mean abs diff {mad:.4} levels");
        assert!(mad < 1.0, "{name}: mean abs diff {mad} >= 1/255");
    }
}

#[test]
fn specs_resolve_as_the_manifest_says() {
    for entry in manifest()["models"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let c = &entry["convention"];
        let model = data().join(entry["file"].as_str().unwrap());
        let s = Stylizer::load(
            &model,
            &flags_for(entry),
            &cpu(),
            StylizerOptions::default(),
        )
        .unwrap();
        let spec = s.spec();
        assert_eq!(
            spec.layout,
            c["layout"].as_str().unwrap().parse::<Layout>().unwrap(),
            "{name}"
        );
        assert_eq!(
            spec.channel_order,
            c["channel_order"]
                .as_str()
                .unwrap()
                .parse::<ChannelOrder>()
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            spec.input_range,
            c["input_range"]
                .as_str()
                .unwrap()
                .parse::<ValueRange>()
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            spec.output_range,
            c["output_range"]
                .as_str()
                .unwrap()
                .parse::<ValueRange>()
                .unwrap(),
            "{name}"
        );
        assert_eq!(spec.input, c["input"].as_str().unwrap(), "{name}");
        assert_eq!(spec.output, c["output"].as_str().unwrap(), "{name}");
        let want_elem = if c["input_dtype"] == "float16" {
            ElemType::F16
        } else {
            ElemType::F32
        };
        assert_eq!(spec.input_elem, want_elem, "{name}");
        match c["fixed_size"].as_object() {
            Some(fs) => assert_eq!(
                (spec.fixed_width, spec.fixed_height),
                (
                    Some(fs["width"].as_u64().unwrap() as usize),
                    Some(fs["height"].as_u64().unwrap() as usize)
                ),
                "{name}"
            ),
            None => {
                assert_eq!(
                    (spec.fixed_width, spec.fixed_height),
                    (None, None),
                    "{name}"
                );
                assert_eq!(
                    spec.multiple_of as u64,
                    c["multiple_of"].as_u64().unwrap(),
                    "{name}"
                );
            }
        }
        assert_eq!(s.engine().provider(), ActiveProvider::Cpu);
    }
}

#[test]
fn bad_models_are_rejected_with_the_reason() {
    let cases = [
        ("bad_classifier", "expected a rank-4 image tensor"),
        ("bad_gray", "1 channel(s), expected 3"),
        ("bad_rgba", "4 channel(s), expected 3"),
        ("bad_int8", "is int8"),
        ("not_onnx", "not a valid ONNX model"),
        ("truncated", "not a valid ONNX model"),
    ];
    for (name, want) in cases {
        let path = data().join(format!("models/{name}.onnx"));
        let e = Stylizer::load(
            &path,
            &SpecOverrides::default(),
            &cpu(),
            StylizerOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(want) && e.contains(&format!("{name}.onnx")),
            "{name}: {e}"
        );
    }
    let e = Stylizer::load(
        &data().join("models"),
        &SpecOverrides::default(),
        &cpu(),
        StylizerOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is a directory"), "{e}");
    let e = Stylizer::load(
        &data().join("models/missing.onnx"),
        &SpecOverrides::default(),
        &cpu(),
        StylizerOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing.onnx: no such file"), "{e}");
}

#[test]
fn a_model_with_another_output_size_is_scaled_back() {
    // bad_output_size gives half the input size; the frame path scales it back to the frame.
    let (w, h, mut rgb) = load_rgb(&data().join("input.png"));
    let orig = rgb.clone();
    let mut s = Stylizer::load(
        &data().join("models/bad_output_size.onnx"),
        &SpecOverrides::default(),
        &cpu(),
        StylizerOptions::default(),
    )
    .unwrap();
    let mut f = FrameMut::new(&mut rgb, w, h, w * 3, PixelFormat::Rgb).unwrap();
    s.process(&mut f, 1.0).unwrap();
    assert!(mean_abs_diff(&rgb, &orig) > 1.0, "the model did something");
}

#[test]
fn strength_zero_is_bit_exact_and_half_is_between() {
    let entry = &manifest()["models"][0];
    let model = data().join(entry["file"].as_str().unwrap());
    let input = data().join("input.png");
    let (_, _, orig) = load_rgb(&input);
    assert_eq!(stylise_file(&model, &flags_for(entry), &input, 0.0), orig);
    let full = stylise_file(&model, &flags_for(entry), &input, 1.0);
    let half = stylise_file(&model, &flags_for(entry), &input, 0.5);
    for i in 0..orig.len() {
        let (lo, hi) = (orig[i].min(full[i]), orig[i].max(full[i]));
        assert!(half[i] >= lo.saturating_sub(1) && half[i] <= hi.saturating_add(1));
    }
}

#[test]
fn rgba_frames_keep_alpha_and_match_rgb() {
    let entry = &manifest()["models"][3]; // gan_pm1_mult8, padded
    let model = data().join(entry["file"].as_str().unwrap());
    let img = image::open(data().join("input_rgba.png"))
        .unwrap()
        .into_rgba8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut rgba = img.into_raw();
    let alpha: Vec<u8> = rgba.chunks(4).map(|p| p[3]).collect();
    let mut s = Stylizer::load(
        &model,
        &SpecOverrides::default(),
        &cpu(),
        StylizerOptions::default(),
    )
    .unwrap();
    let mut f = FrameMut::new(&mut rgba, w, h, w * 4, PixelFormat::Rgba).unwrap();
    s.process(&mut f, 1.0).unwrap();
    assert_eq!(rgba.chunks(4).map(|p| p[3]).collect::<Vec<_>>(), alpha);
    let got: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let (_, _, want) = load_rgb(&data().join(entry["reference"].as_str().unwrap()));
    assert!(mean_abs_diff(&got, &want) < 1.0);
}

#[test]
fn padded_strides_and_bgrx_give_the_same_picture() {
    let entry = &manifest()["models"][2]; // multistyle, free size
    let model = data().join(entry["file"].as_str().unwrap());
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    let stride = w * 4 + 12;
    let mut bgrx = vec![0x55u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            let s = &rgb[(y * w + x) * 3..];
            let d = &mut bgrx[y * stride + x * 4..];
            d[..3].copy_from_slice(&[s[2], s[1], s[0]]);
        }
    }
    let mut s = Stylizer::load(
        &model,
        &flags_for(entry),
        &cpu(),
        StylizerOptions::default(),
    )
    .unwrap();
    let mut f = FrameMut::new(&mut bgrx, w, h, stride, PixelFormat::Bgrx).unwrap();
    s.process(&mut f, 1.0).unwrap();
    let got: Vec<u8> = (0..h)
        .flat_map(|y| {
            let row = &bgrx[y * stride..y * stride + w * 4];
            row.chunks(4)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect::<Vec<_>>()
        })
        .collect();
    let (_, _, want) = load_rgb(&data().join(entry["reference"].as_str().unwrap()));
    assert_eq!(got, want);
    // Row padding is untouched.
    for y in 0..h {
        assert!(
            bgrx[y * stride + w * 4..(y + 1) * stride]
                .iter()
                .all(|&b| b == 0x55)
        );
    }
}

#[test]
fn inference_scale_runs_smaller_and_scales_back() {
    let entry = &manifest()["models"][2];
    let model = data().join(entry["file"].as_str().unwrap());
    let (w, h, mut rgb) = load_rgb(&data().join("input.png"));
    let mut s = Stylizer::load(
        &model,
        &flags_for(entry),
        &cpu(),
        StylizerOptions {
            inference_scale: 0.5,
            upsampler: Upsampler::Bilinear,
        },
    )
    .unwrap();
    assert_eq!(s.input_shape_for(w, h), [1, 3, 24, 31]);
    let mut f = FrameMut::new(&mut rgb, w, h, w * 3, PixelFormat::Rgb).unwrap();
    s.process(&mut f, 1.0).unwrap();
    let (_, _, full) = load_rgb(&data().join(entry["reference"].as_str().unwrap()));
    let mad = mean_abs_diff(&rgb, &full);
    // Close to the full-size result, but not the same picture.
    assert!(mad > 0.0 && mad < 20.0, "{mad}");
}

#[test]
fn a_named_gpu_provider_is_strict() {
    // These machines have no GPU and the CPU build of ONNX Runtime: cuda and tensorrt must
    // fail with the reason, never run on the CPU silently.
    let model = data().join("models/gan_pm1_mult8.onnx");
    for p in [Provider::Cuda, Provider::TensorRt] {
        let opts = EngineOptions {
            provider: p,
            ..Default::default()
        };
        match Stylizer::load(
            &model,
            &SpecOverrides::default(),
            &opts,
            StylizerOptions::default(),
        ) {
            Ok(s) => assert_ne!(s.engine().provider(), ActiveProvider::Cpu, "{p} ran on CPU"),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("provider {p} is not usable here:")),
                    "{e}"
                );
            }
        }
    }
    // Auto says what it passed over.
    let s = Stylizer::load(
        &model,
        &SpecOverrides::default(),
        &EngineOptions::default(),
        StylizerOptions::default(),
    )
    .unwrap();
    if s.engine().provider() == ActiveProvider::Cpu {
        let skipped: Vec<_> = s.engine().fallbacks().iter().map(|(p, _)| *p).collect();
        assert_eq!(
            skipped,
            vec![ActiveProvider::TensorRt, ActiveProvider::Cuda]
        );
    }
}

#[test]
fn ort_library_is_the_real_one() {
    let rt = stylize::runtime::runtime().expect("ONNX Runtime must load: run scripts/setup.sh");
    assert!(rt.version.starts_with("1."), "{}", rt.version);
    assert!(rt.providers.iter().any(|p| p == "CPUExecutionProvider"));
    eprintln!("ONNX Runtime {} from {}", rt.version, rt.path.display());
}

#[test]
fn tensorrt_profile_covers_the_declared_frame_sizes() {
    // Free-size model padded to multiples of 8: the profile is in tensor shapes, after the
    // inference scale and the padding, optimised for the first size declared.
    let model = data().join("models/gan_pm1_mult8.onnx");
    let opts = EngineOptions {
        provider: Provider::Auto,
        resolutions: vec![(1280, 720), (640, 360), (1920, 1080)],
        ..Default::default()
    };
    let options = StylizerOptions {
        inference_scale: 0.5,
        ..Default::default()
    };
    let p = stylize::stylizer::tensorrt_profile(&model, &SpecOverrides::default(), &opts, options)
        .unwrap()
        .expect("a profile for TensorRT");
    assert_eq!(p.opt, [1, 3, 360, 640]);
    assert_eq!(p.min, [1, 3, 184, 320]);
    assert_eq!(p.max, [1, 3, 544, 960]);
    // Nothing to build for on the CPU, or without declared sizes.
    for o in [
        EngineOptions {
            provider: Provider::Cpu,
            ..opts.clone()
        },
        EngineOptions {
            resolutions: Vec::new(),
            ..opts.clone()
        },
    ] {
        assert!(
            stylize::stylizer::tensorrt_profile(&model, &SpecOverrides::default(), &o, options)
                .unwrap()
                .is_none()
        );
    }
    // Loading with declared sizes still loads (on the CPU here) and runs.
    let mut s = Stylizer::load(&model, &SpecOverrides::default(), &opts, options).unwrap();
    let mut f = stylize::frame::OwnedFrame::new(64, 48, PixelFormat::Rgb).unwrap();
    s.process(&mut f.as_frame_mut(), 1.0).unwrap();
}

#[test]
fn the_guided_upsampler_only_acts_below_inference_scale_one() {
    let model = data().join("models/gan_pm1_mult8.onnx");
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    let run = |scale: f32, upsampler: Upsampler| {
        let mut s = Stylizer::load(
            &model,
            &SpecOverrides::default(),
            &cpu(),
            StylizerOptions {
                inference_scale: scale,
                upsampler,
            },
        )
        .unwrap();
        let mut out = rgb.clone();
        s.process(
            &mut FrameMut::new(&mut out, w, h, w * 3, PixelFormat::Rgb).unwrap(),
            1.0,
        )
        .unwrap();
        out
    };
    assert_eq!(
        run(1.0, Upsampler::Guided),
        run(1.0, Upsampler::Bilinear),
        "at scale 1 there is nothing to upsample"
    );
    let (g, b, full) = (
        run(0.5, Upsampler::Guided),
        run(0.5, Upsampler::Bilinear),
        run(1.0, Upsampler::Guided),
    );
    assert_ne!(g, b);
    // The test model is a random generator: no more than the same order of difference from
    // the full-scale picture, and the guided one is not further from it.
    let (dg, db) = (mean_abs_diff(&g, &full), mean_abs_diff(&b, &full));
    assert!(dg < 64.0 && db < 64.0, "{dg} {db}");
    assert!(dg <= db * 1.05, "guided {dg} vs bilinear {db}");
}
