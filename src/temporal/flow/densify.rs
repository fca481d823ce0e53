//! Densification: each pixel's flow is the average of the displacements of the patches that
//! cover it, each weighted by how well it explains that pixel (`1 / max(1, |residual|)`).

use super::pyramid::Level;
use super::search::Grid;

/// Per-pixel weighted sums, kept between calls.
#[derive(Debug, Default)]
pub(super) struct Accumulators {
    u: Vec<f32>,
    v: Vec<f32>,
    weight: Vec<f32>,
}

impl Accumulators {
    /// Writes the dense flow of `level` from the patch displacements in `grid`.
    pub fn run(&mut self, level: &mut Level, grid: &Grid, psz: usize, stride: usize) {
        let (w, h, ew) = (level.w, level.h, level.ew);
        let n = w * h;
        for a in [&mut self.u, &mut self.v, &mut self.weight] {
            a.clear();
            a.resize(n, 0.0);
        }
        let b = level.border as f32;
        // Patch-major so that each patch row is one vectorisable loop with fixed bilinear
        // weights. The last patch of a row (column) also covers the pixels to its right
        // (below) that no patch reaches.
        for is in 0..grid.hs {
            let y0 = is * stride;
            let ph = if is + 1 == grid.hs { h - y0 } else { psz };
            for js in 0..grid.ws {
                let x0 = js * stride;
                let pw = if js + 1 == grid.ws { w - x0 } else { psz };
                let k = is * grid.ws + js;
                let (u, v) = (grid.sx[k], grid.sy[k]);
                // Inside the replicated border, sampling equals clamping to the image.
                let x = (x0 as f32 + u).clamp(1.0 - b, (w + level.border - pw - 2) as f32);
                let y = (y0 as f32 + v).clamp(1.0 - b, (h + level.border - ph - 2) as f32);
                let (xi, yi) = (super::floor(x), super::floor(y));
                let (ax, ay) = (x - xi as f32, y - yi as f32);
                let (w00, w01) = ((1.0 - ax) * (1.0 - ay), ax * (1.0 - ay));
                let (w10, w11) = ((1.0 - ax) * ay, ax * ay);
                let tap = level.i1_index(xi, yi);
                for r in 0..ph {
                    let o = (y0 + r) * w + x0;
                    let a = &level.i0[o..][..pw];
                    let t0 = &level.i1e[tap + r * ew..][..pw + 1];
                    let t1 = &level.i1e[tap + (r + 1) * ew..][..pw + 1];
                    let au = &mut self.u[o..][..pw];
                    let av = &mut self.v[o..][..pw];
                    let aw = &mut self.weight[o..][..pw];
                    for c in 0..pw {
                        let d =
                            w00 * t0[c] + w01 * t0[c + 1] + w10 * t1[c] + w11 * t1[c + 1] - a[c];
                        let coef = 1.0 / d.abs().max(1.0);
                        au[c] += coef * u;
                        av[c] += coef * v;
                        aw[c] += coef;
                    }
                }
            }
        }
        for (((ux, uy), &su), (&sv, &sw)) in level
            .ux
            .iter_mut()
            .zip(level.uy.iter_mut())
            .zip(&self.u)
            .zip(self.v.iter().zip(&self.weight))
        {
            let inv = 1.0 / sw;
            *ux = su * inv;
            *uy = sv * inv;
        }
    }
}

#[cfg(test)]
impl Accumulators {
    /// Address and capacity of every buffer (to check that nothing is reallocated).
    pub fn fingerprint(&self, out: &mut Vec<(usize, usize)>) {
        for v in [&self.u, &self.v, &self.weight] {
            out.push((v.as_ptr() as usize, v.capacity()));
        }
    }
}
