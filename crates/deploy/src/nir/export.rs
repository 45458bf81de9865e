//! A trained `tks` model → a NIR [`Graph`].
//!
//! Every conv-BN-spike block becomes `Conv2d` (BatchNorm folded in with its running statistics
//! by [`fold_bn`], the very weights the inference path convolves with) → `LIF`/`IF`; pooling
//! becomes `AvgPool2d`; the per-timestep flatten `Flatten(0, −1)`; the classifier `Affine`
//! (weight `[out, in]`). Node names are the model's layer paths with `_` for `.`
//! (`block1_conv`, `stages_2_conv_b_lif`, …) so Python importers can use them as attribute
//! names. Exported: the small CNN and VGG-SNN. ResNet-19 (residual additions into a spiking
//! node, global average pooling, FC-SN-FC head) and SEW-ResNet are refused with the reason.

use burn::module::Module;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::{Array, DT, Graph, Meta, Node};
use crate::error::NirError;
use tks_core::layer::fused_conv::fold_bn;
use tks_core::layer::{ConvBnSpike, Pool, PoolOp};
use tks_core::model::Model;
use tks_core::neuron::{Neuron, NeuronKind, ResetMode};
use tks_train::config::RunConfig;
use tks_train::eval::values;

/// Builds the NIR graph of `model`, trained with `config` (whose TOML goes into the graph's
/// `metadata` as `tks_config`, with `dt`, `reset`, `neuron` and `surrogate`).
pub fn export(model: &Model, config: &RunConfig) -> Result<Graph, NirError> {
    let model = model.valid();
    let [c, h, w] = config.model.input_shape();
    let mut b = Builder::new(vec![c, h, w]);
    match &model {
        Model::SmallCnn(m) => {
            b.block("block1", &m.block1)?;
            b.pool("pool1", &m.pool1)?;
            b.block("block2", &m.block2)?;
            b.pool("pool2", &m.pool2)?;
            b.flatten();
            b.linear("classifier", &m.classifier)?;
        }
        Model::VggSnn(m) => {
            for (i, s) in m.stages.iter().enumerate() {
                b.block(&format!("stages.{i}.conv_a"), &s.conv_a)?;
                b.block(&format!("stages.{i}.conv_b"), &s.conv_b)?;
                b.pool(&format!("stages.{i}.pool"), &s.pool)?;
            }
            b.flatten();
            b.linear("classifier", &m.classifier)?;
        }
        Model::ResNet19(_) => {
            return Err(NirError::Unsupported {
                layer: "resnet19".into(),
                why: "residual blocks (an addition into a spiking node), global average \
                      pooling and the FC-SN-FC head are not exported yet; small_cnn and vgg_snn are"
                    .into(),
            });
        }
        Model::SewResNet(_) => {
            return Err(NirError::Unsupported {
                layer: "sew_resnet".into(),
                why: "SEW connections add spikes after the neuron (ADD) or combine them with \
                      AND/IAND; NIR sums edges into a node's input but has no node for a sum of \
                      spike trains feeding several consumers, or for AND/IAND"
                    .into(),
            });
        }
    }
    let neuron = *config.model.clone().neuron_mut();
    let mut graph = b.finish();
    graph.metadata.insert("dt".into(), Meta::Number(DT));
    graph
        .metadata
        .insert("reset".into(), Meta::Text("hard".into()));
    let kind = serde_json::to_string(&neuron.kind).unwrap_or_default();
    graph
        .metadata
        .insert("neuron".into(), Meta::Text(kind.trim_matches('"').into()));
    let surrogate = serde_json::to_string(&neuron.surrogate).unwrap_or_default();
    graph
        .metadata
        .insert("surrogate".into(), Meta::Text(surrogate));
    graph
        .metadata
        .insert("tks_arch".into(), Meta::Text(config.model.arch().into()));
    if let Ok(text) = toml::to_string(config) {
        graph.metadata.insert("tks_config".into(), Meta::Text(text));
    }
    Ok(graph)
}

/// A sequential graph under construction: the last node and its output shape.
struct Builder {
    graph: Graph,
    last: String,
    shape: Vec<usize>,
    device: Device,
}

fn unsupported(layer: &str, why: impl Into<String>) -> NirError {
    NirError::Unsupported {
        layer: layer.into(),
        why: why.into(),
    }
}

fn ints(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&d| d as i64).collect()
}

/// The symmetric padding of a conv or pool, if it has one.
fn symmetric(p: &PaddingConfig2d) -> Option<usize> {
    match *p {
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Explicit(a, b, c, d) if a == b && b == c && c == d => Some(a),
        _ => None,
    }
}

impl Builder {
    fn new(input: Vec<usize>) -> Self {
        let mut graph = Graph::default();
        graph.nodes.insert(
            "input".into(),
            Node::Input {
                shape: ints(&input),
            },
        );
        Self {
            graph,
            last: "input".into(),
            shape: input,
            device: Device::flex(),
        }
    }

    fn push(&mut self, layer: &str, node: Node, shape: Vec<usize>) {
        let name = layer.replace('.', "_");
        self.graph.edges.push((self.last.clone(), name.clone()));
        self.graph.nodes.insert(name.clone(), node);
        self.last = name;
        self.shape = shape;
    }

    fn block(&mut self, layer: &str, block: &ConvBnSpike) -> Result<(), NirError> {
        let conv = &block.conv_bn.conv;
        let conv_layer = format!("{layer}.conv");
        let pad = symmetric(&conv.padding)
            .ok_or_else(|| unsupported(&conv_layer, "asymmetric padding"))?;
        let (weight, bias) = match &block.conv_bn.bn {
            Some(bn) => fold_bn(conv, bn, &self.device),
            None => {
                let w = conv.weight.val().to_device(&self.device);
                let co = w.dims()[0];
                let b = match &conv.bias {
                    Some(b) => b.val().to_device(&self.device),
                    None => Tensor::zeros([co], &self.device),
                };
                (w, b)
            }
        };
        let dims = weight.dims();
        let [co, ci, kh, kw] = dims;
        let [c, h, w] = self.shape[..] else {
            return Err(unsupported(
                &conv_layer,
                format!("input shape {:?} is not [C, H, W]", self.shape),
            ));
        };
        if ci * conv.groups != c {
            return Err(unsupported(
                &conv_layer,
                format!("{ci}·{} input channels, the input has {c}", conv.groups),
            ));
        }
        let out = |n: usize, k: usize, s: usize, d: usize| (n + 2 * pad - d * (k - 1) - 1) / s + 1;
        let (oh, ow) = (
            out(h, kh, conv.stride[0], conv.dilation[0]),
            out(w, kw, conv.stride[1], conv.dilation[1]),
        );
        let node = Node::Conv2d {
            weight: Array {
                shape: dims.to_vec(),
                values: values(weight),
            },
            bias: values(bias),
            stride: [conv.stride[0] as i64, conv.stride[1] as i64],
            padding: [pad as i64; 2],
            dilation: [conv.dilation[0] as i64, conv.dilation[1] as i64],
            groups: conv.groups as i64,
            input_shape: Some([h as i64, w as i64]),
        };
        self.push(&conv_layer, node, vec![co, oh, ow]);
        self.neuron(&format!("{layer}.lif"), &block.neuron)
    }

    fn neuron(&mut self, layer: &str, neuron: &Neuron) -> Result<(), NirError> {
        let cfg = &neuron.config;
        if cfg.reset == ResetMode::Soft {
            return Err(unsupported(
                layer,
                "soft reset (m = h − θ·s) has no NIR equivalent: NIR's LIF and IF reset to v_reset; \
                 train with [model.neuron] reset = \"hard\"",
            ));
        }
        let shape = self.shape.clone();
        let full = |v: f64| Array::full(&shape, v);
        let theta = cfg.threshold;
        let (kind, node) = match cfg.kind {
            NeuronKind::If => ("IF", if_node(&shape, theta)),
            NeuronKind::Lif if cfg.decay >= 1.0 => ("IF", if_node(&shape, theta)),
            NeuronKind::Lif => {
                let beta = cfg.decay;
                (
                    "LIF",
                    Node::Lif {
                        tau: full(DT / (1.0 - beta)),
                        r: full(1.0 / (1.0 - beta)),
                        v_leak: full(0.0),
                        v_threshold: full(theta),
                        v_reset: full(0.0),
                    },
                )
            }
            NeuronKind::Plif => {
                let w = neuron
                    .plif_w
                    .as_ref()
                    .ok_or_else(|| unsupported(layer, "PLIF without its parameter"))?
                    .val();
                let k = values(burn::tensor::activation::sigmoid(w))[0] as f64;
                (
                    "LIF",
                    Node::Lif {
                        tau: full(DT / k),
                        r: full(1.0),
                        v_leak: full(0.0),
                        v_threshold: full(theta),
                        v_reset: full(0.0),
                    },
                )
            }
            NeuronKind::Relu => {
                return Err(unsupported(
                    layer,
                    "ReLU (ANN mode) is not a spiking neuron; NIR graphs of tks are SNNs",
                ));
            }
        };
        let name = if kind == "IF" {
            layer.replace(".lif", ".if")
        } else {
            layer.to_string()
        };
        self.push(&name, node, shape);
        Ok(())
    }

    fn pool(&mut self, layer: &str, pool: &Pool) -> Result<(), NirError> {
        let PoolOp::Avg(p) = &pool.op else {
            return Err(unsupported(
                layer,
                "max pooling has no NIR node (NIR 1.0 has AvgPool2d and SumPool2d)",
            ));
        };
        let pad = symmetric(&p.padding).ok_or_else(|| unsupported(layer, "asymmetric padding"))?;
        if p.ceil_mode || (pad > 0 && !p.count_include_pad) {
            return Err(unsupported(
                layer,
                "ceil mode or padding excluded from the average",
            ));
        }
        let [c, h, w] = self.shape[..] else {
            return Err(unsupported(
                layer,
                format!("input shape {:?} is not [C, H, W]", self.shape),
            ));
        };
        let [kh, kw] = p.kernel_size;
        let [sh, sw] = p.stride;
        let out = [c, (h + 2 * pad - kh) / sh + 1, (w + 2 * pad - kw) / sw + 1];
        let node = Node::AvgPool2d {
            kernel_size: [kh as i64, kw as i64],
            stride: [sh as i64, sw as i64],
            padding: [pad as i64; 2],
        };
        self.push(layer, node, out.to_vec());
        Ok(())
    }

    fn flatten(&mut self) {
        let node = Node::Flatten {
            start_dim: 0,
            end_dim: -1,
            input_type: Some(ints(&self.shape)),
        };
        let n = self.shape.iter().product();
        self.push("flatten", node, vec![n]);
    }

    fn linear(&mut self, layer: &str, linear: &Linear) -> Result<(), NirError> {
        // burn stores [in, out]; NIR wants [out, in].
        let weight = linear.weight.val().to_device(&self.device);
        let [fan_in, fan_out] = weight.dims();
        if self.shape != [fan_in] {
            return Err(unsupported(
                layer,
                format!("takes {fan_in} inputs, the graph gives {:?}", self.shape),
            ));
        }
        let weight = Array {
            shape: vec![fan_out, fan_in],
            values: values(weight.transpose()),
        };
        let node = match &linear.bias {
            Some(b) => Node::Affine {
                weight,
                bias: values(b.val()),
            },
            None => Node::Linear { weight },
        };
        self.push(layer, node, vec![fan_out]);
        Ok(())
    }

    fn finish(mut self) -> Graph {
        let shape = ints(&self.shape);
        self.graph
            .nodes
            .insert("output".into(), Node::Output { shape });
        self.graph.edges.push((self.last.clone(), "output".into()));
        self.graph
    }
}

fn if_node(shape: &[usize], theta: f64) -> Node {
    Node::If {
        r: Array::full(shape, 1.0),
        v_threshold: Array::full(shape, theta),
        v_reset: Array::full(shape, 0.0),
    }
}
