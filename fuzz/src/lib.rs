//! Fuzz harnesses. Each takes arbitrary bytes, decodes them into calls of the library and
//! checks that every call either returns an error or succeeds with the properties its
//! documentation promises; none may panic, overflow or index out of bounds.
//!
//! - [`model_spec`]: the model conventions: sidecar JSON, ONNX `stylize.*` metadata, the
//!   `--extra-input NAME=V1,V2,...` syntax (and its `;`-separated list form) and
//!   [`ModelSpec::resolve`] on arbitrary graph inputs and outputs;
//! - [`frame_convert`]: frames of arbitrary size, stride, buffer length and pixel format
//!   through `Frame::new`, `OwnedFrame`, `pack`, `unpack`, `mix`, `copy_from` and `Resizer`;
//! - [`temporal`]: the temporal filter (observe / blend / skip / reset, sizes changing
//!   between calls) and the DIS flow with arbitrary parameters, on tiny frames.
//!
//! Built by the cargo-fuzz targets in `fuzz/fuzz_targets/` and, through `#[path]`, by
//! `tests/fuzz_regressions.rs`, which replays every input kept under
//! `tests/data/fuzz/<target>/` with plain `cargo test`.

use std::collections::BTreeMap;
use std::path::Path;

use stylize::engine::{ElemType, ModelIo, TensorInfo};
use stylize::frame::{
    ChannelOrder, Frame, FrameMut, Layout, OwnedFrame, PixelFormat, Resizer, TensorFormat,
    ValueRange, mix, pack, unpack,
};
use stylize::model::{
    MAX_FIXED_SIDE, MAX_MULTIPLE_OF, ModelSpec, SpecOverrides, meta, parse_extra_input,
};
use stylize::temporal::{
    BlendOutcome, DisFlow, DisParams, FlowField, FlowPreset, GrayImage, TemporalFilter,
    TemporalMode, TemporalOptions,
};

/// Reads values from the fuzzer's bytes; zeros once they run out.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 at the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            1..=256 => self.u8() as usize % n,
            _ => self.u16() as usize % n,
        }
    }

    /// One of `items`.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A float that is often one of the awkward ones.
    pub fn float(&mut self, usual: &[f32]) -> f32 {
        match self.u8() % 8 {
            0 => f32::NAN,
            1 => self.pick(&[f32::INFINITY, f32::NEG_INFINITY, -1.0, 2.0, 1e30, -0.0]),
            2 => f32::from_bits(self.u32()),
            _ => self.pick(usual),
        }
    }
}

// --- model_spec -------------------------------------------------------------------------------

const META_KEYS: [&str; 14] = [
    meta::LAYOUT,
    meta::CHANNEL_ORDER,
    meta::INPUT_RANGE,
    meta::OUTPUT_RANGE,
    meta::MULTIPLE_OF,
    meta::INPUT,
    meta::OUTPUT,
    meta::EXTRA_INPUTS,
    meta::STYLE,
    meta::WIDTH,
    meta::LICENSE,
    meta::DESCRIPTION,
    "stylize.unknown",
    "producer",
];

/// The model conventions. The first byte picks the source:
/// 0 sidecar JSON (the rest, as text); 1 metadata (each line of the rest is one key, picked
/// by its first character, and its value); 2 the `--extra-input` syntax (the rest, as text,
/// both as one flag and as the `;`-separated list of metadata and the element property);
/// 3 [`ModelSpec::resolve`] on a graph and overrides decoded from the rest.
pub fn model_spec(data: &[u8]) {
    let mut inp = Input::new(data);
    let path = Path::new("fuzz.onnx");
    match inp.u8() % 4 {
        0 => {
            let text = String::from_utf8_lossy(inp.rest());
            if let Ok(o) = SpecOverrides::from_sidecar_json(&text, Path::new("fuzz.onnx.json")) {
                check_overrides(&o);
            }
        }
        1 => {
            let text = String::from_utf8_lossy(inp.rest());
            let mut md = BTreeMap::new();
            for line in text.lines() {
                let mut chars = line.chars();
                let Some(c) = chars.next() else { continue };
                let key = META_KEYS[c as usize % META_KEYS.len()];
                md.insert(key.to_string(), chars.as_str().to_string());
            }
            if let Ok(o) = SpecOverrides::from_metadata(&md, path) {
                check_overrides(&o);
            }
        }
        2 => {
            let text = String::from_utf8_lossy(inp.rest());
            if let Ok((name, values)) = parse_extra_input(&text) {
                assert!(!name.is_empty() && name == name.trim(), "name {name:?}");
                assert!(!values.is_empty() && values.iter().all(|v| v.is_finite()));
                // What the CLI passes on to the element: it parses back to the same.
                let vals: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                let again = parse_extra_input(&format!("{name}={}", vals.join(",")));
                assert_eq!(again, Ok((name, values)));
            }
            let md = BTreeMap::from([(meta::EXTRA_INPUTS.to_string(), text.into_owned())]);
            if let Ok(o) = SpecOverrides::from_metadata(&md, path) {
                check_overrides(&o);
            }
        }
        _ => {
            let io = model_io(&mut inp);
            let given = overrides(&mut inp);
            if let Ok(spec) = ModelSpec::resolve(path, &io, &given) {
                check_spec(&spec, &io);
            }
        }
    }
}

/// What every successfully parsed source must satisfy, and that a model taking exactly
/// these settings resolves with them.
fn check_overrides(o: &SpecOverrides) {
    if let Some(m) = o.multiple_of {
        assert!((1..=MAX_MULTIPLE_OF).contains(&m), "multiple_of {m}");
    }
    for (name, values) in &o.extra_inputs {
        assert!(!values.is_empty(), "{name}: no values");
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{name}: {values:?} not finite"
        );
    }
    // A graph with the image tensors the overrides name, in their layout, and each extra
    // input with as many values as given.
    let image = |name: &Option<String>, default: &str| TensorInfo {
        name: name.clone().unwrap_or_else(|| default.to_string()),
        elem: ElemType::F32,
        shape: match o.layout.unwrap_or_default() {
            Layout::Nchw => vec![1, 3, -1, -1],
            Layout::Nhwc => vec![1, -1, -1, 3],
        },
    };
    let input = image(&o.input, "input");
    let mut inputs = vec![input.clone()];
    for (name, values) in &o.extra_inputs {
        if *name != input.name {
            inputs.push(TensorInfo {
                name: name.clone(),
                elem: ElemType::F32,
                shape: vec![1, values.len() as i64],
            });
        }
    }
    let io = ModelIo {
        inputs,
        outputs: vec![image(&o.output, "output")],
        metadata: BTreeMap::new(),
    };
    let resolved = ModelSpec::resolve(Path::new("fuzz.onnx"), &io, o);
    if o.extra_inputs.contains_key(&input.name) {
        assert!(
            resolved.is_err(),
            "an extra input named like the image input"
        );
        return;
    }
    let spec = resolved.unwrap_or_else(|e| panic!("{o:?} does not resolve: {e}"));
    assert_eq!(spec.multiple_of, o.multiple_of.unwrap_or(1));
    assert_eq!(spec.input_range, o.input_range.unwrap_or_default());
    assert_eq!(spec.extra_inputs.len(), o.extra_inputs.len());
    check_spec(&spec, &io);
}

/// Sizes the frame path works out from a resolved spec are sane for any frame up to
/// 65536×65536: padded to the multiple, tensors whose size fits in memory arithmetic.
fn check_spec(spec: &ModelSpec, io: &ModelIo) {
    assert!((1..=MAX_MULTIPLE_OF).contains(&spec.multiple_of));
    for side in [spec.fixed_width, spec.fixed_height].into_iter().flatten() {
        assert!((1..=MAX_FIXED_SIDE).contains(&side), "fixed side {side}");
    }
    for (w, h) in [(1, 1), (61, 47), (1920, 1080), (65536, 65536)] {
        let (mw, mh) = spec.model_size(w, h);
        let (pw, ph) = spec.padded_size(mw, mh);
        assert!(pw >= mw && ph >= mh);
        if spec.fixed_width.is_none() {
            assert_eq!(pw % spec.multiple_of, 0);
        }
        let shape = spec.input_shape(pw, ph);
        let values = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        // Every byte count of the frame path (f32 tensors, up to 4 bytes per pixel) fits.
        assert!(
            values.and_then(|v| v.checked_mul(8)).is_some(),
            "tensor {shape:?} for a {w}x{h} frame"
        );
        assert_eq!(spec.output_size(&shape), Some((pw, ph)));
    }
    for e in &spec.extra_inputs {
        assert_eq!(
            e.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)),
            Some(e.values.len()),
            "{e:?}"
        );
        let t = io
            .inputs
            .iter()
            .find(|t| t.name == e.name)
            .expect("a graph input");
        assert_eq!(t.shape.len(), e.shape.len());
    }
    let _ = spec.summary();
}

fn dim(inp: &mut Input<'_>) -> i64 {
    match inp.u8() % 16 {
        0..=4 => -1,
        5 => 0,
        6 => 1,
        7 | 8 => 3,
        9 => 8,
        10 => 26,
        11 => 224,
        12 => 1 << 20,
        13 => 1 << 40,
        14 => i64::MAX,
        _ => inp.u64() as i64,
    }
}

const NAMES: [&str; 6] = ["input", "output", "style_weights", "x", "", "input1"];

fn tensor(inp: &mut Input<'_>) -> TensorInfo {
    let name = inp.pick(&NAMES).to_string();
    let elem = match inp.u8() % 4 {
        0 | 1 => ElemType::F32,
        2 => ElemType::F16,
        _ => ElemType::Other("int8".into()),
    };
    let rank = match inp.u8() % 8 {
        0..=4 => 4,
        r => r as usize - 4,
    };
    let shape = (0..rank).map(|_| dim(inp)).collect();
    TensorInfo { name, elem, shape }
}

/// Tensors with distinct names, as in any valid graph.
fn tensors(inp: &mut Input<'_>, most: usize) -> Vec<TensorInfo> {
    let mut v: Vec<TensorInfo> = Vec::new();
    for _ in 0..inp.below(most + 1) {
        let t = tensor(inp);
        if !v.iter().any(|o| o.name == t.name) {
            v.push(t);
        }
    }
    v
}

pub fn model_io(inp: &mut Input<'_>) -> ModelIo {
    let inputs = tensors(inp, 3);
    let outputs = tensors(inp, 2);
    ModelIo {
        inputs,
        outputs,
        metadata: BTreeMap::new(),
    }
}

fn maybe<T: Clone>(inp: &mut Input<'_>, items: &[T]) -> Option<T> {
    match inp.below(items.len() + 1) {
        0 => None,
        i => Some(items[i - 1].clone()),
    }
}

/// Overrides as the parsers produce them (multiple in range, finite values).
pub fn overrides(inp: &mut Input<'_>) -> SpecOverrides {
    let name = |inp: &mut Input<'_>| maybe(inp, &NAMES).map(String::from);
    let mut o = SpecOverrides {
        input: name(inp),
        output: name(inp),
        layout: maybe(inp, &[Layout::Nchw, Layout::Nhwc]),
        channel_order: maybe(inp, &[ChannelOrder::Rgb, ChannelOrder::Bgr]),
        input_range: maybe(
            inp,
            &[ValueRange::Unit, ValueRange::Byte, ValueRange::Signed],
        ),
        output_range: maybe(
            inp,
            &[ValueRange::Unit, ValueRange::Byte, ValueRange::Signed],
        ),
        multiple_of: (inp.u8() % 2 == 1).then(|| 1 + inp.below(MAX_MULTIPLE_OF)),
        extra_inputs: BTreeMap::new(),
    };
    for _ in 0..inp.below(3) {
        let name = inp.pick(&NAMES).to_string();
        let n = match inp.u8() % 4 {
            0 => 1,
            1 => 26,
            _ => 1 + inp.below(64),
        };
        let values = (0..n).map(|i| (i % 3) as f32).collect();
        o.extra_inputs.insert(name, values);
    }
    o
}

// --- frame_convert ----------------------------------------------------------------------------

/// A frame description: often valid and small, sometimes with arbitrary 64-bit numbers.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    width: usize,
    height: usize,
    stride: usize,
    len: usize,
    format: PixelFormat,
}

impl Geometry {
    /// Whether `Frame::new` must accept it (checked in 128-bit arithmetic).
    fn valid(&self) -> bool {
        let (w, h, s) = (self.width as u128, self.height as u128, self.stride as u128);
        let row = w * self.format.bytes_per_pixel() as u128;
        let needed = (s * h.saturating_sub(1)).checked_add(row);
        w > 0 && h > 0 && s >= row && needed.is_some_and(|n| self.len as u128 >= n)
    }

    /// Bytes a buffer needs for this geometry (saturated).
    fn needed(&self) -> usize {
        let row = self.width.saturating_mul(self.format.bytes_per_pixel());
        (self.stride.saturating_mul(self.height.saturating_sub(1))).saturating_add(row)
    }

    /// Whether byte `i` of the buffer is a red, green or blue byte of a pixel.
    fn is_colour(&self, i: usize) -> bool {
        let bpp = self.format.bytes_per_pixel();
        let (y, x) = (i / self.stride, i % self.stride);
        y < self.height && x < self.width * bpp && x % bpp < 3
    }

    /// Whether byte `i` of the buffer belongs to a pixel (alpha and padding bytes included).
    fn is_pixel(&self, i: usize) -> bool {
        let (y, x) = (i / self.stride, i % self.stride);
        y < self.height && x < self.width * self.format.bytes_per_pixel()
    }
}

fn wide(inp: &mut Input<'_>) -> usize {
    match inp.u8() % 4 {
        0 => inp.u64() as usize,
        1 => usize::MAX - inp.below(16),
        2 => 1usize << inp.below(usize::BITS as usize),
        _ => inp.below(64),
    }
}

fn geometry(inp: &mut Input<'_>) -> Geometry {
    let format = inp.pick(&PixelFormat::ALL);
    if inp.u8().is_multiple_of(8) {
        return Geometry {
            width: wide(inp),
            height: wide(inp),
            stride: wide(inp),
            len: inp.below(4096),
            format,
        };
    }
    let side = |inp: &mut Input<'_>| {
        if inp.u8().is_multiple_of(4) {
            inp.below(97)
        } else {
            inp.below(25)
        }
    };
    let (width, height) = (side(inp), side(inp));
    let row = width * format.bytes_per_pixel();
    // Mostly enough, sometimes a little short: -16..=15 bytes around the row.
    let stride = (row as isize + (inp.u8() as i8 as isize) / 8).max(0) as usize;
    let needed = stride * height.saturating_sub(1) + row;
    let len = (needed as isize + (inp.u8() as i8 as isize) / 16).max(0) as usize;
    Geometry {
        width,
        height,
        stride,
        len,
        format,
    }
}

/// A buffer of `len` bytes: the fuzzer's bytes repeated, or one solid pixel everywhere.
fn buffer(inp: &mut Input<'_>, g: &Geometry) -> Vec<u8> {
    let solid = inp.u8().is_multiple_of(4);
    let seed = inp.bytes(48);
    let pixel = [inp.u8(), inp.u8(), inp.u8(), inp.u8()];
    let bpp = g.format.bytes_per_pixel();
    (0..g.len)
        .map(|i| {
            if solid && g.stride > 0 {
                pixel[(i % g.stride) % bpp]
            } else if seed.is_empty() {
                (i * 31 % 251) as u8
            } else {
                seed[i % seed.len()] ^ (i / seed.len()) as u8
            }
        })
        .collect()
}

fn tensor_format(inp: &mut Input<'_>) -> TensorFormat {
    TensorFormat {
        layout: inp.pick(&[Layout::Nchw, Layout::Nhwc]),
        order: inp.pick(&[ChannelOrder::Rgb, ChannelOrder::Bgr]),
        range: inp.pick(&[ValueRange::Unit, ValueRange::Byte, ValueRange::Signed]),
    }
}

/// A tensor size around a frame's: sometimes smaller, sometimes with a wrong length.
fn tensor_size(inp: &mut Input<'_>, w: usize, h: usize) -> (usize, usize, usize) {
    if inp.u8().is_multiple_of(16) {
        // Sizes whose product overflows, and a short buffer: an error.
        return (wide(inp), wide(inp), inp.below(64));
    }
    let tw = (w + inp.below(6)).saturating_sub(1);
    let th = (h + inp.below(6)).saturating_sub(1);
    let len = if inp.u8().is_multiple_of(16) {
        inp.below(3 * tw * th + 4)
    } else {
        3 * tw * th
    };
    (tw, th, len)
}

/// Whether `pack` and `unpack` must take a tensor of `len` values said to be `tw`×`th`.
fn tensor_fits(len: usize, tw: usize, th: usize, g: &Geometry) -> bool {
    let values = (tw as u128 * th as u128).checked_mul(3);
    values == Some(len as u128) && tw >= g.width && th >= g.height
}

/// Frames of arbitrary geometry through every conversion of `stylize::frame`.
pub fn frame_convert(data: &[u8]) {
    let mut inp = Input::new(data);
    let g = geometry(&mut inp);
    let bpp = g.format.bytes_per_pixel();
    let buf = buffer(&mut inp, &g);
    let frame = Frame::new(&buf, g.width, g.height, g.stride, g.format);
    assert_eq!(frame.is_ok(), g.valid(), "{g:?}: {frame:?}");
    {
        let mut copy = buf.clone();
        let f = FrameMut::new(&mut copy, g.width, g.height, g.stride, g.format);
        assert_eq!(f.is_ok(), g.valid(), "{g:?}");
    }
    owned(&g);
    let Ok(src) = frame else { return };
    assert_eq!(src.row(g.height - 1).len(), g.width * bpp);
    fn frame_mut<'b>(b: &'b mut [u8], g: &Geometry) -> FrameMut<'b> {
        FrameMut::new(b, g.width, g.height, g.stride, g.format).expect("valid above")
    }

    // pack, then unpack at full strength: every byte comes back.
    let tf = tensor_format(&mut inp);
    let (tw, th, tlen) = tensor_size(&mut inp, g.width, g.height);
    let mut t = vec![f32::NAN; tlen];
    let packed = pack(&src, &mut t, tw, th, tf);
    let fits = tensor_fits(tlen, tw, th, &g);
    assert_eq!(
        packed.is_ok(),
        fits,
        "pack {g:?} into {tw}x{th} ({tlen}): {packed:?}"
    );
    if packed.is_ok() {
        assert!(t.iter().all(|v| v.is_finite()), "every value written");
        let mut out = buf.clone();
        unpack(&t, tw, th, tf, &mut frame_mut(&mut out, &g), 1.0).expect("same sizes as pack");
        assert!(out == buf, "pack/unpack round trip {g:?} {tw}x{th} {tf:?}");
    }

    // unpack of arbitrary values at an arbitrary strength.
    let tf = tensor_format(&mut inp);
    let (tw, th, tlen) = tensor_size(&mut inp, g.width, g.height);
    let table: Vec<f32> = (0..1 + inp.below(16))
        .map(|_| inp.float(&[0.0, 0.5, 1.0, 127.5, 255.0, 254.5, -0.5, 300.0]))
        .collect();
    let t: Vec<f32> = (0..tlen).map(|i| table[i % table.len()]).collect();
    let strength = inp.float(&[0.0, 1.0, 0.5, 0.25, 0.999]);
    let mut out = buf.clone();
    let r = unpack(&t, tw, th, tf, &mut frame_mut(&mut out, &g), strength);
    let fits = tensor_fits(tlen, tw, th, &g);
    assert_eq!(
        r.is_ok(),
        fits,
        "unpack {g:?} from {tw}x{th} ({tlen}): {r:?}"
    );
    for i in 0..buf.len() {
        assert!(
            g.is_colour(i) || out[i] == buf[i],
            "unpack wrote byte {i} {g:?}"
        );
    }
    if strength <= 0.0 && table.iter().all(|v| v.is_finite()) {
        assert!(out == buf, "strength {strength} changed the frame");
    }

    // mix with another frame, often of another size or format.
    let g2 = if inp.u8().is_multiple_of(2) {
        Geometry {
            stride: g.width * bpp + inp.below(5),
            ..g
        }
    } else {
        geometry(&mut inp)
    };
    let g2 = Geometry {
        len: if g2.needed() < 1 << 20 {
            g2.len.max(g2.needed())
        } else {
            g2.len
        },
        ..g2
    };
    let buf2 = buffer(&mut inp, &g2);
    if let Ok(styled) = Frame::new(&buf2, g2.width, g2.height, g2.stride, g2.format) {
        let strength = inp.float(&[0.0, 1.0, 0.5, 0.75]);
        let mut out = buf.clone();
        let r = mix(&mut frame_mut(&mut out, &g), &styled, strength);
        let same = (g2.width, g2.height, g2.format) == (g.width, g.height, g.format);
        assert_eq!(r.is_ok(), same, "mix {g2:?} into {g:?}: {r:?}");
        for i in 0..buf.len() {
            assert!(g.is_colour(i) || out[i] == buf[i], "mix wrote byte {i}");
        }
        if strength <= 0.0 {
            assert!(out == buf, "mix at strength {strength} changed the frame");
        }
        if same && strength >= 1.0 {
            for y in 0..g.height {
                let (a, b) = (&out[y * g.stride..], styled.row(y));
                for x in 0..g.width {
                    assert_eq!(a[x * bpp..x * bpp + 3], b[x * bpp..x * bpp + 3]);
                }
            }
        }
        let mut out = buf.clone();
        let r = frame_mut(&mut out, &g).copy_from(&styled);
        assert_eq!(r.is_ok(), same);
    }

    // Resizes into one to three frames of other sizes, with one resizer (cached tables).
    let mut resizer = Resizer::new();
    for _ in 0..1 + inp.below(3) {
        let mut gd = geometry(&mut inp);
        if !inp.u8().is_multiple_of(4) {
            gd.format = g.format;
            let dbpp = gd.format.bytes_per_pixel();
            gd.stride = gd.stride.max(gd.width.saturating_mul(dbpp));
            if gd.needed() < 1 << 20 {
                gd.len = gd.len.max(gd.needed());
            }
        }
        if !gd.valid() || gd.len > 1 << 20 {
            continue;
        }
        let before = buffer(&mut inp, &gd);
        let mut out = before.clone();
        let r = {
            let mut dst = FrameMut::new(&mut out, gd.width, gd.height, gd.stride, gd.format)
                .expect("valid geometry");
            resizer.resize(&src, &mut dst)
        };
        assert_eq!(r.is_ok(), gd.format == g.format, "resize {g:?} -> {gd:?}");
        for i in 0..out.len() {
            assert!(
                gd.is_pixel(i) || out[i] == before[i],
                "resize wrote byte {i}"
            );
        }
        if r.is_err() {
            continue;
        }
        let dst = Frame::new(&out, gd.width, gd.height, gd.stride, gd.format).expect("valid");
        if (gd.width, gd.height) == (g.width, g.height) {
            for y in 0..g.height {
                assert_eq!(dst.row(y), src.row(y), "same size is a copy");
            }
        }
        // A solid picture stays solid (within the rounding of the fixed-point weights).
        let first = &src.row(0)[..bpp];
        let solid = (0..g.height).all(|y| src.row(y).chunks_exact(bpp).all(|p| p == first));
        if solid {
            for y in 0..gd.height {
                for p in dst.row(y).chunks_exact(bpp) {
                    for (a, b) in p.iter().zip(first) {
                        assert!(a.abs_diff(*b) <= 1, "solid {first:?} became {p:?}");
                    }
                }
            }
        }
    }
}

/// `OwnedFrame::new` and `reshape` with the same size: an error when the size overflows,
/// never a panic.
fn owned(g: &Geometry) {
    let bytes =
        (g.width as u128 * g.height as u128).saturating_mul(g.format.bytes_per_pixel() as u128);
    if bytes > usize::MAX as u128 {
        assert!(OwnedFrame::new(g.width, g.height, g.format).is_err());
        let mut f = OwnedFrame::new(1, 1, g.format).expect("1x1");
        assert!(f.reshape(g.width, g.height, g.format).is_err());
        assert_eq!(
            (f.width(), f.height()),
            (1, 1),
            "a failed reshape changes nothing"
        );
    } else if bytes <= 1 << 16 {
        let ok = g.width > 0 && g.height > 0;
        let f = OwnedFrame::new(g.width, g.height, g.format);
        assert_eq!(f.is_ok(), ok);
        if let Ok(f) = f {
            assert_eq!(f.data().len() as u128, bytes);
        }
        let mut f = OwnedFrame::new(2, 3, PixelFormat::Rgb).expect("2x3");
        assert_eq!(f.reshape(g.width, g.height, g.format).is_ok(), ok);
        assert_eq!(f.data().len() as u128, if ok { bytes } else { 18 });
    }
}

// --- temporal ---------------------------------------------------------------------------------

fn options(inp: &mut Input<'_>) -> TemporalOptions {
    TemporalOptions {
        preset: inp.pick(&[FlowPreset::UltraFast, FlowPreset::Fast, FlowPreset::Medium]),
        flow_divisor: inp.below(5),
        cut_threshold: inp.u8() as f32 / 255.0,
        ..Default::default()
    }
}

/// A small frame: a texture moved by an offset from the input, or raw bytes.
fn small_frame(inp: &mut Input<'_>) -> (Vec<u8>, Geometry) {
    let format = inp.pick(&PixelFormat::ALL);
    let bpp = format.bytes_per_pixel();
    let (w, h) = (1 + inp.below(40), 1 + inp.below(40));
    let stride = w * bpp + inp.below(9);
    let len = stride * (h - 1) + w * bpp;
    let (dx, dy, seed) = (inp.below(8), inp.below(8), inp.u8() as usize);
    let raw = inp.u8().is_multiple_of(4);
    let bytes = inp.bytes(32);
    let data = (0..len)
        .map(|i| {
            let (y, x) = (i / stride, (i % stride) / bpp);
            if raw && !bytes.is_empty() {
                bytes[i % bytes.len()]
            } else {
                // Blocks of 4 pixels, moved by (dx, dy): something the flow can follow.
                let (bx, by) = ((x + dx) / 4, (y + dy) / 4);
                ((bx * 7919 + by * 104_729 + seed * 31 + i % bpp * 50) % 251) as u8
            }
        })
        .collect();
    let g = Geometry {
        width: w,
        height: h,
        stride,
        len,
        format,
    };
    (data, g)
}

/// The temporal filter driven by a sequence of calls, with frame sizes, formats, modes and
/// weights changing between them; or (first byte ≡ 0 mod 4) the DIS flow alone.
pub fn temporal(data: &[u8]) {
    let mut inp = Input::new(data);
    if inp.u8().is_multiple_of(4) {
        dis_flow(&mut inp);
        return;
    }
    let mut filter = TemporalFilter::new(options(&mut inp));
    let modes = [TemporalMode::None, TemporalMode::Ema, TemporalMode::Flow];
    for _ in 0..24 {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 8 {
            0 | 1 => {
                let (buf, g) = small_frame(&mut inp);
                let f = Frame::new(&buf, g.width, g.height, g.stride, g.format).expect("valid");
                filter.observe(&f, inp.pick(&modes));
            }
            2..=4 => {
                let (before, g) = small_frame(&mut inp);
                let mode = inp.pick(&modes);
                let weight = inp.float(&[0.0, 0.3, 0.7, 1.0]);
                let mut buf = before.clone();
                let mut out =
                    FrameMut::new(&mut buf, g.width, g.height, g.stride, g.format).expect("valid");
                let outcome = filter.blend(&mut out, mode, weight);
                let outcome = outcome.unwrap_or_else(|e| panic!("blend {g:?}: {e}"));
                if mode == TemporalMode::None || weight <= 0.0 {
                    assert_eq!(outcome, BlendOutcome::PerFrame);
                }
                if matches!(outcome, BlendOutcome::PerFrame | BlendOutcome::Cut { .. }) {
                    assert!(buf == before, "{outcome:?} changed the frame");
                }
                for i in 0..buf.len() {
                    assert!(
                        g.is_colour(i) || buf[i] == before[i],
                        "blend wrote byte {i}"
                    );
                }
            }
            5 => filter.observe_none(),
            6 => filter.skip(),
            _ => {
                if inp.u8().is_multiple_of(2) {
                    filter.reset();
                } else {
                    filter.set_options(options(&mut inp));
                }
            }
        }
    }
}

fn gray(inp: &mut Input<'_>, w: usize, h: usize, dx: usize) -> GrayImage {
    let seed = inp.u8() as usize;
    let data = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w + dx, i / w);
            (((x / 3) * 7919 + (y / 3) * 104_729 + seed) % 251) as u8
        })
        .collect();
    GrayImage::from_vec(w, h, data).expect("w*h bytes")
}

fn dis_flow(inp: &mut Input<'_>) {
    let defaults =
        DisParams::preset(inp.pick(&[FlowPreset::UltraFast, FlowPreset::Fast, FlowPreset::Medium]));
    let custom = inp.u8().is_multiple_of(2);
    let params = if custom {
        DisParams {
            finest_scale: inp.below(5),
            patch_size: inp.below(14),
            patch_stride: inp.below(8),
            grad_descent_iters: inp.below(5),
            var_refine_iters: inp.below(3),
            var_alpha: inp.float(&[20.0, 1.0, 0.0]),
            var_delta: inp.float(&[5.0, 1.0, 0.0]),
            var_gamma: inp.float(&[10.0, 1.0, 0.0]),
            mean_normalization: inp.u8().is_multiple_of(2),
            spatial_propagation: inp.u8().is_multiple_of(2),
        }
    } else {
        defaults
    };
    // Weights in a meaningful range (the presets use 5 to 20); absurd ones such as 1e35
    // overflow f32 in the refinement, which is not checked.
    let finite_params = [params.var_alpha, params.var_delta, params.var_gamma]
        .iter()
        .all(|v| (0.0..=1000.0).contains(v));
    let mut dis = DisFlow::new(params.clone());
    let mut flow = FlowField::default();
    for _ in 0..1 + inp.below(3) {
        let (w, h) = (inp.below(48), inp.below(48));
        let (w2, h2) = if inp.u8().is_multiple_of(8) {
            (inp.below(48), inp.below(48))
        } else {
            (w, h)
        };
        let dx = inp.below(4);
        let (a, b) = (gray(inp, w, h, 0), gray(inp, w2, h2, dx));
        let r = dis.calc(&a, &b, &mut flow);
        let psz = params.patch_size.max(2);
        let expect = (w, h) == (w2, h2) && w >= psz && h >= psz;
        assert_eq!(r.is_ok(), expect, "{w}x{h} / {w2}x{h2}, patch {psz}: {r:?}");
        if r.is_ok() {
            assert_eq!((flow.width(), flow.height()), (w, h));
            if finite_params {
                assert!(
                    flow.data().iter().all(|v| v.is_finite()),
                    "non-finite flow {w}x{h} {params:?}"
                );
            }
        }
    }
}
