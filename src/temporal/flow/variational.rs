//! Variational refinement of a dense flow (as in OpenCV's `VariationalRefinement`, after
//! Brox et al. 2004): brightness and gradient constancy data terms and a smoothness term,
//! each under a robust (Charbonnier) penaliser, linearised around the current flow and
//! solved for an increment by fixed-point iterations of red-black SOR.
//!
//! All planes have a one-pixel border (stride `w + 2`) so that neighbour access needs no
//! tests: derivative planes repeat their edge there, smoothness weights are zero there.

use super::pyramid::Level;

/// Refinement settings for one call.
pub(super) struct Params {
    pub iters: usize,
    pub alpha: f32,
    pub delta: f32,
    pub gamma: f32,
}

/// SOR relaxation factor and sweeps per fixed-point iteration (OpenCV's DIS settings).
const OMEGA: f32 = 1.6;
const SOR_ITERS: usize = 5;
/// Regularisers of the derivative normalisation and of the penaliser.
const ZETA2: f32 = 0.1 * 0.1;
const EPS2: f32 = 0.001 * 0.001;

/// Buffers, kept between calls.
#[derive(Debug, Default)]
pub(super) struct Refiner {
    avg: Vec<f32>,
    iz: Vec<f32>,
    ix: Vec<f32>,
    iy: Vec<f32>,
    ixx: Vec<f32>,
    ixy: Vec<f32>,
    iyy: Vec<f32>,
    ixz: Vec<f32>,
    iyz: Vec<f32>,
    a11: Vec<f32>,
    a12: Vec<f32>,
    a22: Vec<f32>,
    b1: Vec<f32>,
    b2: Vec<f32>,
    /// Smoothness weight between a pixel and its right (`sh`) and lower (`sv`) neighbour.
    sh: Vec<f32>,
    sv: Vec<f32>,
    /// Flow before refinement, the increment, and their sum.
    wu: Vec<f32>,
    wv: Vec<f32>,
    du: Vec<f32>,
    dv: Vec<f32>,
    tu: Vec<f32>,
    tv: Vec<f32>,
    /// The SOR system split by colour (`[red, black]`, red where `x + y` is even), each
    /// colour's pixels of a row packed together with one padding entry on each side, so
    /// that a sweep over one colour is a contiguous, vectorisable loop.
    rb: [[Vec<f32>; 2]; RB_PLANES],
}

/// Planes of the split system.
const RB_PLANES: usize = 9;
const R11: usize = 0;
const A12: usize = 1;
const R22: usize = 2;
const B1: usize = 3;
const B2: usize = 4;
const SH: usize = 5;
const SV: usize = 6;
const DU: usize = 7;
const DV: usize = 8;

/// Row stride of the split planes for width `w`.
fn split_stride(w: usize) -> usize {
    w.div_ceil(2) + 2
}

/// Copies a padded plane into its two colour planes.
#[inline(always)]
fn split(src: &[f32], dst: &mut [Vec<f32>; 2], w: usize, h: usize) {
    let (pw, l) = (w + 2, split_stride(w));
    let [d0, d1] = dst;
    for y in 0..h {
        let row = &src[(y + 1) * pw + 1..][..w];
        let (even, odd) = if y & 1 == 0 {
            (&mut *d0, &mut *d1)
        } else {
            (&mut *d1, &mut *d0)
        };
        let (even, odd) = (
            &mut even[(y + 1) * l + 1..][..l - 2],
            &mut odd[(y + 1) * l + 1..][..l - 2],
        );
        for ((pair, e), o) in row.chunks_exact(2).zip(even.iter_mut()).zip(odd.iter_mut()) {
            *e = pair[0];
            *o = pair[1];
        }
        if w & 1 == 1 {
            even[w / 2] = row[w - 1];
        }
    }
}

/// The inverse of [`split`] (interior only).
#[inline(always)]
fn merge(src: &[Vec<f32>; 2], dst: &mut [f32], w: usize, h: usize) {
    let (pw, l) = (w + 2, split_stride(w));
    let [s0, s1] = src;
    for y in 0..h {
        let row = &mut dst[(y + 1) * pw + 1..][..w];
        let (even, odd) = if y & 1 == 0 { (s0, s1) } else { (s1, s0) };
        let (even, odd) = (
            &even[(y + 1) * l + 1..][..l - 2],
            &odd[(y + 1) * l + 1..][..l - 2],
        );
        for ((pair, &e), &o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
            pair[0] = e;
            pair[1] = o;
        }
        if w & 1 == 1 {
            row[w - 1] = even[w / 2];
        }
    }
}

/// Copies the outermost interior rows and columns into the border.
#[inline(always)]
fn replicate(a: &mut [f32], pw: usize, ph: usize) {
    for row in a.chunks_exact_mut(pw) {
        row[0] = row[1];
        row[pw - 1] = row[pw - 2];
    }
    a.copy_within(pw..2 * pw, 0);
    a.copy_within((ph - 2) * pw..(ph - 1) * pw, (ph - 1) * pw);
}

/// Central differences along x (`step` 1) or y (`step` = stride) at interior pixels.
#[inline(always)]
fn central_diff(src: &[f32], dst: &mut [f32], pw: usize, ph: usize, step: usize) {
    for y in 1..ph - 1 {
        let o = y * pw;
        let prev = &src[o - step..][..pw];
        let next = &src[o + step..][..pw];
        let out = &mut dst[o..][..pw];
        for x in 1..pw - 1 {
            out[x] = 0.5 * (next[x] - prev[x]);
        }
    }
}

impl Refiner {
    /// Refines `level.ux, level.uy` in place.
    pub fn refine(&mut self, level: &mut Level, p: &Params) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.refine_avx2(level, p) };
        }
        self.refine_impl(level, p);
    }

    /// [`Self::refine_impl`] compiled for AVX2: the plane loops take 8 floats a step. The
    /// same operations in the same order (no fused multiply-add), so the same results.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn refine_avx2(&mut self, level: &mut Level, p: &Params) {
        self.refine_impl(level, p);
    }

    #[inline(always)]
    fn refine_impl(&mut self, level: &mut Level, p: &Params) {
        let (w, h) = (level.w, level.h);
        let (pw, ph) = (w + 2, h + 2);
        let n = pw * ph;
        for a in [
            &mut self.avg,
            &mut self.iz,
            &mut self.ix,
            &mut self.iy,
            &mut self.ixx,
            &mut self.ixy,
            &mut self.iyy,
            &mut self.ixz,
            &mut self.iyz,
            &mut self.a11,
            &mut self.a12,
            &mut self.a22,
            &mut self.b1,
            &mut self.b2,
            &mut self.sh,
            &mut self.sv,
            &mut self.wu,
            &mut self.wv,
            &mut self.du,
            &mut self.dv,
            &mut self.tu,
            &mut self.tv,
        ] {
            a.clear();
            a.resize(n, 0.0);
        }
        let rb_len = split_stride(w) * ph;
        for a in self.rb.iter_mut().flatten() {
            a.clear();
            a.resize(rb_len, 0.0);
        }

        // The second image warped by the current flow; derivatives are taken on the average
        // of both images, the temporal one is their difference.
        let (xmax, ymax) = ((w - 1) as f32, (h - 1) as f32);
        for y in 0..h {
            for x in 0..w {
                let q = y * w + x;
                let o = (y + 1) * pw + x + 1;
                let (u, v) = (level.ux[q], level.uy[q]);
                let sx = (x as f32 + u).clamp(0.0, xmax);
                let sy = (y as f32 + v).clamp(0.0, ymax);
                // Non-negative after clamping, so truncation is the floor.
                let (xi, yi) = (sx as isize, sy as isize);
                let (ax, ay) = (sx - xi as f32, sy - yi as f32);
                let t = level.i1_index(xi, yi);
                let e = &level.i1e;
                let top = e[t] + (e[t + 1] - e[t]) * ax;
                let bottom = e[t + level.ew] + (e[t + level.ew + 1] - e[t + level.ew]) * ax;
                let warped = top + (bottom - top) * ay;
                let i0 = level.i0[q];
                self.avg[o] = 0.5 * (i0 + warped);
                self.iz[o] = warped - i0;
                self.wu[o] = u;
                self.wv[o] = v;
            }
        }
        replicate(&mut self.avg, pw, ph);
        replicate(&mut self.iz, pw, ph);
        replicate(&mut self.wu, pw, ph);
        replicate(&mut self.wv, pw, ph);
        central_diff(&self.avg, &mut self.ix, pw, ph, 1);
        central_diff(&self.avg, &mut self.iy, pw, ph, pw);
        central_diff(&self.iz, &mut self.ixz, pw, ph, 1);
        central_diff(&self.iz, &mut self.iyz, pw, ph, pw);
        replicate(&mut self.ix, pw, ph);
        replicate(&mut self.iy, pw, ph);
        central_diff(&self.ix, &mut self.ixx, pw, ph, 1);
        central_diff(&self.ix, &mut self.ixy, pw, ph, pw);
        central_diff(&self.iy, &mut self.iyy, pw, ph, pw);
        self.tu.copy_from_slice(&self.wu);
        self.tv.copy_from_slice(&self.wv);

        for _ in 0..p.iters {
            self.data_term(p);
            self.smoothness_term(p, w, h);
            for (plane, src) in [
                (R11, &self.a11),
                (A12, &self.a12),
                (R22, &self.a22),
                (B1, &self.b1),
                (B2, &self.b2),
                (SH, &self.sh),
                (SV, &self.sv),
            ] {
                split(src, &mut self.rb[plane], w, h);
            }
            for _ in 0..SOR_ITERS {
                self.sor(w, h, 0);
                self.sor(w, h, 1);
            }
            merge(&self.rb[DU], &mut self.du, w, h);
            merge(&self.rb[DV], &mut self.dv, w, h);
            for (((t, &a), &d), (tv, (&b, &e))) in self
                .tu
                .iter_mut()
                .zip(&self.wu)
                .zip(&self.du)
                .zip(self.tv.iter_mut().zip(self.wv.iter().zip(&self.dv)))
            {
                *t = a + d;
                *tv = b + e;
            }
            replicate(&mut self.tu, pw, ph);
            replicate(&mut self.tv, pw, ph);
        }

        for y in 0..h {
            let o = (y + 1) * pw + 1;
            level.ux[y * w..][..w].copy_from_slice(&self.tu[o..][..w]);
            level.uy[y * w..][..w].copy_from_slice(&self.tv[o..][..w]);
        }
    }

    /// The linearised data terms at the current increment: fills `a11, a12, a22, b1, b2`
    /// over the whole plane (the border values are never read).
    #[inline(always)]
    fn data_term(&mut self, p: &Params) {
        let (delta2, gamma2) = (p.delta / 2.0, p.gamma / 2.0);
        let n = self.a11.len();
        let (ix, iy, iz) = (&self.ix[..n], &self.iy[..n], &self.iz[..n]);
        let (ixx, ixy, iyy) = (&self.ixx[..n], &self.ixy[..n], &self.iyy[..n]);
        let (ixz, iyz) = (&self.ixz[..n], &self.iyz[..n]);
        let (du, dv) = (&self.du[..n], &self.dv[..n]);
        let (a11, a12, a22) = (&mut self.a11[..n], &mut self.a12[..n], &mut self.a22[..n]);
        let (b1, b2) = (&mut self.b1[..n], &mut self.b2[..n]);
        for i in 0..n {
            // Brightness constancy, normalised by the gradient magnitude.
            let (gx, gy, gz) = (ix[i], iy[i], iz[i]);
            let norm = gx * gx + gy * gy + ZETA2;
            let r = gz + gx * du[i] + gy * dv[i];
            let wt = delta2 / (r * r / norm + EPS2).sqrt() / norm;
            let mut m11 = wt * gx * gx + ZETA2;
            let mut m12 = wt * gx * gy;
            let mut m22 = wt * gy * gy + ZETA2;
            let mut v1 = -wt * gz * gx;
            let mut v2 = -wt * gz * gy;
            // Gradient constancy, each component normalised by its own gradient.
            let (xx, xy, yy) = (ixx[i], ixy[i], iyy[i]);
            let n1 = 1.0 / (xx * xx + xy * xy + ZETA2);
            let n2 = 1.0 / (yy * yy + xy * xy + ZETA2);
            let rx = ixz[i] + xx * du[i] + xy * dv[i];
            let ry = iyz[i] + xy * du[i] + yy * dv[i];
            let wt = gamma2 / (rx * rx * n1 + ry * ry * n2 + EPS2).sqrt();
            m11 += wt * (xx * xx * n1 + xy * xy * n2);
            m12 += wt * (xx * xy * n1 + xy * yy * n2);
            m22 += wt * (xy * xy * n1 + yy * yy * n2);
            v1 -= wt * (xx * ixz[i] * n1 + xy * iyz[i] * n2);
            v2 -= wt * (xy * ixz[i] * n1 + yy * iyz[i] * n2);
            a11[i] = m11;
            a12[i] = m12;
            a22[i] = m22;
            b1[i] = v1;
            b2[i] = v2;
        }
    }

    /// Smoothness weights from the current flow, added to the system; then `a11, a22` are
    /// replaced by their reciprocals for the SOR sweeps.
    #[inline(always)]
    fn smoothness_term(&mut self, p: &Params, w: usize, h: usize) {
        let pw = w + 2;
        let alpha2 = p.alpha / 2.0;
        for y in 1..=h {
            let o = y * pw + 1;
            let (tu, tv) = (&self.tu, &self.tv);
            let (u0, u1, ud) = (&tu[o..][..w], &tu[o + 1..][..w], &tu[o + pw..][..w]);
            let (v0, v1, vd) = (&tv[o..][..w], &tv[o + 1..][..w], &tv[o + pw..][..w]);
            let sh = &mut self.sh[o..][..w];
            for x in 0..w {
                let (ux, vx) = (u1[x] - u0[x], v1[x] - v0[x]);
                let (uy, vy) = (ud[x] - u0[x], vd[x] - v0[x]);
                sh[x] = alpha2 / (ux * ux + vx * vx + uy * uy + vy * vy + EPS2).sqrt();
            }
            // The same weight for the pair below; no pair leaves the image.
            let sv = &mut self.sv[o..][..w];
            if y < h {
                sv.copy_from_slice(sh);
            } else {
                sv.fill(0.0);
            }
            sh[w - 1] = 0.0;
        }
        for y in 1..=h {
            let o = y * pw + 1;
            let (sh, sv) = (&self.sh, &self.sv);
            let (r, l) = (&sh[o..][..w], &sh[o - 1..][..w]);
            let (d, u) = (&sv[o..][..w], &sv[o - pw..][..w]);
            for (plane, acc, flow) in [
                (&mut self.a11, &mut self.b1, &self.wu),
                (&mut self.a22, &mut self.b2, &self.wv),
            ] {
                let (f, fr, fl) = (&flow[o..][..w], &flow[o + 1..][..w], &flow[o - 1..][..w]);
                let (fd, fu) = (&flow[o + pw..][..w], &flow[o - pw..][..w]);
                let (a, b) = (&mut plane[o..][..w], &mut acc[o..][..w]);
                for x in 0..w {
                    a[x] = 1.0 / (a[x] + r[x] + l[x] + d[x] + u[x]);
                    b[x] += r[x] * (fr[x] - f[x])
                        + l[x] * (fl[x] - f[x])
                        + d[x] * (fd[x] - f[x])
                        + u[x] * (fu[x] - f[x]);
                }
            }
        }
    }

    /// One SOR sweep over the pixels of one colour (0: `x + y` even), on the split planes.
    #[inline(always)]
    fn sor(&mut self, w: usize, h: usize, colour: usize) {
        let l = split_stride(w);
        let (c, q) = (colour, 1 - colour);
        // Only this colour's increments change; everything else is read.
        let (sys, sol) = self.rb.split_at_mut(DU);
        let [du_pair, dv_pair] = sol else {
            unreachable!()
        };
        let [du0, du1] = du_pair;
        let (dup, duq) = if c == 0 { (du0, &*du1) } else { (du1, &*du0) };
        let [dv0, dv1] = dv_pair;
        let (dvp, dvq) = if c == 0 { (dv0, &*dv1) } else { (dv1, &*dv0) };
        for y in 0..h {
            // x parity of this colour's pixels in this row, and their count.
            let o = (y + c) & 1;
            let n = (w - o).div_ceil(2);
            let r = (y + 1) * l;
            // Left and right neighbours are the other colour, at packed index k - 1 + o
            // and k + o; above and below, the other colour at the same index.
            let (lw, lu, lv) = (
                &sys[SH][q][r + o..][..n],
                &duq[r + o..][..n],
                &dvq[r + o..][..n],
            );
            let (rw, ru, rv) = (
                &sys[SH][c][r + 1..][..n],
                &duq[r + o + 1..][..n],
                &dvq[r + o + 1..][..n],
            );
            let (uw, uu, uv) = (
                &sys[SV][q][r - l + 1..][..n],
                &duq[r - l + 1..][..n],
                &dvq[r - l + 1..][..n],
            );
            let (dw, du, dv) = (
                &sys[SV][c][r + 1..][..n],
                &duq[r + l + 1..][..n],
                &dvq[r + l + 1..][..n],
            );
            let (r11, a12, r22) = (
                &sys[R11][c][r + 1..][..n],
                &sys[A12][c][r + 1..][..n],
                &sys[R22][c][r + 1..][..n],
            );
            let (b1, b2) = (&sys[B1][c][r + 1..][..n], &sys[B2][c][r + 1..][..n]);
            let pu = &mut dup[r + 1..][..n];
            let pv = &mut dvp[r + 1..][..n];
            for k in 0..n {
                let su = lw[k] * lu[k] + rw[k] * ru[k] + uw[k] * uu[k] + dw[k] * du[k];
                let sv = lw[k] * lv[k] + rw[k] * rv[k] + uw[k] * uv[k] + dw[k] * dv[k];
                let nu = pu[k] + OMEGA * ((su + b1[k] - a12[k] * pv[k]) * r11[k] - pu[k]);
                pu[k] = nu;
                pv[k] += OMEGA * ((sv + b2[k] - a12[k] * nu) * r22[k] - pv[k]);
            }
        }
    }
}

#[cfg(test)]
impl Refiner {
    /// Address and capacity of every buffer (to check that nothing is reallocated).
    pub fn fingerprint(&self, out: &mut Vec<(usize, usize)>) {
        for v in [
            &self.avg, &self.iz, &self.ix, &self.iy, &self.ixx, &self.ixy, &self.iyy, &self.ixz,
            &self.iyz, &self.a11, &self.a12, &self.a22, &self.b1, &self.b2, &self.sh, &self.sv,
            &self.wu, &self.wv, &self.du, &self.dv, &self.tu, &self.tv,
        ] {
            out.push((v.as_ptr() as usize, v.capacity()));
        }
        for v in self.rb.iter().flatten() {
            out.push((v.as_ptr() as usize, v.capacity()));
        }
    }
}
