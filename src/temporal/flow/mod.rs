//! Dense optical flow by DIS (Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse
//! Search"): coarse-to-fine patch inverse search, densification, variational refinement.
//!
//! Self-contained (no dependency on the rest of the crate) so that it can be built, tested
//! and benchmarked on its own.

use std::io::{self, Read, Write};
use std::path::Path;

use thiserror::Error;

mod densify;
mod pyramid;
mod search;
mod variational;

#[cfg(test)]
mod tests;

/// Why a flow cannot be computed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlowError {
    /// The two images differ in size.
    #[error("flow images differ in size: {0}x{1} and {2}x{3}")]
    SizeMismatch(usize, usize, usize, usize),
    /// The image is smaller than one patch.
    #[error("flow image {0}x{1} is smaller than the {2}x{2} patch")]
    TooSmall(usize, usize, usize),
}

/// An 8-bit single-channel image, rows packed (stride = width).
#[derive(Clone, Debug, Default)]
pub struct GrayImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl GrayImage {
    /// A black image.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height],
        }
    }

    /// Wraps packed rows; `None` if the length is not `width * height`.
    pub fn from_vec(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (data.len() == width * height).then_some(Self {
            width,
            height,
            data,
        })
    }

    /// Changes the size, reusing the allocation when it is large enough.
    pub fn reshape(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width * height, 0);
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row after row.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The pixels, row after row.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

/// A dense flow field: for each pixel `x` of the first image, `(u, v)` such that it is
/// found at `x + (u, v)` in the second. Stored interleaved, `u` then `v`.
#[derive(Clone, Debug, Default)]
pub struct FlowField {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

impl FlowField {
    /// A zero field.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0.0; width * height * 2],
        }
    }

    /// Changes the size, reusing the allocation when it is large enough.
    pub fn reshape(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width * height * 2, 0.0);
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// `(u, v)` at a pixel.
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> (f32, f32) {
        let i = (y * self.width + x) * 2;
        (self.data[i], self.data[i + 1])
    }

    /// Interleaved `u, v` values, row after row.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Interleaved `u, v` values, row after row.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

/// Speed/accuracy presets, as in OpenCV's `DISOpticalFlow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlowPreset {
    /// Coarsest and fastest.
    UltraFast,
    /// The default.
    #[default]
    Fast,
    /// Finer patches and more iterations.
    Medium,
}

impl std::str::FromStr for FlowPreset {
    type Err = String;
    /// `ultrafast`, `fast` or `medium` (the names of the CLI and the element).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ultrafast" => Ok(FlowPreset::UltraFast),
            "fast" => Ok(FlowPreset::Fast),
            "medium" => Ok(FlowPreset::Medium),
            _ => Err(format!(
                "unknown flow preset '{s}' (expected ultrafast, fast or medium)"
            )),
        }
    }
}

/// DIS parameters (OpenCV's names and defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct DisParams {
    /// The finest pyramid level computed (0 = full resolution); coarser is faster.
    pub finest_scale: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Distance between patch centres.
    pub patch_stride: usize,
    /// Inverse-search iterations per patch.
    pub grad_descent_iters: usize,
    /// Variational refinement iterations per level (0 = none).
    pub var_refine_iters: usize,
    /// Smoothness weight of the variational refinement.
    pub var_alpha: f32,
    /// Colour (brightness) constancy weight.
    pub var_delta: f32,
    /// Gradient constancy weight.
    pub var_gamma: f32,
    /// Normalise patches by their mean (robust to brightness changes).
    pub mean_normalization: bool,
    /// Propagate good flow between neighbouring patches.
    pub spatial_propagation: bool,
}

impl DisParams {
    /// The parameters of a preset.
    pub fn preset(preset: FlowPreset) -> Self {
        let (finest_scale, patch_size, patch_stride, grad_descent_iters, var_refine_iters) =
            match preset {
                FlowPreset::UltraFast => (2, 8, 5, 16, 0),
                FlowPreset::Fast => (2, 8, 4, 16, 5),
                FlowPreset::Medium => (1, 12, 3, 25, 5),
            };
        Self {
            finest_scale,
            patch_size,
            patch_stride,
            grad_descent_iters,
            var_refine_iters,
            var_alpha: 20.0,
            var_delta: 5.0,
            var_gamma: 10.0,
            mean_normalization: true,
            spatial_propagation: true,
        }
    }
}

/// A DIS flow estimator. Keeps its pyramids and buffers between calls, so that a stream of
/// same-sized frames allocates nothing after the first.
#[derive(Debug)]
pub struct DisFlow {
    params: DisParams,
    /// Pyramid levels by scale (index 0 = full resolution); only `finest..=coarsest` are
    /// filled.
    levels: Vec<pyramid::Level>,
    grid: search::Grid,
    densify: densify::Accumulators,
    refiner: variational::Refiner,
    resizer: Resizer,
}

impl DisFlow {
    /// An estimator with these parameters.
    pub fn new(params: DisParams) -> Self {
        Self {
            params,
            levels: Vec::new(),
            grid: search::Grid::default(),
            densify: densify::Accumulators::default(),
            refiner: variational::Refiner::default(),
            resizer: Resizer::default(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &DisParams {
        &self.params
    }

    /// Computes the flow from `from` to `to` into `flow` (resized to match).
    ///
    /// A `patch_size` below 2 is taken as 2, a `patch_stride` of 0 as 1 and one above the
    /// patch size as the patch size: patches must cover every pixel (a pixel no patch covers
    /// would have no flow).
    pub fn calc(
        &mut self,
        from: &GrayImage,
        to: &GrayImage,
        flow: &mut FlowField,
    ) -> Result<(), FlowError> {
        if (from.width, from.height) != (to.width, to.height) {
            return Err(FlowError::SizeMismatch(
                from.width,
                from.height,
                to.width,
                to.height,
            ));
        }
        let (w, h) = (from.width, from.height);
        let psz = self.params.patch_size.max(2);
        let stride = self.params.patch_stride.clamp(1, psz);
        if w < psz || h < psz {
            return Err(FlowError::TooSmall(w, h, psz));
        }
        let coarsest = coarsest_scale(w, h, psz);
        let finest = self.params.finest_scale.min(coarsest);
        // Enough border that a patch clamped to overlap the image, or the widened last patch
        // of a row in densification, never reads outside the extended image.
        let border = psz + stride + 2;

        if self.levels.len() < coarsest + 1 {
            self.levels.resize_with(coarsest + 1, Default::default);
        }
        pyramid::build(&mut self.levels, from, to, finest, coarsest, border);

        let search_params = search::Params {
            psz,
            stride,
            iters: self.params.grad_descent_iters,
            mean_normalization: self.params.mean_normalization,
            spatial_propagation: self.params.spatial_propagation,
        };
        let var_params = variational::Params {
            iters: self.params.var_refine_iters,
            alpha: self.params.var_alpha,
            delta: self.params.var_delta,
            gamma: self.params.var_gamma,
        };
        for s in (finest..=coarsest).rev() {
            let (upper, lower) = self.levels.split_at_mut(s + 1);
            let level = &mut upper[s];
            let (lw, lh) = (level.w, level.h);
            if s == coarsest {
                level.ux.fill(0.0);
                level.uy.fill(0.0);
            } else {
                // The next coarser level's flow, upsampled and doubled, starts this one.
                let coarser = &lower[0];
                self.resizer.resize(
                    &coarser.ux,
                    &coarser.uy,
                    (coarser.w, coarser.h),
                    &mut level.ux,
                    Some(&mut level.uy),
                    (lw, lh),
                    2.0,
                );
            }
            self.grid.search(level, &search_params);
            self.densify.run(level, &self.grid, psz, stride);
            if var_params.iters > 0 {
                self.refiner.refine(level, &var_params);
            }
        }

        flow.reshape(w, h);
        let fin = &self.levels[finest];
        let scale = (1usize << finest) as f32;
        if (fin.w, fin.h) == (w, h) {
            for ((d, &u), &v) in flow.data.chunks_exact_mut(2).zip(&fin.ux).zip(&fin.uy) {
                d[0] = u;
                d[1] = v;
            }
        } else {
            let (su, sv) = (&fin.ux, &fin.uy);
            self.resizer
                .resize(su, sv, (fin.w, fin.h), &mut flow.data, None, (w, h), scale);
        }
        Ok(())
    }
}

#[cfg(test)]
impl DisFlow {
    /// Address and capacity of every internal buffer (to check that nothing is reallocated).
    fn fingerprint(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(self.levels.as_ptr() as usize, self.levels.capacity())];
        for level in &self.levels {
            level.fingerprint(&mut out);
        }
        self.grid.fingerprint(&mut out);
        self.densify.fingerprint(&mut out);
        self.refiner.fingerprint(&mut out);
        let r = &self.resizer;
        out.push((r.taps.as_ptr() as usize, r.taps.capacity()));
        out.push((r.row_u.as_ptr() as usize, r.row_u.capacity()));
        out.push((r.row_v.as_ptr() as usize, r.row_v.capacity()));
        for row in &r.hrows {
            out.push((row.as_ptr() as usize, row.capacity()));
        }
        out
    }
}

/// `x.floor()` as an integer, without the libm call that `f32::floor` costs on baseline
/// x86-64 (no SSE4.1 rounding instruction).
#[inline(always)]
fn floor(x: f32) -> isize {
    let t = x as isize;
    t - ((t as f32) > x) as isize
}

/// The coarsest pyramid level, as OpenCV chooses it: the search range at the coarsest level
/// is about a quarter of the image, and that level still holds a whole patch.
fn coarsest_scale(w: usize, h: usize, psz: usize) -> usize {
    let by_range = ((w.max(h) as f64 / (4.0 * psz as f64)).log2() + 0.5).floor();
    let by_patch = (w.min(h) as f64 / psz as f64).log2().floor();
    by_range.min(by_patch).max(0.0) as usize
}

/// Where destination pixel `d` samples its source on one axis under half-pixel-centred
/// bilinear resizing: the lower source index, the upper one and the weight of the upper.
#[inline]
fn resize_tap(d: usize, ratio: f32, n: usize) -> (usize, usize, f32) {
    let s = ((d as f32 + 0.5) * ratio - 0.5).max(0.0);
    let i = (s as usize).min(n - 1);
    let f = if i + 1 < n { s - i as f32 } else { 0.0 };
    (i, (i + 1).min(n - 1), f)
}

/// Scratch space of the bilinear flow resizer, kept between calls.
#[derive(Debug, Default)]
struct Resizer {
    taps: Vec<(usize, usize, f32)>,
    row_u: Vec<f32>,
    row_v: Vec<f32>,
    /// Two source rows resized horizontally (interleaved output), and which rows they are.
    hrows: [Vec<f32>; 2],
    hrow_of: [usize; 2],
}

impl Resizer {
    /// Bilinear resize (half-pixel centres, edges clamped) of a flow given as two planes,
    /// times `mul`, into two planes (`dst_v` given) or one interleaved field (`dst_v` none).
    #[allow(clippy::too_many_arguments)]
    fn resize(
        &mut self,
        su: &[f32],
        sv: &[f32],
        (sw, sh): (usize, usize),
        dst_u: &mut [f32],
        dst_v: Option<&mut [f32]>,
        (dw, dh): (usize, usize),
        mul: f32,
    ) {
        let rx = sw as f32 / dw as f32;
        self.taps.clear();
        self.taps.extend((0..dw).map(|x| resize_tap(x, rx, sw)));
        let Some(dst_v) = dst_v else {
            self.resize_interleaved(su, sv, (sw, sh), dst_u, (dw, dh), mul);
            return;
        };
        self.row_u.resize(sw, 0.0);
        self.row_v.resize(sw, 0.0);
        let ry = sh as f32 / dh as f32;
        for y in 0..dh {
            // Vertical pass into a row (contiguous, vectorises), then horizontal taps.
            let (y0, y1, fy) = resize_tap(y, ry, sh);
            for (row, src) in [(&mut self.row_u, su), (&mut self.row_v, sv)] {
                let (r0, r1) = (&src[y0 * sw..][..sw], &src[y1 * sw..][..sw]);
                for ((o, &a), &b) in row.iter_mut().zip(r0).zip(r1) {
                    *o = (a + (b - a) * fy) * mul;
                }
            }
            let (ru, rv) = (&self.row_u[..sw], &self.row_v[..sw]);
            let lerp =
                |r: &[f32], &(x0, x1, fx): &(usize, usize, f32)| r[x0] + (r[x1] - r[x0]) * fx;
            let (ou, ov) = (&mut dst_u[y * dw..][..dw], &mut dst_v[y * dw..][..dw]);
            for ((u, v), t) in ou.iter_mut().zip(ov.iter_mut()).zip(&self.taps) {
                *u = lerp(ru, t);
                *v = lerp(rv, t);
            }
        }
    }

    /// The interleaved case (the full-resolution output, much larger than its source):
    /// source rows are resized horizontally once each, then every output row is a
    /// contiguous, vectorisable blend of two of them.
    fn resize_interleaved(
        &mut self,
        su: &[f32],
        sv: &[f32],
        (sw, sh): (usize, usize),
        dst: &mut [f32],
        (dw, dh): (usize, usize),
        mul: f32,
    ) {
        for row in &mut self.hrows {
            row.resize(dw * 2, 0.0);
        }
        self.hrow_of = [usize::MAX; 2];
        let ry = sh as f32 / dh as f32;
        for y in 0..dh {
            let (y0, y1, fy) = resize_tap(y, ry, sh);
            // Rows move down one at a time; each slot keeps its row until it is replaced.
            let slot_of = |of: &[usize; 2], r: usize| of.iter().position(|&x| x == r);
            let ia = slot_of(&self.hrow_of, y0).unwrap_or(usize::from(self.hrow_of[0] == y1));
            let ib = slot_of(&self.hrow_of, y1).unwrap_or(1 - ia);
            for (slot, sy) in [(ia, y0), (ib, y1)] {
                if self.hrow_of[slot] != sy {
                    let (ru, rv) = (&su[sy * sw..][..sw], &sv[sy * sw..][..sw]);
                    let taps = self.taps.iter();
                    for (o, &(x0, x1, fx)) in self.hrows[slot].chunks_exact_mut(2).zip(taps) {
                        o[0] = (ru[x0] + (ru[x1] - ru[x0]) * fx) * mul;
                        o[1] = (rv[x0] + (rv[x1] - rv[x0]) * fx) * mul;
                    }
                    self.hrow_of[slot] = sy;
                }
            }
            let (a, b) = (&self.hrows[ia], &self.hrows[ib]);
            let out = &mut dst[y * dw * 2..][..dw * 2];
            for ((o, &p), &q) in out.iter_mut().zip(a.iter()).zip(b.iter()) {
                *o = p + (q - p) * fy;
            }
        }
    }
}

/// `img` sampled bilinearly at `(x, y)`, coordinates clamped to the image (edge pixels
/// repeat outside). The image must not be empty.
pub fn sample_bilinear(img: &GrayImage, x: f32, y: f32) -> f32 {
    let (w, h) = (img.width, img.height);
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx: usize, yy: usize| img.data[yy * w + xx] as f32;
    let top = p(x0, y0) + (p(x1, y0) - p(x0, y0)) * fx;
    let bottom = p(x0, y1) + (p(x1, y1) - p(x0, y1)) * fx;
    top + (bottom - top) * fy
}

/// Mean absolute difference, in grey levels, between `from(x)` and `to(x + flow(x))` (`to`
/// sampled bilinearly, clamped at the edges): how well the flow explains the second image.
/// `None` if the sizes differ or the images are empty.
pub fn photometric_error(from: &GrayImage, to: &GrayImage, flow: &FlowField) -> Option<f64> {
    let (w, h) = (from.width, from.height);
    if (to.width, to.height) != (w, h) || (flow.width, flow.height) != (w, h) || w * h == 0 {
        return None;
    }
    let mut sum = 0.0f64;
    for y in 0..h {
        for x in 0..w {
            let (u, v) = flow.get(x, y);
            let b = sample_bilinear(to, x as f32 + u, y as f32 + v);
            sum += (from.data[y * w + x] as f32 - b).abs() as f64;
        }
    }
    Some(sum / (w * h) as f64)
}

/// Flow values above this (in magnitude) in a `.flo` file mean "unknown".
pub const FLO_UNKNOWN: f32 = 1e9;

/// Mean end-point error `|flow - gt|` over the pixels where `gt` is known (finite and within
/// [`FLO_UNKNOWN`]). `None` if the sizes differ or no pixel is known.
pub fn endpoint_error(flow: &FlowField, gt: &FlowField) -> Option<f64> {
    if (flow.width, flow.height) != (gt.width, gt.height) {
        return None;
    }
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (f, g) in flow.data.chunks_exact(2).zip(gt.data.chunks_exact(2)) {
        let known = |x: f32| x.is_finite() && x.abs() <= FLO_UNKNOWN;
        if known(g[0]) && known(g[1]) {
            let (du, dv) = ((f[0] - g[0]) as f64, (f[1] - g[1]) as f64);
            sum += (du * du + dv * dv).sqrt();
            n += 1;
        }
    }
    (n > 0).then(|| sum / n as f64)
}

/// The magic number that starts a Middlebury `.flo` file (the bytes read "PIEH").
const FLO_MAGIC: f32 = 202021.25;

/// Reads a Middlebury `.flo` flow field: magic float, `i32` width and height, then
/// interleaved little-endian `f32` `u, v`.
pub fn read_flo_from(mut r: impl Read) -> io::Result<FlowField> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head)?;
    let word = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
    if f32::from_le_bytes(word(0)) != FLO_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a .flo file",
        ));
    }
    let (w, h) = (i32::from_le_bytes(word(4)), i32::from_le_bytes(word(8)));
    // Bounds the allocation a corrupt header could ask for.
    if !(0..=1 << 15).contains(&w) || !(0..=1 << 15).contains(&h) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad .flo size"));
    }
    let (w, h) = (w as usize, h as usize);
    let mut bytes = vec![0u8; w * h * 8];
    r.read_exact(&mut bytes)?;
    let data = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(FlowField {
        width: w,
        height: h,
        data,
    })
}

/// Writes a flow field in the Middlebury `.flo` format (see [`read_flo_from`]).
pub fn write_flo_to(mut wr: impl Write, flow: &FlowField) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(12 + flow.data.len() * 4);
    bytes.extend_from_slice(&FLO_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&(flow.width as i32).to_le_bytes());
    bytes.extend_from_slice(&(flow.height as i32).to_le_bytes());
    for v in &flow.data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    wr.write_all(&bytes)
}

/// Reads a `.flo` file (see [`read_flo_from`]).
pub fn read_flo(path: impl AsRef<Path>) -> io::Result<FlowField> {
    read_flo_from(io::BufReader::new(std::fs::File::open(path)?))
}

/// Writes a `.flo` file (see [`read_flo_from`]).
pub fn write_flo(path: impl AsRef<Path>, flow: &FlowField) -> io::Result<()> {
    write_flo_to(std::fs::File::create(path)?, flow)
}
