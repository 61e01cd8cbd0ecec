//! A transfer network made ready to fine-tune: the trunk's and the head's weights copied in by
//! name, and the first part of the trunk frozen.

use tch::nn;

use crate::error::Result;
use crate::models::Backbone;

/// Copies every variable of `from` into the variable of the same name in `to`.
pub(crate) fn copy_by_name(to: &nn::VarStore, from: &nn::VarStore) -> Result<()> {
    let vars = to.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, t) in from.variables() {
            if let Some(v) = vars.get(&name) {
                v.shallow_clone().f_copy_(&t)?;
            }
        }
        Ok(())
    })
}

/// Sets the first part of the trunk ([`Backbone::frozen_when_fine_tuning`]) to not train.
pub(crate) fn freeze_early_layers(vs: &nn::VarStore, backbone: Backbone) {
    let frozen = backbone.frozen_when_fine_tuning();
    for (name, v) in vs.variables() {
        if let Some(rest) = name.strip_prefix("trunk.") {
            if frozen.iter().any(|p| rest.starts_with(p)) {
                let _ = v.set_requires_grad(false);
            }
        }
    }
}
