//! The scalar surrogate derivatives `g(v)`: each formula written once, generic over the float
//! type, with its parameter terms precomputed. The fused kernels evaluate them in f32 inside
//! their inner loops ([`Surrogate::with_grad`] picks the concrete type once, outside the loop,
//! so each kernel is monomorphised for one surrogate); [`Surrogate::derivative`] evaluates the
//! same code in f64 for tests.
//!
//! The parameter terms are computed in f64 and then converted, so the f32 form of a surrogate
//! is the f64 formula with its constants rounded once.

use std::f64::consts::PI;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::Surrogate;

/// A float type the surrogate formulas run in: f32 (the kernels) or f64 (the reference).
pub trait Real:
    Copy
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// 2.
    const TWO: Self;
    /// `v` rounded to this type.
    fn from_f64(v: f64) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// The larger of `self` and `other` (the std `max`).
    fn max(self, other: Self) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
}

macro_rules! real {
    ($t:ident) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const TWO: Self = 2.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $t::exp(self)
            }
        }
    };
}
real!(f32);
real!(f64);

/// A surrogate derivative with its parameter, evaluated per element.
pub trait Grad<F: Real = f32>: Copy + Send + Sync {
    /// `g(v)`.
    fn g(self, v: F) -> F;
}

/// Triangle: `max(0, γ − |v|)/γ²`.
#[derive(Clone, Copy, Debug)]
pub struct Triangle<F = f32> {
    gamma: F,
    inv_g2: F,
}
impl<F: Real> Grad<F> for Triangle<F> {
    #[inline(always)]
    fn g(self, v: F) -> F {
        (self.gamma - v.abs()).max(F::ZERO) * self.inv_g2
    }
}

/// Sigmoid: `α·σ(αv)·(1 − σ(αv))`.
#[derive(Clone, Copy, Debug)]
pub struct Sigmoid<F = f32> {
    alpha: F,
}
impl<F: Real> Grad<F> for Sigmoid<F> {
    #[inline(always)]
    fn g(self, v: F) -> F {
        let s = F::ONE / (F::ONE + (-self.alpha * v).exp());
        self.alpha * s * (F::ONE - s)
    }
}

/// ATan: `α/2 / (1 + (π/2·α·v)²)`.
#[derive(Clone, Copy, Debug)]
pub struct Atan<F = f32> {
    half_alpha: F,
    k: F,
}
impl<F: Real> Grad<F> for Atan<F> {
    #[inline(always)]
    fn g(self, v: F) -> F {
        let z = self.k * v;
        self.half_alpha / (F::ONE + z * z)
    }
}

/// Rectangle: `1/a` where `|v| < a/2`, else 0.
#[derive(Clone, Copy, Debug)]
pub struct Rectangle<F = f32> {
    half: F,
    height: F,
}
impl<F: Real> Grad<F> for Rectangle<F> {
    #[inline(always)]
    fn g(self, v: F) -> F {
        if v.abs() < self.half {
            self.height
        } else {
            F::ZERO
        }
    }
}

/// Bi-Real: `2 − 2|v|` where `|v| < 1`, else 0.
#[derive(Clone, Copy, Debug)]
pub struct Bireal;
impl<F: Real> Grad<F> for Bireal {
    #[inline(always)]
    fn g(self, v: F) -> F {
        let a = v.abs();
        if a < F::ONE {
            F::TWO - F::TWO * a
        } else {
            F::ZERO
        }
    }
}

/// A callback generic over the concrete surrogate type (closures cannot be generic).
pub trait GradFn<R, F: Real = f32> {
    /// Runs with the concrete surrogate.
    fn call<G: Grad<F>>(self, g: G) -> R;
}

/// Evaluates `g` at one point.
struct At<F>(F);
impl<F: Real> GradFn<F, F> for At<F> {
    #[inline(always)]
    fn call<G: Grad<F>>(self, g: G) -> F {
        g.g(self.0)
    }
}

impl Surrogate {
    /// Calls `f` with the concrete [`Grad`] form of this surrogate in `F` (one match, outside
    /// whatever loop `f` runs).
    pub fn with_grad<F: Real, R>(self, f: impl GradFn<R, F>) -> R {
        let c = F::from_f64;
        match self {
            Surrogate::Triangle { gamma } => f.call(Triangle {
                gamma: c(gamma),
                inv_g2: c(1.0 / (gamma * gamma)),
            }),
            Surrogate::Sigmoid { alpha } => f.call(Sigmoid { alpha: c(alpha) }),
            Surrogate::Atan { alpha } => f.call(Atan {
                half_alpha: c(alpha / 2.0),
                k: c(PI / 2.0 * alpha),
            }),
            Surrogate::Rectangle { width } => f.call(Rectangle {
                half: c(width / 2.0),
                height: c(1.0 / width),
            }),
            Surrogate::Bireal => f.call(Bireal),
        }
    }

    /// `g(v)` in f32, exactly as the fused kernels compute it.
    pub fn grad_f32(self, v: f32) -> f32 {
        self.with_grad(At(v))
    }

    /// `g(v)`: the surrogate derivative at `v = h − threshold`, in f64 (the formula of the
    /// kernels, [`Surrogate::grad_f32`], evaluated in f64).
    pub fn derivative(&self, v: f64) -> f64 {
        self.with_grad(At(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_form_equals_f64_form() {
        let params = [
            Surrogate::Triangle { gamma: 0.7 },
            Surrogate::Sigmoid { alpha: 3.0 },
            Surrogate::Atan { alpha: 2.5 },
            Surrogate::Rectangle { width: 0.8 },
        ];
        for s in Surrogate::all_defaults().into_iter().chain(params) {
            for i in -400..=400 {
                let v = i as f32 * 0.0071 + 0.0003;
                let want = s.derivative(v as f64);
                let got = s.grad_f32(v) as f64;
                assert!(
                    (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{} at {v}: {got} vs {want}",
                    s.name()
                );
            }
        }
    }

    #[test]
    fn formulas_by_hand() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let tri = Surrogate::Triangle { gamma: 0.5 };
        assert!(close(tri.derivative(0.25), 0.25 / 0.25));
        assert_eq!(tri.derivative(0.6), 0.0);
        let sig = Surrogate::Sigmoid { alpha: 4.0 };
        assert!(close(sig.derivative(0.0), 1.0));
        let atan = Surrogate::Atan { alpha: 2.0 };
        assert!(close(atan.derivative(0.0), 1.0));
        assert!(close(atan.derivative(1.0 / PI), 0.5));
        let rect = Surrogate::Rectangle { width: 0.5 };
        assert_eq!((rect.derivative(0.2), rect.derivative(0.25)), (2.0, 0.0));
        assert!(close(Surrogate::Bireal.derivative(-0.25), 1.5));
        assert_eq!(Surrogate::Bireal.derivative(1.0), 0.0);
    }
}
