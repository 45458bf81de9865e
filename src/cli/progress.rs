//! The per-epoch progress bar of `tks train`, drawn from the training loop's step events.

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::StepEvent;

/// One indicatif bar per epoch, cleared after the epoch's last step (before its summary line).
#[derive(Default)]
pub struct EpochBar {
    bar: Option<(usize, ProgressBar)>,
}

impl EpochBar {
    /// Advances the bar by one step (a new bar at each epoch's first step).
    pub fn step(&mut self, e: &StepEvent) {
        if self.bar.as_ref().is_none_or(|(epoch, _)| *epoch != e.epoch) {
            let bar = ProgressBar::new(e.steps_per_epoch as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", e.epoch + 1, e.epochs));
            self.bar = Some((e.epoch, bar));
        }
        let (_, bar) = self.bar.as_ref().expect("set above");
        bar.set_message(format!(
            "loss {:.4} acc {:.1}% {:.0} samples/s",
            e.loss,
            100.0 * e.accuracy,
            e.samples_per_second
        ));
        bar.set_position(e.step as u64);
        if e.step >= e.steps_per_epoch {
            bar.finish_and_clear();
        }
    }
}

impl Drop for EpochBar {
    fn drop(&mut self) {
        if let Some((_, bar)) = self.bar.take().filter(|(_, b)| !b.is_finished()) {
            bar.abandon();
        }
    }
}
