//! Inputs the fuzzers found (fuzz/, scripts/fuzz.sh), replayed through the same harnesses
//! (fuzz/src/lib.rs, compiled here as a module), so they run with plain `cargo test`. Every
//! file under tests/data/fuzz/<target>/ is replayed; the named tests below also check the
//! library's answer for each bug directly.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stylize::engine::{ElemType, ModelIo, TensorInfo};
use stylize::frame::{Frame, FrameError, OwnedFrame, PixelFormat, TensorFormat, pack};
use stylize::model::{MAX_FIXED_SIDE, ModelError, ModelSpec, SpecOverrides, meta};
use stylize::temporal::{DisFlow, DisParams, FlowField, FlowPreset, GrayImage};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "bin"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn data(target: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_kept_model_spec_input_passes_the_harness() {
    for (path, bytes) in inputs("model_spec") {
        eprintln!("{}", path.display());
        harness::model_spec(&bytes);
    }
}

#[test]
fn every_kept_frame_convert_input_passes_the_harness() {
    for (path, bytes) in inputs("frame_convert") {
        eprintln!("{}", path.display());
        harness::frame_convert(&bytes);
    }
}

#[test]
fn every_kept_temporal_input_passes_the_harness() {
    for (path, bytes) in inputs("temporal") {
        eprintln!("{}", path.display());
        harness::temporal(&bytes);
    }
}

fn io(inputs: Vec<(&str, Vec<i64>)>) -> ModelIo {
    let t = |(name, shape): (&str, Vec<i64>)| TensorInfo {
        name: name.into(),
        elem: ElemType::F32,
        shape,
    };
    ModelIo {
        inputs: inputs.into_iter().map(t).collect(),
        outputs: vec![t(("output", vec![1, 3, -1, -1]))],
        metadata: BTreeMap::new(),
    }
}

/// model_spec found: a graph input with a fixed width of 2^20 resolved, and the frame path
/// then sized tensors whose byte count overflows. Such a model is now refused.
#[test]
fn fuzz_model_spec_huge_fixed_side_is_refused() {
    harness::model_spec(&data("model_spec", "fixed_side_2pow20.bin"));
    let path = Path::new("m.onnx");
    for shape in [
        vec![1, 3, -1, 1 << 20],
        vec![1, 3, 1 << 40, 1 << 40],
        vec![1, 3, i64::MAX, 224],
    ] {
        let e = ModelSpec::resolve(path, &io(vec![("x", shape)]), &SpecOverrides::default())
            .unwrap_err();
        assert!(matches!(e, ModelError::NotImageGenerator { .. }), "{e}");
        assert!(e.to_string().contains("more than 65536"), "{e}");
    }
    let max = MAX_FIXED_SIDE as i64;
    let s = ModelSpec::resolve(
        path,
        &io(vec![("x", vec![1, 3, max, max])]),
        &SpecOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.model_size(1, 1), (MAX_FIXED_SIDE, MAX_FIXED_SIDE));
}

/// model_spec found: the value count of an extra input with dimensions [i64::MAX, 26]
/// overflowed (a panic in debug builds, a wrapped count in release).
#[test]
fn fuzz_model_spec_extra_input_count_overflow_is_an_error() {
    harness::model_spec(&data("model_spec", "extra_input_count_overflow.bin"));
    let path = Path::new("m.onnx");
    let graph = io(vec![
        ("input", vec![1, 3, -1, -1]),
        ("w", vec![i64::MAX, 26]),
    ]);
    let e = ModelSpec::resolve(path, &graph, &SpecOverrides::default()).unwrap_err();
    assert!(matches!(e, ModelError::MissingExtraInput { .. }), "{e}");
    let mut given = SpecOverrides::default();
    given.extra_inputs.insert("w".into(), vec![1.0; 26]);
    let e = ModelSpec::resolve(path, &graph, &given).unwrap_err();
    assert!(matches!(e, ModelError::BadExtraInput { .. }), "{e}");
    // Free dimensions next to huge fixed ones: the same, through the other count.
    let graph = io(vec![
        ("input", vec![1, 3, -1, -1]),
        ("w", vec![-1, 1 << 40, 1 << 40]),
    ]);
    let e = ModelSpec::resolve(path, &graph, &given).unwrap_err();
    assert!(matches!(e, ModelError::BadExtraInput { .. }), "{e}");
}

/// Found with the harness's checks (not a crash): the sidecar and the metadata took any
/// `multiple_of` (the flag and the element property stop at 1024; 2^40 made tensors whose
/// size overflows), and the sidecar took JSON numbers beyond f32 as infinite extra-input
/// values (the flag refuses them).
#[test]
fn sidecar_and_metadata_take_what_the_flags_take() {
    let p = Path::new("m.onnx.json");
    for text in [
        r#"{"multiple_of": 1025}"#,
        r#"{"multiple_of": 1099511627776}"#,
        r#"{"multiple_of": 0}"#,
    ] {
        let e = SpecOverrides::from_sidecar_json(text, p).unwrap_err();
        assert!(e.to_string().contains("from 1 to 1024"), "{text}: {e}");
    }
    let ok = SpecOverrides::from_sidecar_json(r#"{"multiple_of": 1024}"#, p).unwrap();
    assert_eq!(ok.multiple_of, Some(1024));
    let e =
        SpecOverrides::from_sidecar_json(r#"{"extra_inputs": {"w": [1, 1e39]}}"#, p).unwrap_err();
    assert!(e.to_string().contains("not a finite"), "{e}");
    for v in ["1025", "1099511627776", "0"] {
        let md = BTreeMap::from([(meta::MULTIPLE_OF.to_string(), v.to_string())]);
        let e = SpecOverrides::from_metadata(&md, Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("from 1 to 1024"), "{v}: {e}");
    }
}

/// frame_convert found: `OwnedFrame::new(usize::MAX, 0, BGRx)` overflowed computing the
/// stride before it could say the frame is empty; sizes whose byte count overflows now give
/// an error from `new` and `reshape`.
#[test]
fn fuzz_frame_convert_owned_frame_size_overflow_is_an_error() {
    harness::frame_convert(&data("frame_convert", "owned_frame_size_overflow.bin"));
    assert!(matches!(
        OwnedFrame::new(usize::MAX, 0, PixelFormat::Bgrx),
        Err(FrameError::Empty { .. })
    ));
    for (w, h) in [(usize::MAX, 1), (1 << 32, 1 << 32), (usize::MAX / 2, 2)] {
        assert!(
            matches!(
                OwnedFrame::new(w, h, PixelFormat::Rgba),
                Err(FrameError::TooLarge { .. })
            ),
            "{w}x{h}"
        );
        let mut f = OwnedFrame::new(2, 2, PixelFormat::Rgb).unwrap();
        assert!(f.reshape(w, h, PixelFormat::Rgb).is_err());
        assert_eq!((f.width(), f.height(), f.data().len()), (2, 2, 12));
    }
    assert!(OwnedFrame::from_vec(vec![0; 12], usize::MAX, 1, PixelFormat::Rgb).is_err());
}

/// frame_convert found: `pack` into a tensor said to be 2^32×2^32 overflowed computing the
/// values it needs.
#[test]
fn fuzz_frame_convert_tensor_size_overflow_is_an_error() {
    harness::frame_convert(&data("frame_convert", "tensor_size_overflow.bin"));
    let px = [0u8; 12];
    let f = Frame::new(&px, 2, 2, 6, PixelFormat::Rgb).unwrap();
    let mut t = vec![0.0; 12];
    for (w, h) in [(1 << 32, 1 << 32), (usize::MAX, 2), (usize::MAX / 3 + 1, 1)] {
        let e = pack(&f, &mut t, w, h, TensorFormat::default()).unwrap_err();
        assert!(matches!(e, FrameError::TensorSize { .. }), "{w}x{h}: {e}");
    }
}

/// Found while writing the frame harness (the same overflow as above, in `Frame::new`):
/// widths and strides whose byte counts overflow are errors, not panics or wrapped sizes.
#[test]
fn frame_geometry_overflow_is_an_error() {
    let px = [0u8; 64];
    assert!(matches!(
        Frame::new(&px, usize::MAX, 1, 1 << 20, PixelFormat::Rgba),
        Err(FrameError::StrideTooSmall { .. })
    ));
    assert!(matches!(
        Frame::new(&px, usize::MAX, 1, usize::MAX, PixelFormat::Rgba),
        Err(FrameError::BufferTooSmall { .. })
    ));
    assert!(matches!(
        Frame::new(&px, 1, usize::MAX, usize::MAX / 2, PixelFormat::Rgb),
        Err(FrameError::BufferTooSmall { .. })
    ));
    assert!(matches!(
        Frame::new(&px, 1, 3, usize::MAX, PixelFormat::Rgb),
        Err(FrameError::BufferTooSmall { .. })
    ));
}

/// temporal found: DIS flow with a patch stride (3) above the patch size (1, taken as 2)
/// left pixels that no patch covers, whose flow was 0/0 = NaN (and the variational
/// refinement spread it). The stride is now capped at the patch size.
#[test]
fn fuzz_temporal_flow_stride_above_patch_size_is_finite() {
    harness::temporal(&data("temporal", "flow_stride_above_patch.bin"));
    let image = |dx: usize| {
        let px = (0..35 * 23)
            .map(|i| ((((i % 35 + dx) / 3) * 7919 + (i / 35 / 3) * 104_729) % 251) as u8)
            .collect();
        GrayImage::from_vec(35, 23, px).unwrap()
    };
    for (patch_size, patch_stride) in [(1, 3), (4, 9), (8, 20)] {
        let params = DisParams {
            finest_scale: 0,
            patch_size,
            patch_stride,
            grad_descent_iters: 0,
            var_refine_iters: 2,
            ..DisParams::preset(FlowPreset::Fast)
        };
        let mut flow = FlowField::default();
        DisFlow::new(params)
            .calc(&image(0), &image(2), &mut flow)
            .unwrap();
        assert!(
            flow.data().iter().all(|v| v.is_finite()),
            "patch {patch_size}, stride {patch_stride}"
        );
    }
}
