//! Patch inverse search: for each patch on a regular grid of the first image, the
//! displacement that best matches it in the second image, by inverse-compositional
//! Gauss-Newton steps, with candidates propagated from neighbouring patches.

use super::pyramid::Level;

/// Fraction of the Gauss-Newton step taken per iteration. OpenCV's DIS takes 1/8 of it
/// (its Hessian and gradients use unnormalised Sobel derivatives); the damping acts as a
/// regulariser for weakly textured patches and measured better than full steps on the
/// Middlebury pairs (mean EPE 0.63 against 0.68 with the medium preset).
const STEP: f32 = 0.125;

/// Search settings for one call.
pub(super) struct Params {
    pub psz: usize,
    pub stride: usize,
    pub iters: usize,
    pub mean_normalization: bool,
    pub spatial_propagation: bool,
}

/// The patch grid of one level and the displacement found for each patch.
#[derive(Debug, Default)]
pub(super) struct Grid {
    /// Patches per row and per column.
    pub ws: usize,
    pub hs: usize,
    /// Displacement of each patch, row after row.
    pub sx: Vec<f32>,
    pub sy: Vec<f32>,
    /// Inverse Hessian (symmetric 2x2) of each patch.
    ih11: Vec<f32>,
    ih12: Vec<f32>,
    ih22: Vec<f32>,
    /// Sums of the patch gradients (for mean normalisation).
    gsx: Vec<f32>,
    gsy: Vec<f32>,
}

/// Bilinear taps of a patch at a sub-pixel position of the extended second image: index of
/// the top-left tap and the four weights (top-left, top-right, bottom-left, bottom-right).
#[inline(always)]
fn taps(level: &Level, x: f32, y: f32) -> (usize, [f32; 4]) {
    let (xi, yi) = (super::floor(x), super::floor(y));
    let (ax, ay) = (x - xi as f32, y - yi as f32);
    let idx = level.i1_index(xi, yi);
    (
        idx,
        [
            (1.0 - ax) * (1.0 - ay),
            ax * (1.0 - ay),
            (1.0 - ax) * ay,
            ax * ay,
        ],
    )
}

/// Sums over a `P x P` patch of the residual `r = I1(x + u) - I0(x)`: `[sum r, sum r²,
/// sum Ix r, sum Iy r]` (the last two only if `GRAD`). One accumulator per patch column, so
/// that the column loop vectorises (the compiler may not reorder a plain float sum).
#[inline(always)]
fn patch_sums<const P: usize, const GRAD: bool>(
    level: &Level,
    origin: usize,
    tap: usize,
    wt: [f32; 4],
) -> [f32; 4] {
    let [w00, w01, w10, w11] = wt;
    let (w, ew) = (level.w, level.ew);
    let mut sd = [0.0f32; P];
    let mut sd2 = [0.0f32; P];
    let mut sgx = [0.0f32; P];
    let mut sgy = [0.0f32; P];
    for r in 0..P {
        let a = &level.i0[origin + r * w..][..P];
        let gx = &level.ix[origin + r * w..][..P];
        let gy = &level.iy[origin + r * w..][..P];
        let t0 = &level.i1e[tap + r * ew..][..P + 1];
        let t1 = &level.i1e[tap + (r + 1) * ew..][..P + 1];
        for c in 0..P {
            let d = w00 * t0[c] + w01 * t0[c + 1] + w10 * t1[c] + w11 * t1[c + 1] - a[c];
            sd[c] += d;
            sd2[c] += d * d;
            if GRAD {
                sgx[c] += gx[c] * d;
                sgy[c] += gy[c] * d;
            }
        }
    }
    let sum = |v: [f32; P]| v.iter().sum::<f32>();
    [sum(sd), sum(sd2), sum(sgx), sum(sgy)]
}

/// [`patch_sums`] for any patch size (not unrolled).
#[inline(always)]
fn patch_sums_dyn<const GRAD: bool>(
    psz: usize,
    level: &Level,
    origin: usize,
    tap: usize,
    wt: [f32; 4],
) -> [f32; 4] {
    let [w00, w01, w10, w11] = wt;
    let (w, ew) = (level.w, level.ew);
    let mut s = [0.0f32; 4];
    for r in 0..psz {
        let a = &level.i0[origin + r * w..][..psz];
        let gx = &level.ix[origin + r * w..][..psz];
        let gy = &level.iy[origin + r * w..][..psz];
        let t0 = &level.i1e[tap + r * ew..][..psz + 1];
        let t1 = &level.i1e[tap + (r + 1) * ew..][..psz + 1];
        for c in 0..psz {
            let d = w00 * t0[c] + w01 * t0[c + 1] + w10 * t1[c] + w11 * t1[c + 1] - a[c];
            s[0] += d;
            s[1] += d * d;
            if GRAD {
                s[2] += gx[c] * d;
                s[3] += gy[c] * d;
            }
        }
    }
    s
}

/// [`patch_sums`] for `P > 0`, [`patch_sums_dyn`] with `psz` for `P == 0`.
#[inline(always)]
fn sums<const P: usize, const GRAD: bool>(
    psz: usize,
    level: &Level,
    origin: usize,
    tap: usize,
    wt: [f32; 4],
) -> [f32; 4] {
    if P == 0 {
        patch_sums_dyn::<GRAD>(psz, level, origin, tap, wt)
    } else {
        patch_sums::<P, GRAD>(level, origin, tap, wt)
    }
}

impl Grid {
    /// Finds the displacement of every patch of `level`, starting from the dense flow in
    /// `level.ux, level.uy` (the previous level's result) at the patch centres.
    pub fn search(&mut self, level: &Level, p: &Params) {
        self.ws = 1 + (level.w - p.psz) / p.stride;
        self.hs = 1 + (level.h - p.psz) / p.stride;
        let n = self.ws * self.hs;
        for v in [
            &mut self.sx,
            &mut self.sy,
            &mut self.ih11,
            &mut self.ih12,
            &mut self.ih22,
            &mut self.gsx,
            &mut self.gsy,
        ] {
            v.resize(n, 0.0);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.search_avx2(level, p) };
        }
        self.search_sized(level, p);
    }

    /// [`Self::search_sized`] compiled for AVX2: a patch row of 8 floats is one register.
    /// The same operations in the same order (no fused multiply-add), so the same results.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn search_avx2(&mut self, level: &Level, p: &Params) {
        self.search_sized(level, p);
    }

    #[inline(always)]
    fn search_sized(&mut self, level: &Level, p: &Params) {
        // Monomorphised for the presets' patch sizes so that the patch loops are unrolled.
        match p.psz {
            8 => {
                self.hessians::<8>(level, p);
                self.run::<8>(level, p);
            }
            12 => {
                self.hessians::<12>(level, p);
                self.run::<12>(level, p);
            }
            16 => {
                self.hessians::<16>(level, p);
                self.run::<16>(level, p);
            }
            _ => {
                self.hessians::<0>(level, p);
                self.run::<0>(level, p);
            }
        }
    }

    /// Inverse Hessians of the patches (of the mean-subtracted gradients when patches are
    /// mean-normalised), slightly regularised so that flat patches do not move.
    #[inline(always)]
    fn hessians<const P: usize>(&mut self, level: &Level, p: &Params) {
        let psz = if P == 0 { p.psz } else { P };
        let w = level.w;
        let n = (psz * psz) as f32;
        for is in 0..self.hs {
            for js in 0..self.ws {
                let origin = is * p.stride * w + js * p.stride;
                let (mut xx, mut xy, mut yy, mut sx, mut sy) = (0.0f32, 0.0f32, 0.0, 0.0, 0.0);
                for r in 0..psz {
                    let gx = &level.ix[origin + r * w..][..psz];
                    let gy = &level.iy[origin + r * w..][..psz];
                    for (&a, &b) in gx.iter().zip(gy) {
                        xx += a * a;
                        xy += a * b;
                        yy += b * b;
                        sx += a;
                        sy += b;
                    }
                }
                if p.mean_normalization {
                    xx -= sx * sx / n;
                    xy -= sx * sy / n;
                    yy -= sy * sy / n;
                }
                let reg = 0.01 * n;
                let (xx, yy) = (xx + reg, yy + reg);
                let det = (xx * yy - xy * xy).max(1e-6);
                let k = is * self.ws + js;
                self.ih11[k] = yy / det;
                self.ih12[k] = -xy / det;
                self.ih22[k] = xx / det;
                self.gsx[k] = sx;
                self.gsy[k] = sy;
            }
        }
    }

    #[inline(always)]
    fn run<const P: usize>(&mut self, level: &Level, p: &Params) {
        let psz = if P == 0 { p.psz } else { P };
        let (w, ws, hs, stride) = (level.w, self.ws, self.hs, p.stride);
        let n = (psz * psz) as f32;
        let half = psz / 2;
        let mn = p.mean_normalization;
        // Patches are kept overlapping the image by at least one pixel.
        let lo = -(psz as f32 - 1.0);
        let (hi_x, hi_y) = ((level.w - 1) as f32, (level.h - 1) as f32);
        let pos = |js: usize, is: usize, u: f32, v: f32| {
            let x = ((js * stride) as f32 + u).clamp(lo, hi_x);
            let y = ((is * stride) as f32 + v).clamp(lo, hi_y);
            taps(level, x, y)
        };
        let ssd = |js: usize, is: usize, u: f32, v: f32| {
            let (tap, wt) = pos(js, is, u, v);
            let s = sums::<P, false>(psz, level, is * stride * w + js * stride, tap, wt);
            if mn { s[1] - s[0] * s[0] / n } else { s[1] }
        };
        // Two sweeps (forward, then backward) share the iterations, as in OpenCV.
        let inner = (p.iters / 2).max(p.iters.min(1));

        for pass in 0..2 {
            for step_i in 0..hs {
                let is = if pass == 0 { step_i } else { hs - 1 - step_i };
                for step_j in 0..ws {
                    let js = if pass == 0 { step_j } else { ws - 1 - step_j };
                    let k = is * ws + js;
                    if pass == 0 {
                        let c = (is * stride + half) * w + js * stride + half;
                        self.sx[k] = level.ux[c];
                        self.sy[k] = level.uy[c];
                    }
                    let (mut su, mut sv) = (self.sx[k], self.sy[k]);
                    if p.spatial_propagation {
                        let mut best = ssd(js, is, su, sv);
                        // The neighbours already visited in this sweep.
                        let prev_j = if pass == 0 {
                            (js > 0).then(|| k - 1)
                        } else {
                            (js + 1 < ws).then(|| k + 1)
                        };
                        let prev_i = if pass == 0 {
                            (is > 0).then(|| k - ws)
                        } else {
                            (is + 1 < hs).then(|| k + ws)
                        };
                        for q in [prev_j, prev_i].into_iter().flatten() {
                            let (cu, cv) = (self.sx[q], self.sy[q]);
                            let c = ssd(js, is, cu, cv);
                            if c < best {
                                best = c;
                                su = cu;
                                sv = cv;
                            }
                        }
                    }
                    let origin = is * stride * w + js * stride;
                    let (ih11, ih12, ih22) = (self.ih11[k], self.ih12[k], self.ih22[k]);
                    let (gsx, gsy) = (self.gsx[k], self.gsy[k]);
                    let (mut cu, mut cv) = (su, sv);
                    let mut prev = f32::INFINITY;
                    for _ in 0..inner {
                        let (tap, wt) = pos(js, is, cu, cv);
                        let s = sums::<P, true>(psz, level, origin, tap, wt);
                        let (e, bx, by) = if mn {
                            let m = s[0] / n;
                            (s[1] - s[0] * m, s[2] - gsx * m, s[3] - gsy * m)
                        } else {
                            (s[1], s[2], s[3])
                        };
                        // Stop once the match gets worse (keeping the last step, as OpenCV
                        // does: with damped steps that measured better than stepping back).
                        if e >= prev {
                            break;
                        }
                        prev = e;
                        cu -= STEP * (ih11 * bx + ih12 * by);
                        cv -= STEP * (ih12 * bx + ih22 * by);
                    }
                    // A patch that wandered further than its own size has most likely locked
                    // onto something else: keep the starting point.
                    let (du, dv) = (cu - su, cv - sv);
                    if du * du + dv * dv <= (psz * psz) as f32 {
                        su = cu;
                        sv = cv;
                    }
                    self.sx[k] = su;
                    self.sy[k] = sv;
                }
            }
        }
    }
}

#[cfg(test)]
impl Grid {
    /// Address and capacity of every buffer (to check that nothing is reallocated).
    pub fn fingerprint(&self, out: &mut Vec<(usize, usize)>) {
        for v in [
            &self.sx, &self.sy, &self.ih11, &self.ih12, &self.ih22, &self.gsx, &self.gsy,
        ] {
            out.push((v.as_ptr() as usize, v.capacity()));
        }
    }
}
