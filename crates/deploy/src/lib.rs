//! Deployment of `tks` models: the Neuromorphic Intermediate Representation (NIR; Pedersen et
//! al., "Neuromorphic intermediate representation: a unified instruction set for interoperable
//! brain-inspired computing", Nature Communications 2024) read and written as HDF5 files the
//! Python `nir` package (1.0.8) reads type-checked ([`nir`]), and classification of single
//! files — images, event recordings, `.npy` frame tensors ([`predict`]).
//!
//! No environment reads and no CLI here: the `tks` binary's `export`, `import` and `predict`
//! commands are thin wrappers.

pub mod error;
pub mod nir;
pub mod predict;

pub use error::NirError;
