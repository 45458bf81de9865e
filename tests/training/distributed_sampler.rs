//! The distributed sampler: over an epoch of the real digits set, the ranks' shares of every
//! global batch cover every training sample exactly once, in the single-process order, and
//! the epochs are reshuffled from the seed.

use tks::collective::shard;
use tks::data::digits;

#[test]
fn every_sample_once_per_epoch_in_the_global_order() {
    let data = digits::load().unwrap().with_validation(0.1, 0);
    let train = &data.train;
    let batch = 32;
    for ranks in [1, 2, 3, 4] {
        for epoch in 0..2 {
            let order = train.order(true, 5, epoch);
            let mut seen = vec![0usize; train.len()];
            let mut in_order = Vec::with_capacity(train.len());
            for global in order.chunks(batch) {
                for rank in 0..ranks {
                    for &i in shard(global, rank, ranks) {
                        seen[i] += 1;
                        in_order.push(i);
                    }
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "{ranks} ranks, epoch {epoch}: a sample seen {} times",
                seen.iter().find(|&&n| n != 1).unwrap()
            );
            assert_eq!(in_order, order, "{ranks} ranks, epoch {epoch}");
        }
    }
    assert_ne!(
        train.order(true, 5, 0),
        train.order(true, 5, 1),
        "reshuffled per epoch"
    );
}
