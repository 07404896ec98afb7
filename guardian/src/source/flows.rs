//! Samples for the flows detectors (being written).
use serde::{Deserialize, Serialize};

use super::{Sampler, TickContext};
use crate::detect::Input;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FlowSample {
    pub netns: u32,
}

pub struct FlowSampler;

impl FlowSampler {
    /// Takes the maps this sampler reads from the loaded probes.
    pub fn new(_probes: &mut crate::probes::Probes) -> Result<Self, crate::probes::ProbeError> {
        Ok(Self)
    }
}

impl Sampler for FlowSampler {
    fn name(&self) -> &'static str {
        "flows"
    }
    fn sample(&mut self, _ctx: &mut TickContext) -> Vec<Input> {
        Vec::new()
    }
}
