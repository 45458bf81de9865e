//! Layers for multi-step SNNs over `[T, B, ...]` tensors.
//!
//! Stateless layers (conv, BN, pooling, linear) run on the time-flattened tensor `[T·B, ...]`
//! (SpikingJelly's `SeqToANNContainer`, TET's `SeqToANNContainer`), so **BatchNorm statistics
//! are taken over T·B·H·W per channel** — the convention of the reference. [`seq`] is the one
//! place that flattens and restores time.
//!
//! * [`ConvBn`]: Conv2d + BatchNorm2d over flattened time, with the tdBN option
//!   (Zheng et al., "Going Deeper With Directly-Trained Larger Spiking Neural Networks",
//!   AAAI 2021, arXiv 2011.05280): BN over T·B·H·W whose affine scale starts at `α·V_th`.
//! * [`Pool`]: average or max pooling per timestep.
//! * [`SharedDropout`]: one dropout mask per sample, shared by all timesteps.
//! * [`Encoder`]: direct (repeat the static input over T) or Poisson/rate coding.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, check_range};
use crate::kernels::{KernelPolicy, SetKernels};

pub mod fused_bn;
pub mod fused_bn_lif;
pub mod fused_conv;
pub mod fused_conv_bn_lif;
pub mod fused_ops;
pub mod fused_pool;
pub mod sync_bn;
pub use crate::kernels::LayerPath;

/// Applies a per-frame function to `[T, B, C, H, W]` by flattening time into the batch.
pub fn seq<F>(x: Tensor<5>, f: F) -> Tensor<5>
where
    F: FnOnce(Tensor<4>) -> Tensor<4>,
{
    let [t, b, c, h, w] = x.dims();
    let y = f(x.reshape([t * b, c, h, w]));
    let [_, c2, h2, w2] = y.dims();
    y.reshape([t, b, c2, h2, w2])
}

/// Normalisation used after each convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Norm {
    /// BatchNorm2d over T·B·H·W (the TET/TKS convention), γ = 1 at start.
    #[default]
    Bn,
    /// tdBN: the same statistics, γ starts at `alpha · threshold`.
    TdBn {
        /// The α of tdBN (1, or 1/√2 before a residual addition).
        alpha: f64,
    },
    /// No normalisation (the conv keeps its bias).
    None,
}

/// Conv2d (3×3 by default) + normalisation, applied per timestep.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// The normalisation, `None` when disabled.
    pub bn: Option<BatchNorm>,
    /// Which conv and BN kernels run ([`KernelPolicy::layers`], [`KernelPolicy::conv_mode`]).
    #[module(skip)]
    pub kernels: KernelPolicy,
}

impl SetKernels for ConvBn {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        self.kernels = *policy;
    }
}

impl ConvBn {
    /// A `kernel×kernel` conv with `stride` and "same"-style padding `kernel/2`, then `norm`.
    /// `threshold` is the following neuron's threshold (used by tdBN).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        bias: bool,
        norm: Norm,
        threshold: f64,
        device: &Device,
    ) -> Self {
        let conv = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                kernel / 2,
                kernel / 2,
                kernel / 2,
                kernel / 2,
            ))
            .with_bias(bias || matches!(norm, Norm::None))
            // Kaiming-normal, fan_out, ReLU gain: the init of TET's and TKS's code.
            .with_initializer(Initializer::KaimingNormal {
                gain: std::f64::consts::SQRT_2,
                fan_out_only: true,
            })
            .init(device);
        let bn = match norm {
            Norm::None => None,
            Norm::Bn => Some(BatchNormConfig::new(out_channels).init(device)),
            Norm::TdBn { alpha } => {
                let mut bn = BatchNormConfig::new(out_channels).init(device);
                bn.gamma = Param::from_tensor(Tensor::<1>::full(
                    [out_channels],
                    alpha * threshold,
                    device,
                ));
                Some(bn)
            }
        };
        Self {
            conv,
            bn,
            kernels: KernelPolicy::default(),
        }
    }

    /// `[T, B, C_in, H, W]` → `[T, B, C_out, H', W']`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        seq(x, |x| {
            let (y, folded) = self.conv(x);
            match &self.bn {
                Some(_) if folded => y,
                Some(bn) if self.synchronised(bn, &y) => {
                    sync_bn::forward_train(bn, y, self.kernels.bn_sync.expect("checked"))
                }
                Some(bn) if self.kernels.layers == LayerPath::Fused => fused_bn::forward(bn, y),
                Some(bn) => bn.forward(y),
                None => y,
            }
        })
    }

    /// Whether `bn` takes its training statistics over every rank ([`sync_bn`]) for `y`.
    fn synchronised(&self, bn: &BatchNorm, y: &Tensor<4>) -> bool {
        self.kernels.bn_sync.is_some()
            && fused_bn::uses_batch_statistics(bn, y)
            && sync_bn::supports(y)
    }

    /// The convolution of `x` `[T·B, C_in, H, W]`, and whether the BatchNorm is already folded
    /// into it (inference on the fused path).
    pub fn conv(&self, x: Tensor<4>) -> (Tensor<4>, bool) {
        let fused = self.kernels.layers == LayerPath::Fused && fused_conv::supports(&self.conv, &x);
        let folded =
            (self.bn.as_ref()).filter(|bn| fused && !fused_bn::uses_batch_statistics(bn, &x));
        let y = match folded {
            Some(bn) => fused_conv::forward_folded_bn(&self.conv, bn, x.clone(), &self.kernels),
            None if fused => fused_conv::forward(&self.conv, x.clone(), &self.kernels),
            None => self.conv.forward(x.clone()),
        };
        crate::monitor::record_conv(&x, &y, &self.conv);
        (y, folded.is_some())
    }
}

/// Pooling kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Average pooling (TET/TKS's VGG-SNN).
    #[default]
    Avg,
    /// Max pooling.
    Max,
}

/// The pooling op of a [`Pool`].
#[derive(Module, Debug)]
pub enum PoolOp {
    /// Average pooling.
    Avg(AvgPool2d),
    /// Max pooling.
    Max(MaxPool2d),
}

/// Spatial pooling per timestep.
#[derive(Module, Debug)]
pub struct Pool {
    /// The op.
    pub op: PoolOp,
    /// Whether average pooling may run fused ([`KernelPolicy::layers`]).
    #[module(skip)]
    pub kernels: KernelPolicy,
}

impl SetKernels for Pool {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        self.kernels = *policy;
    }
}

impl Pool {
    /// A `kernel×kernel` pool with stride `stride` and padding `padding`.
    pub fn new(kind: PoolKind, kernel: usize, stride: usize, padding: usize) -> Self {
        let pad = PaddingConfig2d::Explicit(padding, padding, padding, padding);
        let op = match kind {
            PoolKind::Avg => PoolOp::Avg(
                AvgPool2dConfig::new([kernel, kernel])
                    .with_strides([stride, stride])
                    .with_padding(pad)
                    .init(),
            ),
            PoolKind::Max => PoolOp::Max(
                MaxPool2dConfig::new([kernel, kernel])
                    .with_strides([stride, stride])
                    .with_padding(pad)
                    .init(),
            ),
        };
        Self {
            op,
            kernels: KernelPolicy::default(),
        }
    }

    /// `[T, B, C, H, W]` → `[T, B, C, H', W']`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let fused = self.kernels.layers == LayerPath::Fused;
        seq(x, |x| match &self.op {
            PoolOp::Avg(p) if fused && Self::fusable(p, &x) => {
                fused_pool::avg_pool(x, p.kernel_size[0])
            }
            PoolOp::Avg(p) => p.forward(x),
            PoolOp::Max(p) => p.forward(x),
        })
    }

    /// Whether the fused k×k / stride k average pool computes exactly what `p` does on `x`.
    fn fusable(p: &AvgPool2d, x: &Tensor<4>) -> bool {
        let pad = match p.padding {
            PaddingConfig2d::Valid => 0,
            PaddingConfig2d::Explicit(a, b, c, d) if a == b && b == c && c == d => a,
            _ => return false,
        };
        !p.ceil_mode && fused_pool::supports(x, p.kernel_size, p.stride, pad)
    }
}

/// Dropout whose mask is drawn once per sample and shared by every timestep, so a dropped
/// unit stays silent for the whole sequence. Active only on an autodiff device.
#[derive(Module, Debug)]
pub struct SharedDropout {
    /// Probability of dropping a unit.
    pub prob: f64,
}

impl SharedDropout {
    /// A dropout with drop probability `prob` in `[0, 1)`.
    pub fn new(prob: f64) -> Result<Self, ConfigError> {
        check_range("dropout", prob, 0.0, 0.999)?;
        Ok(Self { prob })
    }

    /// `[T, B, ...]` → `[T, B, ...]`, with one mask `[1, B, ...]` broadcast over T.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.prob == 0.0 || !x.device().is_autodiff() {
            return x;
        }
        let mut dims = x.dims();
        dims[0] = 1;
        let keep = 1.0 - self.prob;
        let mask = Tensor::<D>::random(dims, Distribution::Bernoulli(keep), &x.device()).detach();
        x * mask.div_scalar(keep)
    }
}

/// How a static input becomes a sequence of T frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoder {
    /// Repeat the analogue input at every timestep (the first layer acts as the encoder).
    #[default]
    Direct,
    /// Poisson/rate coding: at each step a pixel spikes with probability equal to its intensity
    /// (clamped to `[0, 1]`).
    Poisson,
}

impl Encoder {
    /// `[B, ...]` → `[T, B, ...]`.
    pub fn encode<const D: usize, const D1: usize>(
        &self,
        x: Tensor<D>,
        timesteps: usize,
    ) -> Tensor<D1> {
        assert_eq!(D1, D + 1, "encoder output rank must be input rank + 1");
        let x: Tensor<D1> = x.unsqueeze_dim(0);
        let repeated = x.repeat_dim(0, timesteps);
        match self {
            Encoder::Direct => repeated,
            Encoder::Poisson => {
                let p = repeated.clamp(0.0, 1.0);
                let u = p.random_like(Distribution::Uniform(0.0, 1.0));
                u.lower(p).float().detach()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_flattens_time_into_batch() {
        let device = Device::flex();
        let cb = ConvBn::new(2, 4, 3, 2, true, Norm::Bn, 1.0, &device);
        let y = cb.forward(Tensor::<5>::ones([3, 2, 2, 8, 8], &device));
        assert_eq!(y.dims(), [3, 2, 4, 4, 4]);
        let p = Pool::new(PoolKind::Max, 2, 2, 0);
        assert_eq!(p.forward(y).dims(), [3, 2, 4, 2, 2]);
    }

    #[test]
    fn tdbn_scales_gamma_by_threshold() {
        let device = Device::flex();
        let cb = ConvBn::new(2, 4, 3, 1, false, Norm::TdBn { alpha: 1.0 }, 0.5, &device);
        let g: Vec<f32> = cb
            .bn
            .unwrap()
            .gamma
            .val()
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(g, vec![0.5; 4]);
    }

    #[test]
    fn dropout_mask_is_shared_over_time() {
        let device = Device::flex().autodiff();
        let d = SharedDropout::new(0.5).unwrap();
        let y = d.forward(Tensor::<3>::ones([4, 8, 16], &device));
        let v: Vec<f32> = y.to_data().try_to_vec::<f32>().unwrap();
        let frame = 8 * 16;
        for t in 1..4 {
            assert_eq!(&v[..frame], &v[t * frame..(t + 1) * frame]);
        }
        assert!(v.contains(&0.0) && v.contains(&2.0));
        assert!(SharedDropout::new(1.5).is_err());
    }

    #[test]
    fn encoders() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[0.0, 1.0, 0.25]], &device);
        let d: Tensor<3> = Encoder::Direct.encode(x.clone(), 4);
        assert_eq!(d.dims(), [4, 1, 3]);
        let p: Vec<f32> = Encoder::Poisson
            .encode::<2, 3>(x, 400)
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        let col = |c: usize| p.iter().skip(c).step_by(3).sum::<f32>() / 400.0;
        assert_eq!(col(0), 0.0);
        assert_eq!(col(1), 1.0);
        assert!((col(2) - 0.25).abs() < 0.08, "rate {}", col(2));
        assert!(p.iter().all(|&v| v == 0.0 || v == 1.0));
    }
}

/// Conv + norm + spiking neuron: TET's `ConvBNLIF` / SpikingJelly's conv-BN-LIF block.
#[derive(Module, Debug)]
pub struct ConvBnSpike {
    /// Conv + BN.
    pub conv_bn: ConvBn,
    /// The spiking neuron.
    pub neuron: crate::neuron::Neuron,
}

impl SetKernels for ConvBnSpike {
    fn set_kernels(&mut self, policy: &KernelPolicy) {
        self.conv_bn.set_kernels(policy);
        self.neuron.set_kernels(policy);
    }
}

impl ConvBnSpike {
    /// A 3×3 (or `kernel`) conv block with the given neuron.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        norm: Norm,
        neuron: &crate::neuron::NeuronConfig,
        device: &Device,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            conv_bn: ConvBn::new(
                in_channels,
                out_channels,
                kernel,
                stride,
                true,
                norm,
                neuron.threshold,
                device,
            ),
            neuron: neuron.init(device)?,
        })
    }

    /// `[T, B, C_in, H, W]` → spikes `[T, B, C_out, H', W']`.
    ///
    /// In training on the fused paths, BatchNorm and a LIF/IF neuron run as one op
    /// ([`fused_bn_lif`]), or with [`KernelPolicy::recompute_conv`] the conv too
    /// ([`fused_conv_bn_lif`]: no conv output kept for the backward).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let spikes = match &self.conv_bn.bn {
            Some(bn) if fused_bn_lif::supports(bn, &self.neuron, &self.conv_bn.kernels, &x) => {
                let steps = x.dims()[0];
                let (conv, policy) = (&self.conv_bn.conv, &self.conv_bn.kernels);
                seq(x, |x| {
                    if fused_conv_bn_lif::supports(conv, policy, &x) {
                        fused_conv_bn_lif::forward_train(
                            conv,
                            bn,
                            &self.neuron.config,
                            x,
                            steps,
                            policy,
                        )
                    } else {
                        let (y, _) = self.conv_bn.conv(x);
                        fused_bn_lif::forward_train(bn, &self.neuron.config, y, steps)
                    }
                })
            }
            _ => self.neuron.forward(self.conv_bn.forward(x)),
        };
        crate::monitor::record_spikes(&spikes);
        spikes
    }
}
