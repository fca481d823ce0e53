//! Tests of the flow estimator on synthetic images with known motion, and of the helpers.

use super::*;

/// A smooth random-looking texture: a sum of sinusoids with wavelengths of 7 to 40 pixels
/// (deterministic), in grey levels around 128.
fn texture(x: f32, y: f32) -> f32 {
    const WAVES: [(f32, f32, f32, f32); 8] = [
        (0.16, 0.05, 0.3, 22.0),
        (-0.07, 0.21, 1.1, 20.0),
        (0.31, -0.17, 2.0, 14.0),
        (0.04, -0.11, 0.7, 24.0),
        (0.52, 0.33, 2.9, 10.0),
        (-0.41, 0.47, 4.1, 9.0),
        (0.23, 0.61, 5.3, 8.0),
        (0.66, -0.29, 0.2, 7.0),
    ];
    let mut v = 128.0;
    for (kx, ky, phase, amp) in WAVES {
        v += amp * (kx * x + ky * y + phase).sin();
    }
    v
}

/// An image whose pixel `(x, y)` is `f(x, y)`, rounded and clamped.
fn image(w: usize, h: usize, f: impl Fn(f32, f32) -> f32) -> GrayImage {
    let data = (0..w * h)
        .map(|i| f((i % w) as f32, (i / w) as f32).round().clamp(0.0, 255.0) as u8)
        .collect();
    GrayImage::from_vec(w, h, data).unwrap()
}

/// A pair of images related by the point map `to_of_from` (pixel `x` of the first image is
/// at `to_of_from(x)` in the second) given through its inverse `from_of_to`, and the true
/// flow.
fn warped_pair(
    w: usize,
    h: usize,
    from_of_to: impl Fn(f32, f32) -> (f32, f32),
    to_of_from: impl Fn(f32, f32) -> (f32, f32),
) -> (GrayImage, GrayImage, FlowField) {
    let a = image(w, h, texture);
    let b = image(w, h, |x, y| {
        let (sx, sy) = from_of_to(x, y);
        texture(sx, sy)
    });
    let mut gt = FlowField::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (tx, ty) = to_of_from(x as f32, y as f32);
            let i = (y * w + x) * 2;
            gt.data[i] = tx - x as f32;
            gt.data[i + 1] = ty - y as f32;
        }
    }
    (a, b, gt)
}

/// Mean end-point error over the pixels at least `margin` from the edges.
fn interior_epe(flow: &FlowField, gt: &FlowField, margin: usize) -> f64 {
    let (w, h) = (flow.width(), flow.height());
    let (mut sum, mut n) = (0.0f64, 0);
    for y in margin..h - margin {
        for x in margin..w - margin {
            let (u, v) = flow.get(x, y);
            let (gu, gv) = gt.get(x, y);
            sum += (((u - gu) as f64).powi(2) + ((v - gv) as f64).powi(2)).sqrt();
            n += 1;
        }
    }
    sum / n as f64
}

const PRESETS: [FlowPreset; 3] = [FlowPreset::UltraFast, FlowPreset::Fast, FlowPreset::Medium];

fn flow_of(preset: FlowPreset, a: &GrayImage, b: &GrayImage) -> FlowField {
    let mut dis = DisFlow::new(DisParams::preset(preset));
    let mut flow = FlowField::default();
    dis.calc(a, b, &mut flow).unwrap();
    assert_eq!((flow.width(), flow.height()), (a.width(), a.height()));
    assert!(flow.data().iter().all(|v| v.is_finite()));
    flow
}

fn translation(w: usize, h: usize, u: f32, v: f32) -> (GrayImage, GrayImage, FlowField) {
    warped_pair(w, h, |x, y| (x - u, y - v), |x, y| (x + u, y + v))
}

#[test]
fn subpixel_translation() {
    let (a, b, gt) = translation(192, 144, 2.3, -1.7);
    for preset in PRESETS {
        let epe = interior_epe(&flow_of(preset, &a, &b), &gt, 16);
        assert!(epe < 0.15, "{preset:?}: EPE {epe}");
    }
}

#[test]
fn large_translation() {
    let (a, b, gt) = translation(256, 192, 12.0, 5.0);
    for preset in PRESETS {
        let epe = interior_epe(&flow_of(preset, &a, &b), &gt, 24);
        assert!(epe < 0.15, "{preset:?}: EPE {epe}");
    }
}

#[test]
fn backward_flow_is_the_opposite() {
    let (a, b, _) = translation(192, 144, 3.4, 2.1);
    let (_, _, gt_back) = translation(192, 144, -3.4, -2.1);
    for preset in PRESETS {
        let epe = interior_epe(&flow_of(preset, &b, &a), &gt_back, 16);
        assert!(epe < 0.15, "{preset:?}: EPE {epe}");
    }
}

#[test]
fn rotation_about_the_centre() {
    let (w, h) = (192usize, 144usize);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let t = 1.5f32.to_radians();
    let (c, s) = (t.cos(), t.sin());
    let rot = move |x: f32, y: f32, s: f32| {
        let (dx, dy) = (x - cx, y - cy);
        (cx + c * dx - s * dy, cy + s * dx + c * dy)
    };
    let (a, b, gt) = warped_pair(w, h, move |x, y| rot(x, y, -s), move |x, y| rot(x, y, s));
    for preset in PRESETS {
        let epe = interior_epe(&flow_of(preset, &a, &b), &gt, 16);
        assert!(epe < 0.3, "{preset:?}: EPE {epe}");
    }
}

#[test]
fn zoom_about_the_centre() {
    let (w, h) = (192usize, 144usize);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let k = 1.03f32;
    let (a, b, gt) = warped_pair(
        w,
        h,
        move |x, y| (cx + (x - cx) / k, cy + (y - cy) / k),
        move |x, y| (cx + (x - cx) * k, cy + (y - cy) * k),
    );
    for preset in PRESETS {
        let epe = interior_epe(&flow_of(preset, &a, &b), &gt, 16);
        assert!(epe < 0.3, "{preset:?}: EPE {epe}");
    }
}

#[test]
fn brightness_change_is_tolerated() {
    // Mean normalisation makes patches insensitive to a uniform brightness offset.
    let (a, _, gt) = translation(192, 144, 1.6, 0.8);
    let b = image(192, 144, |x, y| texture(x - 1.6, y - 0.8) + 12.0);
    for preset in PRESETS {
        let epe = interior_epe(&flow_of(preset, &a, &b), &gt, 16);
        assert!(epe < 0.2, "{preset:?}: EPE {epe}");
    }
}

#[test]
fn no_motion_gives_zero_flow() {
    let a = image(160, 120, texture);
    for preset in PRESETS {
        let flow = flow_of(preset, &a, &a);
        let max = flow.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max < 1e-3, "{preset:?}: max |flow| {max}");
    }
}

#[test]
fn odd_and_small_sizes_work() {
    // Odd sizes, and images too small for the preset's finest scale.
    for (w, h) in [(101, 77), (33, 17), (12, 12), (8, 8), (200, 9)] {
        let (a, b, _) = translation(w, h, 0.7, -0.4);
        for preset in PRESETS {
            let psz = DisParams::preset(preset).patch_size;
            let mut dis = DisFlow::new(DisParams::preset(preset));
            let mut flow = FlowField::default();
            let r = dis.calc(&a, &b, &mut flow);
            if w < psz || h < psz {
                assert_eq!(r, Err(FlowError::TooSmall(w, h, psz)));
            } else {
                r.unwrap();
                assert_eq!((flow.width(), flow.height()), (w, h));
                assert!(flow.data().iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[test]
fn size_mismatch_is_an_error() {
    let mut dis = DisFlow::new(DisParams::preset(FlowPreset::Fast));
    let mut flow = FlowField::default();
    let r = dis.calc(&GrayImage::new(64, 48), &GrayImage::new(64, 49), &mut flow);
    assert_eq!(r, Err(FlowError::SizeMismatch(64, 48, 64, 49)));
}

#[test]
fn smaller_than_a_patch_is_an_error() {
    let mut dis = DisFlow::new(DisParams::preset(FlowPreset::Medium));
    let mut flow = FlowField::default();
    let img = GrayImage::new(11, 40);
    assert_eq!(
        dis.calc(&img, &img, &mut flow),
        Err(FlowError::TooSmall(11, 40, 12))
    );
    let empty = GrayImage::new(0, 0);
    assert_eq!(
        dis.calc(&empty, &empty, &mut flow),
        Err(FlowError::TooSmall(0, 0, 12))
    );
}

#[test]
fn degenerate_parameters_do_not_panic() {
    let (a, b, _) = translation(64, 48, 1.0, 1.0);
    let mut params = DisParams::preset(FlowPreset::Fast);
    params.patch_size = 0;
    params.patch_stride = 0;
    params.grad_descent_iters = 1;
    params.finest_scale = 9;
    let mut flow = FlowField::default();
    DisFlow::new(params).calc(&a, &b, &mut flow).unwrap();
    let mut params = DisParams::preset(FlowPreset::Medium);
    params.patch_size = 7;
    params.mean_normalization = false;
    params.spatial_propagation = false;
    DisFlow::new(params).calc(&a, &b, &mut flow).unwrap();
    assert!(flow.data().iter().all(|v| v.is_finite()));
}

#[test]
fn second_call_with_the_same_size_does_not_allocate() {
    let (a, b, _) = translation(160, 120, 1.5, -0.5);
    for preset in PRESETS {
        let mut dis = DisFlow::new(DisParams::preset(preset));
        let mut flow = FlowField::default();
        dis.calc(&a, &b, &mut flow).unwrap();
        let before = (dis.fingerprint(), flow.data().as_ptr());
        dis.calc(&b, &a, &mut flow).unwrap();
        dis.calc(&a, &b, &mut flow).unwrap();
        assert_eq!(
            (dis.fingerprint(), flow.data().as_ptr()),
            before,
            "{preset:?}"
        );
    }
}

#[test]
fn results_do_not_depend_on_the_previous_call() {
    let (a, b, _) = translation(160, 120, 1.5, -0.5);
    let (c, d, _) = translation(96, 80, -2.0, 3.0);
    let mut dis = DisFlow::new(DisParams::preset(FlowPreset::Fast));
    let (mut first, mut again) = (FlowField::default(), FlowField::default());
    dis.calc(&a, &b, &mut first).unwrap();
    dis.calc(&c, &d, &mut again).unwrap();
    dis.calc(&a, &b, &mut again).unwrap();
    assert_eq!(first.data(), again.data());
}

#[test]
fn flo_round_trip() {
    let mut flow = FlowField::new(5, 3);
    for (i, v) in flow.data_mut().iter_mut().enumerate() {
        *v = i as f32 * 0.25 - 3.0;
    }
    flow.data_mut()[7] = 1.5e9;
    let mut bytes = Vec::new();
    write_flo_to(&mut bytes, &flow).unwrap();
    assert_eq!(bytes.len(), 12 + 5 * 3 * 8);
    assert_eq!(&bytes[..4], b"PIEH");
    let back = read_flo_from(&bytes[..]).unwrap();
    assert_eq!((back.width(), back.height()), (5, 3));
    assert_eq!(back.data(), flow.data());

    let path = std::env::temp_dir().join(format!("stylize-flo-test-{}.flo", std::process::id()));
    write_flo(&path, &flow).unwrap();
    let back = read_flo(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back.data(), flow.data());
}

#[test]
fn flo_rejects_bad_input() {
    assert!(read_flo_from(&b"nope nope nope"[..]).is_err());
    let mut bytes = Vec::new();
    write_flo_to(&mut bytes, &FlowField::new(4, 4)).unwrap();
    assert!(read_flo_from(&bytes[..bytes.len() - 1]).is_err());
    bytes[4..8].copy_from_slice(&(-1i32).to_le_bytes());
    assert!(read_flo_from(&bytes[..]).is_err());
}

#[test]
fn endpoint_error_skips_unknown_pixels() {
    let mut gt = FlowField::new(2, 1);
    gt.data_mut().copy_from_slice(&[3.0, 4.0, 2e9, 0.0]);
    let flow = FlowField::new(2, 1);
    assert_eq!(endpoint_error(&flow, &gt), Some(5.0));
    gt.data_mut()[0] = f32::NAN;
    assert_eq!(endpoint_error(&flow, &gt), None);
    assert_eq!(endpoint_error(&FlowField::new(3, 1), &gt), None);
}

#[test]
fn bilinear_sampling_and_photometric_error() {
    let img = GrayImage::from_vec(2, 2, vec![0, 100, 50, 150]).unwrap();
    assert_eq!(sample_bilinear(&img, 0.5, 0.0), 50.0);
    assert_eq!(sample_bilinear(&img, 0.5, 0.5), 75.0);
    assert_eq!(sample_bilinear(&img, -3.0, 9.0), 50.0);
    let (a, b, gt) = translation(64, 48, 2.0, 1.0);
    let zero = FlowField::new(64, 48);
    let good = photometric_error(&a, &b, &gt).unwrap();
    let bad = photometric_error(&a, &b, &zero).unwrap();
    assert!(good < 2.0 && bad > 5.0 * good, "{good} {bad}");
}

#[test]
fn flow_resizer_matches_per_pixel_bilinear() {
    // Both output layouts, upscaling and downscaling, against the formula pixel by pixel.
    let (sw, sh) = (13usize, 7usize);
    let su: Vec<f32> = (0..sw * sh).map(|i| (i * 7 % 11) as f32 - 5.0).collect();
    let sv: Vec<f32> = (0..sw * sh).map(|i| (i * 5 % 13) as f32 * 0.5).collect();
    let expect = |src: &[f32], x: usize, y: usize, (dw, dh): (usize, usize)| {
        let (x0, x1, fx) = resize_tap(x, sw as f32 / dw as f32, sw);
        let (y0, y1, fy) = resize_tap(y, sh as f32 / dh as f32, sh);
        let at = |xx: usize, yy: usize| src[yy * sw + xx];
        let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
        let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
        (top + (bottom - top) * fy) * 2.0
    };
    let mut r = Resizer::default();
    for (dw, dh) in [(52, 28), (50, 27), (6, 4), (13, 7)] {
        let mut inter = vec![0.0; dw * dh * 2];
        r.resize(&su, &sv, (sw, sh), &mut inter, None, (dw, dh), 2.0);
        let (mut pu, mut pv) = (vec![0.0; dw * dh], vec![0.0; dw * dh]);
        r.resize(&su, &sv, (sw, sh), &mut pu, Some(&mut pv), (dw, dh), 2.0);
        for y in 0..dh {
            for x in 0..dw {
                let i = y * dw + x;
                let (eu, ev) = (expect(&su, x, y, (dw, dh)), expect(&sv, x, y, (dw, dh)));
                assert!((inter[2 * i] - eu).abs() < 1e-4 && (inter[2 * i + 1] - ev).abs() < 1e-4);
                assert!((pu[i] - eu).abs() < 1e-4 && (pv[i] - ev).abs() < 1e-4);
            }
        }
    }
}
