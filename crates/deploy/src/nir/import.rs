//! A NIR [`Graph`] → a `tks` model of an existing architecture.
//!
//! The graph must be one chain `Input → … → Output` (every node one edge in, one edge out)
//! whose layers read as `Conv2d → LIF|IF` blocks, `AvgPool2d`, `Flatten`, `Affine|Linear`, in
//! the order of the small CNN (`block, pool, block, pool, flatten, dense`) or VGG-SNN
//! (`[block, block, pool] × 4, flatten, dense`, width found from the channel counts). Convs are
//! 3×3, stride 1, padding 1 with a bias (the folded BatchNorm of an export); the model gets
//! `norm = none`, so it computes exactly those convolutions. Every neuron must share one
//! configuration: `v_leak = 0`, `v_reset = 0`, one τ, R and threshold over all neurons and
//! layers (see [`super`] for the mapping, with `dt` from the graph's metadata or 1e-4).
//! Anything else is an error naming the node and its type.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::{Array, DT, Graph, Node};
use crate::error::NirError;
use tks_core::kernels::KernelPolicy;
use tks_core::layer::{Norm, PoolKind};
use tks_core::model::{Model, ModelConfig, SmallCnnConfig, VggSnnConfig};
use tks_core::neuron::{NeuronConfig, NeuronKind};

/// Channels of VGG-SNN's eight convs before the width multiplier.
const VGG_CHANNELS: [usize; 8] = [64, 128, 256, 256, 512, 512, 512, 512];

/// One layer of the chain, checked against its input shape.
enum Op<'a> {
    Conv {
        name: &'a str,
        weight: &'a Array<f32>,
        bias: &'a [f32],
    },
    Neuron {
        name: &'a str,
        kind: NeuronKind,
        decay: f64,
        threshold: f64,
    },
    Pool,
    Flatten,
    Dense {
        name: &'a str,
        weight: &'a Array<f32>,
        bias: Option<&'a [f32]>,
    },
}

struct Ctx<'a> {
    origin: &'a str,
    graph: &'a Graph,
}

impl Ctx<'_> {
    fn node_err(&self, name: &str, what: impl Into<String>) -> NirError {
        NirError::Node {
            origin: self.origin.into(),
            node: name.into(),
            kind: self.graph.nodes.get(name).map_or("?", |n| n.kind()).into(),
            what: what.into(),
        }
    }

    fn graph_err(&self, what: impl Into<String>) -> NirError {
        NirError::Graph {
            origin: self.origin.into(),
            what: what.into(),
        }
    }
}

/// The imported model: its `[model]` configuration and the network with the graph's weights.
pub struct Imported {
    /// The architecture it was mapped onto (`norm = none`).
    pub config: ModelConfig,
    /// The network.
    pub model: Model,
}

/// Maps `graph` onto a `tks` architecture; `origin` names the file in errors.
pub fn import(
    graph: &Graph,
    origin: &str,
    base_neuron: NeuronConfig,
    kernels: &KernelPolicy,
    device: &Device,
) -> Result<Imported, NirError> {
    let ctx = Ctx { origin, graph };
    let (input, chain) = chain(&ctx)?;
    let dt = graph.meta_number("dt").unwrap_or(DT);
    let ops = parse_ops(&ctx, &input, &chain, dt)?;
    let [c, h, w] = input[..] else {
        return Err(ctx.graph_err(format!("the input shape {input:?} is not [C, H, W]")));
    };
    if h != w {
        return Err(ctx.graph_err(format!(
            "the input is {h}×{w}; tks models take square frames"
        )));
    }
    // One neuron configuration for the whole model.
    let mut neuron: Option<(&str, NeuronKind, f64, f64)> = None;
    for op in &ops {
        if let Op::Neuron {
            name,
            kind,
            decay,
            threshold,
        } = *op
        {
            match neuron {
                None => neuron = Some((name, kind, decay, threshold)),
                Some((first, k, d, t)) if (k, d, t) != (kind, decay, threshold) => {
                    return Err(ctx.node_err(
                        name,
                        format!("its neurons differ from `{first}`'s ({kind:?} β={decay} θ={threshold} vs {k:?} β={d} θ={t}); a tks model has one neuron configuration"),
                    ));
                }
                _ => {}
            }
        }
    }
    let Some((_, kind, decay, threshold)) = neuron else {
        return Err(ctx.graph_err("the graph has no LIF or IF node"));
    };
    let neuron = NeuronConfig {
        kind,
        decay: if kind == NeuronKind::Lif {
            decay
        } else {
            base_neuron.decay
        },
        threshold,
        ..base_neuron
    };
    let signature: Vec<&str> = ops
        .iter()
        .map(|op| match op {
            Op::Conv { .. } => "conv",
            Op::Neuron { .. } => "spike",
            Op::Pool => "pool",
            Op::Flatten => "flatten",
            Op::Dense { .. } => "dense",
        })
        .collect();
    let convs: Vec<(&str, &Array<f32>, &[f32])> = ops
        .iter()
        .filter_map(|op| match *op {
            Op::Conv { name, weight, bias } => Some((name, weight, bias)),
            _ => None,
        })
        .collect();
    let Some(&Op::Dense {
        name: dense_name,
        weight: dense_w,
        bias: dense_b,
    }) = ops.last()
    else {
        return Err(ctx.graph_err("the graph does not end in an Affine or Linear node"));
    };
    let classes = dense_w.shape[0];
    let small = [
        "conv", "spike", "pool", "conv", "spike", "pool", "flatten", "dense",
    ];
    let mut vgg: Vec<&str> = Vec::new();
    for _ in 0..4 {
        vgg.extend(["conv", "spike", "conv", "spike", "pool"]);
    }
    vgg.extend(["flatten", "dense"]);
    let config = if signature == small {
        ModelConfig::SmallCnn(SmallCnnConfig {
            in_channels: c.into(),
            input_size: h.into(),
            channels: [convs[0].1.shape[0], convs[1].1.shape[0]],
            num_classes: classes.into(),
            norm: Norm::None,
            neuron,
        })
    } else if signature == vgg {
        let actual: Vec<usize> = convs.iter().map(|(_, w, _)| w.shape[0]).collect();
        let scaled = |c: usize, w: f64| ((c as f64 * w).round() as usize).max(1);
        let fits = |w: f64| {
            VGG_CHANNELS
                .iter()
                .zip(&actual)
                .all(|(&c, &a)| scaled(c, w) == a)
        };
        let width = [
            actual[0] as f64 / 64.0,
            actual[7] as f64 / 512.0,
            actual[2] as f64 / 256.0,
        ]
        .into_iter()
        .find(|&w| fits(w))
        .ok_or_else(|| {
            ctx.graph_err(format!(
                "conv channels {actual:?} are no width multiple of VGG-SNN's {VGG_CHANNELS:?}"
            ))
        })?;
        ModelConfig::VggSnn(VggSnnConfig {
            in_channels: c.into(),
            input_size: h.into(),
            width,
            num_classes: classes.into(),
            norm: Norm::None,
            pool: PoolKind::Avg,
            neuron,
        })
    } else {
        return Err(ctx.graph_err(format!(
            "the layer sequence [{}] matches no tks architecture (small_cnn: [{}]; vgg_snn: [{}])",
            signature.join(", "),
            small.join(", "),
            vgg.join(", ")
        )));
    };
    config.validate()?;
    let mut model = config.init_with(device, kernels)?;
    let weights = |a: &Array<f32>| -> Tensor<4> {
        let s = &a.shape;
        Tensor::from_data(
            TensorData::new(a.values.clone(), [s[0], s[1], s[2], s[3]]),
            device,
        )
    };
    let vector = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
    let mut targets: Vec<&mut burn::nn::conv::Conv2d> = Vec::new();
    let classifier = match &mut model {
        Model::SmallCnn(m) => {
            targets.push(&mut m.block1.conv_bn.conv);
            targets.push(&mut m.block2.conv_bn.conv);
            &mut m.classifier
        }
        Model::VggSnn(m) => {
            for s in &mut m.stages {
                targets.push(&mut s.conv_a.conv_bn.conv);
                targets.push(&mut s.conv_b.conv_bn.conv);
            }
            &mut m.classifier
        }
        _ => unreachable!("only small_cnn and vgg_snn are built above"),
    };
    for (conv, (name, w, b)) in targets.into_iter().zip(&convs) {
        if conv.weight.val().dims().to_vec() != w.shape {
            return Err(ctx.node_err(
                name,
                format!(
                    "weight {:?} does not fit the model's {:?}",
                    w.shape,
                    conv.weight.val().dims()
                ),
            ));
        }
        conv.weight = Param::from_tensor(weights(w));
        conv.bias = Some(Param::from_tensor(vector(b)));
    }
    let [out, fan_in] = [dense_w.shape[0], dense_w.shape[1]];
    if classifier.weight.val().dims() != [fan_in, out] {
        return Err(ctx.node_err(
            dense_name,
            format!(
                "weight [{out}, {fan_in}] does not fit the model's classifier {:?}",
                classifier.weight.val().dims()
            ),
        ));
    }
    let w = Tensor::<2>::from_data(
        TensorData::new(dense_w.values.clone(), [out, fan_in]),
        device,
    );
    classifier.weight = Param::from_tensor(w.transpose());
    let zeros = vec![0.0; out];
    classifier.bias = Some(Param::from_tensor(vector(dense_b.unwrap_or(&zeros))));
    Ok(Imported { config, model })
}

/// The graph's input shape and its nodes from the Input to the Output, both excluded.
fn chain<'a>(ctx: &Ctx<'a>) -> Result<(Vec<usize>, Vec<&'a str>), NirError> {
    let g = ctx.graph;
    for (a, b) in &g.edges {
        for n in [a, b] {
            if !g.nodes.contains_key(n) {
                return Err(ctx.graph_err(format!(
                    "edge ({a}, {b}) names node `{n}`, which the graph does not have"
                )));
            }
        }
    }
    let of_kind = |k: &str| {
        g.nodes
            .iter()
            .filter(|(_, n)| n.kind() == k)
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
    };
    let (inputs, outputs) = (of_kind("Input"), of_kind("Output"));
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(ctx.graph_err(format!("tks imports graphs with one Input and one Output node, found inputs {inputs:?} and outputs {outputs:?}")));
    }
    let Node::Input { shape } = &g.nodes[inputs[0]] else {
        unreachable!()
    };
    let input = shape
        .iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            ctx.node_err(
                inputs[0],
                format!("shape {shape:?} has a non-positive dimension"),
            )
        })?;
    let mut order = Vec::new();
    let mut at = inputs[0];
    loop {
        let next: Vec<&str> = g
            .edges
            .iter()
            .filter(|(a, _)| a == at)
            .map(|(_, b)| b.as_str())
            .collect();
        let [next] = next[..] else {
            return Err(ctx.node_err(
                at,
                format!(
                    "has {} outgoing edges; tks imports chains (one edge out of every node)",
                    next.len()
                ),
            ));
        };
        let into = g.edges.iter().filter(|(_, b)| b == next).count();
        if into != 1 {
            return Err(ctx.node_err(next, format!("sums {into} incoming edges (a residual connection); tks imports chains onto small_cnn and vgg_snn")));
        }
        if next == outputs[0] {
            break;
        }
        if order.contains(&next) || order.len() > g.nodes.len() {
            return Err(ctx.node_err(next, "is on a cycle"));
        }
        order.push(next);
        at = next;
    }
    if order.len() + 2 != g.nodes.len() {
        let stray: Vec<&str> = g
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|n| !order.contains(n) && *n != inputs[0] && *n != outputs[0])
            .collect();
        return Err(ctx.graph_err(format!(
            "nodes {stray:?} are not on the path from the input to the output"
        )));
    }
    Ok((input, order))
}

/// The one value of a full-shape parameter, which must be uniform and of the input's shape.
fn uniform(
    ctx: &Ctx,
    name: &str,
    field: &str,
    a: &Array<f64>,
    shape: &[usize],
) -> Result<f64, NirError> {
    if a.shape != shape && a.values.len() != 1 {
        return Err(ctx.node_err(
            name,
            format!(
                "`{field}` has shape {:?}, the node's input is {shape:?}",
                a.shape
            ),
        ));
    }
    let v = *a
        .values
        .first()
        .ok_or_else(|| ctx.node_err(name, format!("`{field}` is empty")))?;
    if a.values.iter().any(|&x| x != v) {
        return Err(ctx.node_err(
            name,
            format!("`{field}` differs between neurons; a tks layer shares one value"),
        ));
    }
    Ok(v)
}

/// The chain as [`Op`]s, every node checked against the shape flowing into it.
fn parse_ops<'a>(
    ctx: &Ctx<'a>,
    input: &[usize],
    chain: &[&'a str],
    dt: f64,
) -> Result<Vec<Op<'a>>, NirError> {
    let mut shape = input.to_vec();
    let mut ops = Vec::with_capacity(chain.len());
    for &name in chain {
        let err = |what: String| ctx.node_err(name, what);
        let node = &ctx.graph.nodes[name];
        match node {
            Node::Conv2d {
                weight,
                bias,
                stride,
                padding,
                dilation,
                groups,
                input_shape,
            } => {
                let s = &weight.shape;
                if shape.len() != 3 || s[1] != shape[0] {
                    return Err(err(format!(
                        "weight {s:?} does not take the input {shape:?}"
                    )));
                }
                if let Some(hw) = input_shape
                    && hw.iter().zip(&shape[1..]).any(|(&a, &b)| a != b as i64)
                {
                    return Err(err(format!(
                        "input_shape {hw:?} differs from the graph's {:?}",
                        &shape[1..]
                    )));
                }
                if s[2..] != [3, 3]
                    || *stride != [1, 1]
                    || *padding != [1, 1]
                    || *dilation != [1, 1]
                    || *groups != 1
                {
                    return Err(err(format!(
                        "kernel {:?}, stride {stride:?}, padding {padding:?}, dilation {dilation:?}, groups {groups}: tks's small_cnn and vgg_snn convs are 3×3, stride 1, padding 1, dilation 1, one group",
                        &s[2..]
                    )));
                }
                if bias.len() != s[0] {
                    return Err(err(format!(
                        "bias has {} values for {} output channels",
                        bias.len(),
                        s[0]
                    )));
                }
                shape[0] = s[0];
                ops.push(Op::Conv { name, weight, bias });
            }
            Node::Lif {
                tau,
                r,
                v_leak,
                v_threshold,
                v_reset,
            } => {
                let tau = uniform(ctx, name, "tau", tau, &shape)?;
                let r = uniform(ctx, name, "r", r, &shape)?;
                let threshold = uniform(ctx, name, "v_threshold", v_threshold, &shape)?;
                for (field, a) in [("v_leak", v_leak), ("v_reset", v_reset)] {
                    if uniform(ctx, name, field, a, &shape)? != 0.0 {
                        return Err(err(format!("`{field}` ≠ 0 has no tks equivalent")));
                    }
                }
                let decay = 1.0 - dt / tau;
                if !(tau > 0.0 && (0.0..1.0).contains(&decay)) {
                    return Err(err(format!(
                        "τ = {tau} with dt = {dt} gives β = 1 − dt/τ = {decay}, outside [0, 1)"
                    )));
                }
                if ((r * dt / tau) - 1.0).abs() > 1e-6 {
                    return Err(err(format!(
                        "input scale R·dt/τ = {} ≠ 1 (R = {r}, τ = {tau}, dt = {dt}); tks's LIF adds its input unscaled",
                        r * dt / tau
                    )));
                }
                if threshold.is_nan() || threshold <= 0.0 {
                    return Err(err(format!("threshold {threshold} must be positive")));
                }
                ops.push(Op::Neuron {
                    name,
                    kind: NeuronKind::Lif,
                    decay,
                    threshold,
                });
            }
            Node::If {
                r,
                v_threshold,
                v_reset,
            } => {
                let r = uniform(ctx, name, "r", r, &shape)?;
                let threshold = uniform(ctx, name, "v_threshold", v_threshold, &shape)?;
                if uniform(ctx, name, "v_reset", v_reset, &shape)? != 0.0 {
                    return Err(err("`v_reset` ≠ 0 has no tks equivalent".into()));
                }
                if r != 1.0 {
                    return Err(err(format!(
                        "R = {r}: tks's IF adds its input unscaled (R = 1)"
                    )));
                }
                if threshold.is_nan() || threshold <= 0.0 {
                    return Err(err(format!("threshold {threshold} must be positive")));
                }
                ops.push(Op::Neuron {
                    name,
                    kind: NeuronKind::If,
                    decay: 1.0,
                    threshold,
                });
            }
            Node::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => {
                if *kernel_size != [2, 2] || *stride != [2, 2] || *padding != [0, 0] {
                    return Err(err(format!(
                        "kernel {kernel_size:?}, stride {stride:?}, padding {padding:?}: tks's pools are 2×2, stride 2, no padding"
                    )));
                }
                if shape.len() != 3 || !shape[1].is_multiple_of(2) || !shape[2].is_multiple_of(2) {
                    return Err(err(format!("input {shape:?} does not halve evenly")));
                }
                shape = vec![shape[0], shape[1] / 2, shape[2] / 2];
                ops.push(Op::Pool);
            }
            Node::Flatten {
                start_dim, end_dim, ..
            } => {
                // Without the batch dimension [C, H, W] flattens with start 0; start 1 is the
                // batched PyTorch habit, accepted when it flattens the same [C, H, W].
                if !matches!((*start_dim, *end_dim), (0, -1) | (0, 2)) {
                    return Err(err(format!(
                        "start_dim {start_dim}, end_dim {end_dim}: tks flattens a whole [C, H, W] frame (0, −1)"
                    )));
                }
                shape = vec![shape.iter().product()];
                ops.push(Op::Flatten);
            }
            Node::Affine { weight, .. } | Node::Linear { weight } if weight.shape.len() == 2 => {
                if shape != [weight.shape[1]] {
                    return Err(err(format!(
                        "weight {:?} does not take the input {shape:?}",
                        weight.shape
                    )));
                }
                let bias = match node {
                    Node::Affine { bias, .. } if bias.len() != weight.shape[0] => {
                        return Err(err(format!(
                            "bias has {} values for {} outputs",
                            bias.len(),
                            weight.shape[0]
                        )));
                    }
                    Node::Affine { bias, .. } => Some(bias.as_slice()),
                    _ => None,
                };
                shape = vec![weight.shape[0]];
                ops.push(Op::Dense { name, weight, bias });
            }
            Node::Affine { weight, .. } | Node::Linear { weight } => {
                return Err(err(format!(
                    "weight has shape {:?}, expected [out, in]",
                    weight.shape
                )));
            }
            other => {
                return Err(err(format!(
                    "type {} has no tks layer (tks imports Conv2d, LIF, IF, AvgPool2d, Flatten, Affine, Linear)",
                    other.kind()
                )));
            }
        }
    }
    Ok(ops)
}
