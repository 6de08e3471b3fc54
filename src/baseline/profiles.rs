//! The built-in profiles `eks-minimal` and `eks-strict`, per endpoint mode and style, derived
//! from reference §8. Each rule carries `why` and its source key.

use super::Baseline;
use crate::model::{EndpointMode, Style};

pub const PROFILES: [&str; 2] = ["eks-minimal", "eks-strict"];

/// The built-in profile `name` for a cluster of `mode` and `style`; `None` for an unknown name.
pub fn builtin(name: &str, mode: EndpointMode, style: Style) -> Option<Baseline> {
    let _ = (name, mode, style);
    todo!("built-in profiles")
}
