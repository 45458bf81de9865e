//! The HDF5 layout of Python `nir` 1.0.8 (`nir/serialization.py`), through the pure-Rust
//! `hdf5-pure` crate:
//!
//! ```text
//! /version                  string "1.0.8"
//! /node/type                string "NIRGraph"
//! /node/edges               strings [E, 2]
//! /node/metadata/<key>      scalar (float or string)
//! /node/nodes/<name>/type   string "Conv2d", "LIF", …
//! /node/nodes/<name>/<field>  one dataset per field (arrays gzip-chunked, as nir writes them)
//! ```
//!
//! Strings are written variable-length UTF-8 (what h5py's `string_dtype()` gives); fixed and
//! variable-length strings are both read. Numbers are read whatever their stored type (nir
//! writes `int64` and `float32`/`float64`). A truncated or foreign file is an error naming the
//! file, a bad node one naming the node and its field.

use std::collections::BTreeMap;
use std::path::Path;

use hdf5_pure::{DType, Dataset, File, FileBuilder, GroupBuilder};

use super::{Array, Graph, Meta, NIR_VERSION, Node};
use crate::error::NirError;

/// Serialises `graph` to HDF5 bytes.
pub fn to_bytes(graph: &Graph) -> Result<Vec<u8>, String> {
    let mut fb = FileBuilder::new();
    fb.create_dataset("version")
        .with_vlen_strings(&[NIR_VERSION])
        .with_shape(&[]);
    let mut root = fb.create_group("node");
    root.create_dataset("type")
        .with_vlen_strings(&["NIRGraph"])
        .with_shape(&[]);
    let flat: Vec<&str> = graph
        .edges
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    root.create_dataset("edges")
        .with_vlen_strings(&flat)
        .with_shape(&[graph.edges.len() as u64, 2]);
    if !graph.metadata.is_empty() {
        let mut md = root.create_group("metadata");
        for (k, v) in &graph.metadata {
            match v {
                Meta::Text(s) => md.create_dataset(k).with_vlen_strings(&[s]).with_shape(&[]),
                Meta::Number(x) => md.create_dataset(k).with_f64_data(&[*x]).with_shape(&[]),
            };
        }
        root.add_group(md.finish());
    }
    let mut nodes = root.create_group("nodes");
    for (name, node) in &graph.nodes {
        if name.is_empty() || name.contains('/') {
            return Err(format!("node name `{name}` is empty or contains `/`"));
        }
        let mut g = nodes.create_group(name);
        write_node(&mut g, node)?;
        nodes.add_group(g.finish());
    }
    root.add_group(nodes.finish());
    fb.add_group(root.finish());
    fb.finish().map_err(|e| e.to_string())
}

/// Writes `graph` to `path` atomically (temporary file, then rename).
pub fn write(path: &Path, graph: &Graph) -> Result<(), NirError> {
    let bytes = to_bytes(graph).map_err(|what| NirError::File {
        path: path.to_path_buf(),
        what,
    })?;
    tks_train::train::checkpoint::write_atomic(path, &bytes).map_err(|source| NirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn text(g: &mut GroupBuilder, key: &str, value: &str) {
    g.create_dataset(key)
        .with_vlen_strings(&[value])
        .with_shape(&[]);
}

fn ints(g: &mut GroupBuilder, key: &str, values: &[i64]) {
    g.create_dataset(key).with_i64_data(values);
}

fn int(g: &mut GroupBuilder, key: &str, value: i64) {
    g.create_dataset(key)
        .with_i64_data(&[value])
        .with_shape(&[]);
}

/// A gzip-chunked array, as nir writes its arrays.
fn floats32(g: &mut GroupBuilder, key: &str, a: &Array<f32>) {
    let shape: Vec<u64> = a.shape.iter().map(|&d| d as u64).collect();
    let ds = g.create_dataset(key);
    ds.with_f32_data(&a.values).with_shape(&shape);
    if !a.values.is_empty() {
        ds.with_chunks(&shape).with_deflate(4);
    }
}

fn floats64(g: &mut GroupBuilder, key: &str, a: &Array<f64>) {
    let shape: Vec<u64> = a.shape.iter().map(|&d| d as u64).collect();
    let ds = g.create_dataset(key);
    ds.with_f64_data(&a.values).with_shape(&shape);
    if !a.values.is_empty() {
        ds.with_chunks(&shape).with_deflate(4);
    }
}

fn write_node(g: &mut GroupBuilder, node: &Node) -> Result<(), String> {
    text(g, "type", node.kind());
    match node {
        Node::Input { shape } | Node::Output { shape } => ints(g, "shape", shape),
        Node::Conv2d {
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
            input_shape,
        } => {
            floats32(g, "weight", weight);
            floats32(g, "bias", &vec1(bias));
            ints(g, "stride", stride);
            ints(g, "padding", padding);
            ints(g, "dilation", dilation);
            int(g, "groups", *groups);
            if let Some(s) = input_shape {
                ints(g, "input_shape", s);
            }
        }
        Node::AvgPool2d {
            kernel_size,
            stride,
            padding,
        } => {
            ints(g, "kernel_size", kernel_size);
            ints(g, "stride", stride);
            ints(g, "padding", padding);
        }
        Node::Flatten {
            start_dim,
            end_dim,
            input_type,
        } => {
            int(g, "start_dim", *start_dim);
            int(g, "end_dim", *end_dim);
            if let Some(s) = input_type {
                ints(g, "input_type", s);
            }
        }
        Node::Affine { weight, bias } => {
            floats32(g, "weight", weight);
            floats32(g, "bias", &vec1(bias));
        }
        Node::Linear { weight } => floats32(g, "weight", weight),
        Node::Lif {
            tau,
            r,
            v_leak,
            v_threshold,
            v_reset,
        } => {
            floats64(g, "tau", tau);
            floats64(g, "r", r);
            floats64(g, "v_leak", v_leak);
            floats64(g, "v_threshold", v_threshold);
            floats64(g, "v_reset", v_reset);
        }
        Node::If {
            r,
            v_threshold,
            v_reset,
        } => {
            floats64(g, "r", r);
            floats64(g, "v_threshold", v_threshold);
            floats64(g, "v_reset", v_reset);
        }
        Node::Other { kind } => return Err(format!("cannot write a node of type {kind}")),
    }
    Ok(())
}

fn vec1(v: &[f32]) -> Array<f32> {
    Array {
        shape: vec![v.len()],
        values: v.to_vec(),
    }
}

/// Reads a NIR graph file (as Python `nir.write` makes them, or [`write`]).
pub fn read(path: &Path) -> Result<Graph, NirError> {
    let bytes = std::fs::read(path).map_err(|source| NirError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Parses NIR HDF5 bytes; `origin` names the source in errors.
pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Graph, NirError> {
    let file_err = |what: String| NirError::File {
        path: origin.into(),
        what,
    };
    if !hdf5_pure::is_hdf5_bytes(bytes) {
        return Err(file_err("no HDF5 signature".into()));
    }
    let file = File::from_bytes(bytes.to_vec()).map_err(|e| file_err(e.to_string()))?;
    let root = file
        .group("node")
        .map_err(|e| file_err(format!("no `/node` graph group: {e}")))?;
    let graph_err = |what: String| NirError::Graph {
        origin: origin.into(),
        what,
    };
    let kind = read_text(
        &root
            .dataset("type")
            .map_err(|e| graph_err(format!("/node/type: {e}")))?,
    )
    .map_err(|e| graph_err(format!("/node/type: {e}")))?;
    if kind != "NIRGraph" {
        return Err(graph_err(format!(
            "/node is a `{kind}`, not a NIRGraph (a file with one bare node is not a graph)"
        )));
    }
    let edges_ds = root
        .dataset("edges")
        .map_err(|e| graph_err(format!("/node/edges: {e}")))?;
    let flat = edges_ds
        .read_string()
        .map_err(|e| graph_err(format!("/node/edges: {e}")))?;
    let shape = edges_ds
        .shape()
        .map_err(|e| graph_err(format!("/node/edges: {e}")))?;
    if !(flat.is_empty() || (shape.len() == 2 && shape[1] == 2)) {
        return Err(graph_err(format!(
            "/node/edges has shape {shape:?}, expected [E, 2]"
        )));
    }
    let edges = flat
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    let mut metadata = BTreeMap::new();
    if let Ok(md) = root.group("metadata") {
        for key in md
            .datasets()
            .map_err(|e| graph_err(format!("/node/metadata: {e}")))?
        {
            let Ok(ds) = md.dataset(&key) else { continue };
            let value = match ds.dtype() {
                Ok(DType::String | DType::VariableLengthString) => {
                    read_text(&ds).ok().map(Meta::Text)
                }
                Ok(_) => ds
                    .read_f64()
                    .ok()
                    .filter(|v| v.len() == 1)
                    .map(|v| Meta::Number(v[0])),
                Err(_) => None,
            };
            // Arrays and nested groups in metadata are kept by nir but mean nothing to tks.
            if let Some(v) = value {
                metadata.insert(key, v);
            }
        }
    }
    let nodes_group = root
        .group("nodes")
        .map_err(|e| graph_err(format!("/node/nodes: {e}")))?;
    let mut nodes = BTreeMap::new();
    for name in nodes_group
        .groups()
        .map_err(|e| graph_err(format!("/node/nodes: {e}")))?
    {
        let g = nodes_group
            .group(&name)
            .map_err(|e| graph_err(format!("/node/nodes/{name}: {e}")))?;
        let node = read_node(&g, &name, origin)?;
        nodes.insert(name, node);
    }
    Ok(Graph {
        nodes,
        edges,
        metadata,
    })
}

fn read_text(ds: &Dataset) -> Result<String, String> {
    let v = ds.read_string().map_err(|e| e.to_string())?;
    match &v[..] {
        [s] => Ok(s.clone()),
        _ => Err(format!("expected one string, found {}", v.len())),
    }
}

/// Reads the fields of one node group.
struct NodeReader<'a> {
    group: &'a hdf5_pure::Group,
    name: &'a str,
    kind: String,
    origin: &'a str,
}

impl NodeReader<'_> {
    fn err(&self, what: String) -> NirError {
        NirError::Node {
            origin: self.origin.into(),
            node: self.name.into(),
            kind: self.kind.clone(),
            what,
        }
    }

    fn dataset(&self, field: &str) -> Result<Dataset, NirError> {
        self.group
            .dataset(field)
            .map_err(|e| self.err(format!("field `{field}` missing: {e}")))
    }

    fn has(&self, field: &str) -> bool {
        self.group.dataset(field).is_ok()
    }

    fn shape(&self, field: &str, ds: &Dataset) -> Result<Vec<usize>, NirError> {
        let s = ds
            .shape()
            .map_err(|e| self.err(format!("field `{field}`: {e}")))?;
        Ok(s.into_iter().map(|d| d as usize).collect())
    }

    fn f32s(&self, field: &str) -> Result<Array<f32>, NirError> {
        let ds = self.dataset(field)?;
        let shape = self.shape(field, &ds)?;
        let values = ds
            .read_f32()
            .map_err(|e| self.err(format!("field `{field}`: {e}")))?;
        self.checked(field, shape, values)
    }

    fn f64s(&self, field: &str) -> Result<Array<f64>, NirError> {
        let ds = self.dataset(field)?;
        let shape = self.shape(field, &ds)?;
        let values = ds
            .read_f64()
            .map_err(|e| self.err(format!("field `{field}`: {e}")))?;
        self.checked(field, shape, values)
    }

    fn checked<T>(
        &self,
        field: &str,
        shape: Vec<usize>,
        values: Vec<T>,
    ) -> Result<Array<T>, NirError> {
        if shape.iter().product::<usize>() != values.len() {
            return Err(self.err(format!(
                "field `{field}`: {} values for shape {shape:?}",
                values.len()
            )));
        }
        Ok(Array { shape, values })
    }

    fn i64s(&self, field: &str) -> Result<Vec<i64>, NirError> {
        let ds = self.dataset(field)?;
        let values = ds
            .read_f64()
            .map_err(|e| self.err(format!("field `{field}`: {e}")))?;
        values
            .iter()
            .map(|&v| {
                (v.fract() == 0.0 && v.abs() < 1e15)
                    .then_some(v as i64)
                    .ok_or_else(|| self.err(format!("field `{field}`: {v} is not an integer")))
            })
            .collect()
    }

    fn int(&self, field: &str) -> Result<i64, NirError> {
        match self.i64s(field)?[..] {
            [v] => Ok(v),
            ref v => Err(self.err(format!(
                "field `{field}`: expected one integer, found {v:?}"
            ))),
        }
    }

    /// An integer pair (NIR stores `(h, w)`; a scalar means both).
    fn pair(&self, field: &str) -> Result<[i64; 2], NirError> {
        match self.i64s(field)?[..] {
            [v] => Ok([v, v]),
            [a, b] => Ok([a, b]),
            ref v => Err(self.err(format!(
                "field `{field}`: expected 1 or 2 integers, found {v:?}"
            ))),
        }
    }

    fn vector(&self, field: &str) -> Result<Vec<f32>, NirError> {
        let a = self.f32s(field)?;
        if a.shape.len() != 1 {
            return Err(self.err(format!(
                "field `{field}`: expected a vector, found shape {:?}",
                a.shape
            )));
        }
        Ok(a.values)
    }

    /// Conv padding: integers, or the strings `valid` / `same` (for odd kernels, stride 1).
    fn padding(&self, kernel: [usize; 2]) -> Result<[i64; 2], NirError> {
        let ds = self.dataset("padding")?;
        if matches!(ds.dtype(), Ok(DType::String | DType::VariableLengthString)) {
            return match read_text(&ds).map_err(|e| self.err(format!("field `padding`: {e}")))?.as_str() {
                "valid" => Ok([0, 0]),
                "same" if kernel[0] % 2 == 1 && kernel[1] % 2 == 1 => {
                    Ok([kernel[0] as i64 / 2, kernel[1] as i64 / 2])
                }
                other => Err(self.err(format!("field `padding`: `{other}` is not supported (integers, `valid`, or `same` with an odd kernel)"))),
            };
        }
        self.pair("padding")
    }
}

fn read_node(g: &hdf5_pure::Group, name: &str, origin: &str) -> Result<Node, NirError> {
    let kind = match g
        .dataset("type")
        .map_err(|e| e.to_string())
        .and_then(|d| read_text(&d))
    {
        Ok(k) => k,
        Err(e) => {
            return Err(NirError::Node {
                origin: origin.into(),
                node: name.into(),
                kind: "?".into(),
                what: format!("field `type`: {e}"),
            });
        }
    };
    let r = NodeReader {
        group: g,
        name,
        kind: kind.clone(),
        origin,
    };
    Ok(match kind.as_str() {
        "Input" | "Output" => {
            let shape = r.i64s("shape")?;
            if kind == "Input" {
                Node::Input { shape }
            } else {
                Node::Output { shape }
            }
        }
        "Conv2d" => {
            let weight = r.f32s("weight")?;
            if weight.shape.len() != 4 {
                return Err(r.err(format!(
                    "field `weight`: expected [C_out, C_in, k_h, k_w], found shape {:?}",
                    weight.shape
                )));
            }
            let kernel = [weight.shape[2], weight.shape[3]];
            let bias = if r.has("bias") {
                r.vector("bias")?
            } else {
                vec![0.0; weight.shape[0]]
            };
            Node::Conv2d {
                padding: r.padding(kernel)?,
                stride: r.pair("stride")?,
                dilation: if r.has("dilation") {
                    r.pair("dilation")?
                } else {
                    [1, 1]
                },
                groups: if r.has("groups") { r.int("groups")? } else { 1 },
                input_shape: if r.has("input_shape") {
                    Some(r.pair("input_shape")?)
                } else {
                    None
                },
                weight,
                bias,
            }
        }
        "AvgPool2d" => Node::AvgPool2d {
            kernel_size: r.pair("kernel_size")?,
            stride: r.pair("stride")?,
            padding: if r.has("padding") {
                r.pair("padding")?
            } else {
                [0, 0]
            },
        },
        "Flatten" => Node::Flatten {
            start_dim: r.int("start_dim")?,
            end_dim: r.int("end_dim")?,
            input_type: if r.has("input_type") {
                Some(r.i64s("input_type")?)
            } else {
                None
            },
        },
        "Affine" => Node::Affine {
            weight: r.f32s("weight")?,
            bias: r.vector("bias")?,
        },
        "Linear" => Node::Linear {
            weight: r.f32s("weight")?,
        },
        "LIF" => {
            let v_threshold = r.f64s("v_threshold")?;
            let v_reset = if r.has("v_reset") {
                r.f64s("v_reset")?
            } else {
                Array::full(&v_threshold.shape, 0.0)
            };
            Node::Lif {
                tau: r.f64s("tau")?,
                r: r.f64s("r")?,
                v_leak: r.f64s("v_leak")?,
                v_threshold,
                v_reset,
            }
        }
        "IF" => {
            let v_threshold = r.f64s("v_threshold")?;
            let v_reset = if r.has("v_reset") {
                r.f64s("v_reset")?
            } else {
                Array::full(&v_threshold.shape, 0.0)
            };
            Node::If {
                r: r.f64s("r")?,
                v_threshold,
                v_reset,
            }
        }
        _ => Node::Other { kind },
    })
}
