//! NIR graphs: the in-memory form ([`Graph`], [`Node`]), the HDF5 file layout of Python `nir`
//! 1.0.8 ([`hdf5`]: `/version`, `/node/{type, edges, metadata/, nodes/<name>/}`), export of a
//! `tks` model ([`export`]) and import into one ([`import`]).
//!
//! Shapes have no batch dimension (NIR's convention): a conv's output is `[C, H, W]`, the
//! classifier's `[classes]`. Parameters of neurons are full-shape arrays (one value per
//! neuron, `[C, H, W]`). Several edges into one node are summed.
//!
//! ## The neuron: discrete `tks` → continuous NIR
//!
//! `tks`'s LIF is `h_t = β·m_{t−1} + x_t`, spike `s_t = [h_t > θ]`, hard reset
//! `m_t = h_t·(1 − s_t)`. NIR's LIF is `τ·dv/dt = (v_leak − v) + R·I` with reset to `v_reset`;
//! one forward-Euler step of length `dt` gives `v ← (1 − dt/τ)·v + (dt/τ)·R·I`. With
//! **`dt = 1e-4`, `τ = dt/(1 − β)`, `R = 1/(1 − β)`, `v_leak = 0`, `v_reset = 0`,
//! `v_threshold = θ`** that is exactly `v ← β·v + I` (snnTorch's and SpikingJelly's export,
//! and what snnTorch's `import_from_nir` inverts: `β = 1 − dt/τ`, input scale `R·dt/τ = 1`).
//! IF (`h_t = m_{t−1} + x_t`) is NIR's `IF` (`dv/dt = R·I`) with `R = 1`, `v_reset = 0`: NIR's
//! and snnTorch's per-step reading `v ← v + R·I` (snnTorch's importer requires `R = 1`).
//! PLIF (`h_t = m + k·(x − m)`, `k = σ(w)` learned per layer) is a LIF with `β = 1 − k` whose
//! input is scaled by `k`: `τ = dt/k`, `R = 1` (so `R·dt/τ = k`); exported, not imported.
//! `dt` and the reset mode go in the graph's `metadata`. Soft reset (`m = h − θ·s`), the ReLU
//! (ANN) mode, max pooling and SEW-ResNet's connections have no NIR node: export fails naming
//! the layer. The surrogate gradient is a training choice only; it is recorded in `metadata`.

pub mod export;
pub mod hdf5;
pub mod import;

use std::collections::BTreeMap;

/// The time step the discrete-to-continuous mapping uses (snnTorch's and SpikingJelly's).
pub const DT: f64 = 1e-4;

/// The NIR version written to `/version` (the Python package the files are tested against).
pub const NIR_VERSION: &str = "1.0.8";

/// A dense array: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub values: Vec<T>,
}

impl<T: Copy> Array<T> {
    /// An array of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        Self {
            shape: shape.to_vec(),
            values: vec![value; shape.iter().product()],
        }
    }
}

/// A NIR node of the types `tks` reads or writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Graph input, shape without batch (`[C, H, W]`).
    Input {
        /// The shape.
        shape: Vec<i64>,
    },
    /// Graph output.
    Output {
        /// The shape.
        shape: Vec<i64>,
    },
    /// 2-D convolution, weight `[C_out, C_in/groups, k_h, k_w]`.
    Conv2d {
        /// Weight.
        weight: Array<f32>,
        /// Bias `[C_out]`.
        bias: Vec<f32>,
        /// Stride (height, width).
        stride: [i64; 2],
        /// Padding (height, width) on both sides.
        padding: [i64; 2],
        /// Dilation.
        dilation: [i64; 2],
        /// Groups.
        groups: i64,
        /// Spatial input `(H, W)`, when known.
        input_shape: Option<[i64; 2]>,
    },
    /// Average pooling.
    AvgPool2d {
        /// Kernel (height, width).
        kernel_size: [i64; 2],
        /// Stride.
        stride: [i64; 2],
        /// Padding.
        padding: [i64; 2],
    },
    /// Flatten dimensions `start_dim..=end_dim` (no batch dimension: `[C, H, W]` → `[C·H·W]` is
    /// `start_dim = 0`, `end_dim = -1`).
    Flatten {
        /// First flattened dimension.
        start_dim: i64,
        /// Last flattened dimension (−1 = the last).
        end_dim: i64,
        /// Input shape, when known.
        input_type: Option<Vec<i64>>,
    },
    /// `y = W·x + b`, weight `[out, in]`.
    Affine {
        /// Weight.
        weight: Array<f32>,
        /// Bias `[out]`.
        bias: Vec<f32>,
    },
    /// `y = W·x`, weight `[out, in]`.
    Linear {
        /// Weight.
        weight: Array<f32>,
    },
    /// Leaky integrate-and-fire (see the module docs for the mapping).
    Lif {
        /// Time constant τ.
        tau: Array<f64>,
        /// Resistance R.
        r: Array<f64>,
        /// Leak potential.
        v_leak: Array<f64>,
        /// Threshold.
        v_threshold: Array<f64>,
        /// Reset potential.
        v_reset: Array<f64>,
    },
    /// Integrate-and-fire.
    If {
        /// Resistance R.
        r: Array<f64>,
        /// Threshold.
        v_threshold: Array<f64>,
        /// Reset potential.
        v_reset: Array<f64>,
    },
    /// A NIR type `tks` does not map (read so that import can name it).
    Other {
        /// The NIR type name.
        kind: String,
    },
}

impl Node {
    /// The NIR type name (`Conv2d`, `LIF`, …).
    pub fn kind(&self) -> &str {
        match self {
            Node::Input { .. } => "Input",
            Node::Output { .. } => "Output",
            Node::Conv2d { .. } => "Conv2d",
            Node::AvgPool2d { .. } => "AvgPool2d",
            Node::Flatten { .. } => "Flatten",
            Node::Affine { .. } => "Affine",
            Node::Linear { .. } => "Linear",
            Node::Lif { .. } => "LIF",
            Node::If { .. } => "IF",
            Node::Other { kind } => kind,
        }
    }
}

/// A graph-level metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
}

/// A NIR graph: named nodes, directed edges `(from, to)`, metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Edges `(source, target)`; a node's incoming edges are summed.
    pub edges: Vec<(String, String)>,
    /// Graph metadata (`dt`, `reset`, `tks_config`, …).
    pub metadata: BTreeMap<String, Meta>,
}

impl Graph {
    /// A metadata string.
    pub fn meta_text(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(Meta::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// A metadata number.
    pub fn meta_number(&self, key: &str) -> Option<f64> {
        match self.metadata.get(key) {
            Some(Meta::Number(v)) => Some(*v),
            _ => None,
        }
    }
}
