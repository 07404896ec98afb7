//! Samples for the dns detectors (being written).
use serde::{Deserialize, Serialize};

use super::{Sampler, TickContext};
use crate::detect::Input;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DnsSample {
    pub netns: u32,
}

pub struct DnsSampler;

impl DnsSampler {
    /// Takes the maps this sampler reads from the loaded probes.
    pub fn new(_probes: &mut crate::probes::Probes) -> Result<Self, crate::probes::ProbeError> {
        Ok(Self)
    }
}

impl Sampler for DnsSampler {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn sample(&mut self, _ctx: &mut TickContext) -> Vec<Input> {
        Vec::new()
    }
}
