//! Data-parallel training: N ranks (processes, started by `mpirun`/`srun`) each run the same
//! model on their own share of every global batch; the gradients are averaged over the ranks and
//! every rank takes the same optimizer step, so the ranks stay identical (checked by parameter
//! checksums every few steps) and the run computes what one process with the global batch does.
//!
//! * Sampler: the global epoch order is the single-process one (`Dataset::order(seed, epoch)`);
//!   step `s` takes the global batch `order[s·B .. (s+1)·B]` and rank `r` of `N` the contiguous
//!   share [`shard`] of it, so every sample is seen once per epoch, by one rank.
//! * Gradients: each rank's gradients (of its mean loss over its `n_r` samples) are scaled by
//!   `n_r`, flattened into one host buffer with the step's loss and sample count, summed over the
//!   ranks in a few large all-reduce calls ([`ALL_REDUCE_CHUNK`] values each), and divided by the
//!   global count `Σ n_r`: the gradient of the mean loss over the global batch.
//! * BatchNorm: synchronised statistics by default ([`tks_core::layer::sync_bn`]), local ones
//!   (PyTorch DDP's default) with `sync_bn = false`.
//!
//! The transport is the run's [`Collective`] (MPI in the binary).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

pub use tks_core::collective::{Collective, Solo, shard};

use crate::error::TrainError;

/// Values per all-reduce call (16 Mi f32 = 64 MiB): a step's gradients go in a few calls, not one
/// per tensor.
pub const ALL_REDUCE_CHUNK: usize = 1 << 24;

/// How a run is spread over ranks ([`super::TrainHooks::distributed`]).
#[derive(Clone, Copy)]
pub struct Distributed {
    /// The ranks' collectives.
    pub collective: &'static dyn Collective,
    /// Synchronised BatchNorm statistics (every rank's samples) rather than local ones.
    pub sync_bn: bool,
    /// Compare parameter checksums across ranks every this many steps (and after the first);
    /// 0 = never.
    pub check_every: usize,
}

impl std::fmt::Debug for Distributed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributed")
            .field("rank", &self.collective.rank())
            .field("size", &self.collective.size())
            .field("sync_bn", &self.sync_bn)
            .field("check_every", &self.check_every)
            .finish()
    }
}

impl Distributed {
    /// This rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.collective.size()
    }

    /// Checks that every step gives every rank at least one sample of a training set of `len`
    /// samples with the global batch `batch`.
    pub fn check_split(&self, len: usize, batch: usize) -> Result<(), TrainError> {
        let ranks = self.size();
        let last = match len % batch {
            0 => batch,
            r => r,
        };
        if batch < ranks || last < ranks {
            return Err(TrainError::Distributed {
                ranks,
                reason: format!(
                    "a global batch of {batch} over {len} samples leaves a step of {} samples, fewer than one per rank; use a global batch (and a training set) with at least {ranks} samples per step",
                    batch.min(last)
                ),
            });
        }
        Ok(())
    }

    /// The gradient of the mean loss over the global batch, from this rank's `grads` (of its mean
    /// loss `loss` over `samples` samples) and every other rank's, and the global batch's mean
    /// loss. `device` is the plain device the gradients live on.
    pub fn average<M: Module>(
        &self,
        grads: GradientsParams,
        module: &M,
        samples: usize,
        loss: f64,
        device: &Device,
    ) -> (GradientsParams, f64) {
        let mut flat = Flatten {
            grads: &grads,
            scale: samples as f32,
            values: Vec::new(),
            slots: Vec::new(),
        };
        module.visit(&mut flat);
        let (mut values, slots) = (flat.values, flat.slots);
        // Trailer: loss·n, n, then one "has a gradient" count per parameter.
        values.push((loss * samples as f64) as f32);
        values.push(samples as f32);
        values.extend(slots.iter().map(|s| s.had as u8 as f32));
        for chunk in values.chunks_mut(ALL_REDUCE_CHUNK) {
            self.collective.all_reduce_sum(chunk);
        }
        let trailer = values.len() - slots.len() - 2;
        let total = values[trailer + 1].max(1.0);
        let mean_loss = values[trailer] as f64 / total as f64;
        let had: Vec<bool> = values[trailer + 2..].iter().map(|&c| c > 0.0).collect();
        let mut unflatten = Unflatten {
            grads: GradientsParams::new(),
            values: &values[..trailer],
            scale: 1.0 / total,
            slots: &slots,
            had: &had,
            next: 0,
            device,
        };
        module.visit(&mut unflatten);
        (unflatten.grads, mean_loss)
    }

    /// Compares a checksum of `module`'s trainable parameters across the ranks.
    pub fn check_parameters<M: Module>(
        &self,
        module: &M,
        global_step: usize,
    ) -> Result<(), TrainError> {
        let checksums = self.collective.all_gather_u64(parameter_checksum(module));
        if checksums.iter().any(|&c| c != checksums[0]) {
            return Err(TrainError::RanksDiverged {
                global_step,
                checksums,
            });
        }
        Ok(())
    }
}

/// FNV-1a over the f32 bits of `module`'s trainable parameters, in visiting order (equal on two
/// ranks exactly when their parameters are bit-identical, barring collisions).
pub fn parameter_checksum<M: Module>(module: &M) -> u64 {
    struct Hash(u64);
    impl ModuleVisitor for Hash {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            for v in value.into_data().iter::<f32>() {
                for b in v.to_bits().to_le_bytes() {
                    self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
    }
    let mut h = Hash(0xcbf2_9ce4_8422_2325);
    module.visit(&mut h);
    h.0
}

/// Where one parameter's gradient sits in the flat buffer.
struct Slot {
    id: ParamId,
    shape: Vec<usize>,
    offset: usize,
    len: usize,
    had: bool,
}

/// Appends every trainable parameter's gradient (times `scale`; zeros where it has none).
struct Flatten<'a> {
    grads: &'a GradientsParams,
    scale: f32,
    values: Vec<f32>,
    slots: Vec<Slot>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let shape = value.dims().to_vec();
        let len = shape.iter().product::<usize>();
        let offset = self.values.len();
        let had = match self.grads.get::<D>(param.id) {
            Some(g) => {
                let scale = self.scale;
                self.values
                    .extend(g.into_data().iter::<f32>().map(|v| v * scale));
                true
            }
            None => {
                self.values.resize(offset + len, 0.0);
                false
            }
        };
        self.slots.push(Slot {
            id: param.id,
            shape,
            offset,
            len,
            had,
        });
    }
}

/// Registers the reduced gradients (times `scale`) of the parameters some rank had one for.
struct Unflatten<'a> {
    grads: GradientsParams,
    values: &'a [f32],
    scale: f32,
    slots: &'a [Slot],
    had: &'a [bool],
    next: usize,
    device: &'a Device,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.val().is_require_grad() {
            return;
        }
        let (slot, had) = (&self.slots[self.next], self.had[self.next]);
        self.next += 1;
        debug_assert_eq!(slot.id, param.id);
        if !had {
            return;
        }
        let values: Vec<f32> = self.values[slot.offset..slot.offset + slot.len]
            .iter()
            .map(|v| v * self.scale)
            .collect();
        let tensor =
            Tensor::<D>::from_data(TensorData::new(values, slot.shape.clone()), self.device);
        self.grads.register::<D>(slot.id, tensor);
    }
}
