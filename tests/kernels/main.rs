//! Kernels: the fused convolution, BatchNorm, pooling and LIF kernels against burn's ops and the
//! reference path, the golden LIF vectors of the PyTorch reference, and gradient checks.

#[path = "../common/mod.rs"]
mod common;

mod fused_bn_lif;
mod fused_conv;
mod fused_conv_bn_lif;
mod fused_layers;
mod golden_lif;
mod gradcheck;
mod policy;
