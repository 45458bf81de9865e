//! Parameter counting as the literature reports it: trainable tensors only.
//!
//! burn's `Module::num_params` also counts BatchNorm running statistics (buffers in PyTorch's
//! terms), which papers and `sum(p.numel() for p in model.parameters())` leave out.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Number of trainable values of `module` (everything but `running_mean`/`running_var`).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    let mut counter = Counter::default();
    module.visit(&mut counter);
    counter.total
}

/// Initialises every lazily initialised float parameter of `module` now, in visiting order
/// (burn draws a parameter's initial values from the device generator on first use), so that a
/// model can be moved to another device with the values drawn here.
pub fn materialise<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

#[derive(Default)]
struct Counter {
    path: Vec<String>,
    total: usize,
}

impl ModuleVisitor for Counter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let buffer = matches!(
            self.path.last().map(String::as_str),
            Some("running_mean" | "running_var")
        );
        if !buffer {
            self.total += param.shape().num_elements();
        }
    }
}
