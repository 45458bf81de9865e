//! Collectives between the processes of a data-parallel run, as a trait the core and the
//! training loop call and the binary implements (over MPI): the core stays free of any
//! transport.
//!
//! Data parallelism (each of N ranks runs the same model on its own share of every batch, the
//! gradients are averaged, every rank takes the same optimizer step) needs three collectives:
//! an element-wise sum over ranks (gradients, synchronised BatchNorm statistics, step losses),
//! and a gather of one integer per rank (parameter checksums). An implementation that cannot
//! complete one (a dead peer, a broken link) ends the process with an error naming the rank
//! rather than returning: the op runs inside a forward or backward pass, where no error can be
//! returned, and every other rank is blocked on the same call.

use std::fmt;

/// The collectives of a data-parallel run (one implementation per transport: MPI in the
/// binary, [`Solo`] for one process).
pub trait Collective: Send + Sync + 'static {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Element-wise sum of `values` over every rank, in place; every rank passes the same length
    /// and gets the same result.
    fn all_reduce_sum(&self, values: &mut [f32]);
    /// [`Collective::all_reduce_sum`] in f64 (BatchNorm statistics, counts).
    fn all_reduce_sum_f64(&self, values: &mut [f64]);
    /// `value` of every rank, in rank order.
    fn all_gather_u64(&self, value: u64) -> Vec<u64>;
}

/// One process alone: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _values: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) {}
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        vec![value]
    }
}

/// A handle on the run's [`Collective`] that BatchNorm layers use to synchronise their batch
/// statistics ([`crate::kernels::KernelPolicy::bn_sync`]). `Copy` (a `'static` reference: the
/// collective lives as long as the process, as an MPI communicator does), compared by identity.
#[derive(Clone, Copy)]
pub struct BnSync(pub &'static dyn Collective);

impl BnSync {
    /// A handle on `collective`, kept for the rest of the process.
    pub fn new(collective: &'static dyn Collective) -> Self {
        Self(collective)
    }

    /// The collective.
    pub fn collective(&self) -> &'static dyn Collective {
        self.0
    }
}

impl fmt::Debug for BnSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BnSync({} ranks)", self.0.size())
    }
}

impl PartialEq for BnSync {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(
            self.0 as *const dyn Collective,
            other.0 as *const dyn Collective,
        )
    }
}

/// The contiguous share of `batch` (a step's sample indices in the global epoch order) that
/// `rank` of `size` trains on: `batch[len·rank/size .. len·(rank+1)/size]`. The shares of all
/// ranks partition the batch in order, so over an epoch every sample is seen exactly once, by
/// one rank, in the same global order as a single process.
pub fn shard(batch: &[usize], rank: usize, size: usize) -> &[usize] {
    let len = batch.len();
    let size = size.max(1);
    &batch[len * rank / size..len * (rank + 1) / size]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_every_batch_in_order() {
        for len in [0usize, 1, 5, 16, 31, 32] {
            let batch: Vec<usize> = (100..100 + len).collect();
            for size in 1..=5 {
                let joined: Vec<usize> = (0..size)
                    .flat_map(|r| shard(&batch, r, size).to_vec())
                    .collect();
                assert_eq!(joined, batch, "len {len} size {size}");
                let lens: Vec<usize> = (0..size).map(|r| shard(&batch, r, size).len()).collect();
                let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(hi - lo <= 1, "uneven shares {lens:?}");
            }
        }
    }

    #[test]
    fn handles_compare_by_identity() {
        static A: Solo = Solo;
        static B: Solo = Solo;
        assert_eq!(BnSync::new(&A), BnSync::new(&A));
        let _ = BnSync::new(&B) == BnSync::new(&A);
        assert_eq!(format!("{:?}", BnSync::new(&A)), "BnSync(1 ranks)");
    }
}
