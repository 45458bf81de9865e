//! The kernel policy's command-line and environment overrides, read once at start-up: the
//! only place that reads the `TKS_*` kernel variables. Precedence: the run's `[kernels]`
//! table, then the environment, then `--conv-mode`.

use anyhow::bail;
use clap::ValueEnum;

use crate::kernels::{ConvMode, KernelPolicy, LayerPath, LifPath, SparsePass};

/// `--conv-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConvModeArg {
    /// Spike-aware where the input is sparse, measured per call (the default).
    Auto,
    /// im2col + gemm always.
    Dense,
    /// Spike-aware always.
    Sparse,
}

impl From<ConvModeArg> for ConvMode {
    fn from(m: ConvModeArg) -> Self {
        match m {
            ConvModeArg::Auto => ConvMode::Auto,
            ConvModeArg::Dense => ConvMode::Dense,
            ConvModeArg::Sparse => ConvMode::Sparse,
        }
    }
}

/// What the environment and the flags change in a run's [`KernelPolicy`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelOverrides {
    layers: Option<LayerPath>,
    neurons: Option<LifPath>,
    conv_mode: Option<ConvMode>,
    max_density: [Option<f32>; 2],
    pack_spikes: Option<bool>,
    recompute_conv: Option<bool>,
}

impl KernelOverrides {
    /// Reads `TKS_LAYER_PATH`, `TKS_LIF_PATH`, `TKS_CONV_MODE`, `TKS_SPARSE_MAX_DENSITY`,
    /// `TKS_SPARSE_MAX_DENSITY_DW`, `TKS_PACK_SPIKES` and `TKS_RECOMPUTE_CONV` through `var`, then `--conv-mode`. A
    /// value that cannot be used is an error naming the variable and the value.
    pub fn read(
        var: impl Fn(&str) -> Option<String>,
        conv_mode_flag: Option<ConvModeArg>,
    ) -> anyhow::Result<Self> {
        let mut o = Self::default();
        let path = |name: &str| -> anyhow::Result<Option<LayerPath>> {
            match var(name) {
                None => Ok(None),
                Some(v) => match LayerPath::from_name(&v) {
                    Some(p) => Ok(Some(p)),
                    None => bail!(
                        "environment variable {name} = `{v}`: expected `fused` or `reference`"
                    ),
                },
            }
        };
        o.layers = path("TKS_LAYER_PATH")?;
        o.neurons = path("TKS_LIF_PATH")?.map(|p| match p {
            LayerPath::Fused => LifPath::Fused,
            LayerPath::Reference => LifPath::Reference,
        });
        if let Some(v) = var("TKS_CONV_MODE") {
            match ConvMode::from_name(&v) {
                Some(m) => o.conv_mode = Some(m),
                None => bail!(
                    "environment variable TKS_CONV_MODE = `{v}`: expected `auto`, `dense` or `sparse`"
                ),
            }
        }
        for (i, pass) in [SparsePass::Forward, SparsePass::WeightGradient]
            .into_iter()
            .enumerate()
        {
            let name = pass.env_var();
            if let Some(v) = var(name) {
                match v.trim().parse::<f32>() {
                    Ok(d) if (0.0..=1.0).contains(&d) => o.max_density[i] = Some(d),
                    _ => bail!("environment variable {name} = `{v}`: expected a number in [0, 1]"),
                }
            }
        }
        let switch = |name: &str| -> anyhow::Result<Option<bool>> {
            match var(name).as_deref() {
                None => Ok(None),
                Some("1" | "true") => Ok(Some(true)),
                Some("0" | "false") => Ok(Some(false)),
                Some(v) => bail!("environment variable {name} = `{v}`: expected 0 or 1"),
            }
        };
        o.pack_spikes = switch("TKS_PACK_SPIKES")?;
        o.recompute_conv = switch("TKS_RECOMPUTE_CONV")?;
        if let Some(m) = conv_mode_flag {
            o.conv_mode = Some(m.into());
        }
        Ok(o)
    }

    /// [`Self::read`] from the process environment.
    pub fn from_env(conv_mode_flag: Option<ConvModeArg>) -> anyhow::Result<Self> {
        Self::read(|name| std::env::var(name).ok(), conv_mode_flag)
    }

    /// `policy` with the overrides applied.
    pub fn apply(&self, mut policy: KernelPolicy) -> KernelPolicy {
        if let Some(p) = self.layers {
            policy.layers = p;
        }
        if let Some(p) = self.neurons {
            policy.neurons = p;
        }
        if let Some(m) = self.conv_mode {
            policy.conv_mode = m;
        }
        for (i, pass) in [SparsePass::Forward, SparsePass::WeightGradient]
            .into_iter()
            .enumerate()
        {
            if let Some(d) = self.max_density[i] {
                policy = policy.with_max_density(pass, d);
            }
        }
        if let Some(p) = self.pack_spikes {
            policy.pack_spikes = p;
        }
        if let Some(r) = self.recompute_conv {
            policy.recompute_conv = r;
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_then_flag_override_the_table() {
        let o = KernelOverrides::read(
            env(&[
                ("TKS_CONV_MODE", "dense"),
                ("TKS_LIF_PATH", "ref"),
                ("TKS_SPARSE_MAX_DENSITY_DW", "0.3"),
                ("TKS_PACK_SPIKES", "1"),
                ("TKS_RECOMPUTE_CONV", "true"),
            ]),
            None,
        )
        .unwrap();
        let p = o.apply(KernelPolicy::default());
        assert_eq!(p.conv_mode, ConvMode::Dense);
        assert_eq!(p.neurons, LifPath::Reference);
        assert_eq!(p.layers, LayerPath::Fused);
        assert_eq!(p.sparse_max_density_dw, 0.3);
        assert!(p.pack_spikes);
        assert!(p.recompute_conv);
        let flag = KernelOverrides::read(
            env(&[("TKS_CONV_MODE", "dense")]),
            Some(ConvModeArg::Sparse),
        )
        .unwrap();
        assert_eq!(
            flag.apply(KernelPolicy::default()).conv_mode,
            ConvMode::Sparse
        );
        assert_eq!(
            KernelOverrides::read(env(&[]), None)
                .unwrap()
                .apply(KernelPolicy::reference()),
            KernelPolicy::reference()
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("TKS_CONV_MODE", "fast"),
            ("TKS_LAYER_PATH", "gpu"),
            ("TKS_SPARSE_MAX_DENSITY", "1.5"),
            ("TKS_PACK_SPIKES", "yes"),
        ] {
            let pairs = [(name, value)];
            let e = KernelOverrides::read(env(&pairs), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(name) && e.contains(value), "{e}");
        }
    }
}
