//! How callers dial in each country the profiles name, shared with every profile: a local
//! number with a global `phone-context` is read with its place's prefixes wherever it is
//! written (the Request-URI and To at admission, the identity headers toward each callee).

use std::sync::Arc;

use super::Config;
use crate::interop::uri::DialPlan;

impl Config {
    /// Give every profile the dialling plan of each country some profile names: the first
    /// profile (by name) with that `country_code`, as the Request-URI's reading takes it.
    pub fn link_dial_plans(&mut self) {
        let mut named: Vec<_> = self.profiles.values().collect();
        named.sort_by(|a, b| a.name.0.cmp(&b.name.0));
        let mut plans: Vec<DialPlan> = Vec::new();
        for plan in named.iter().filter_map(|p| p.uri.dial_plan()) {
            if !plans
                .iter()
                .any(|p| p.country_code() == plan.country_code())
            {
                plans.push(plan);
            }
        }
        let plans: Arc<[DialPlan]> = Arc::from(plans);
        for p in self.profiles.values_mut() {
            if p.uri.places != plans {
                Arc::make_mut(p).uri.places = plans.clone();
            }
        }
    }

    /// Each country's dialling plan, as every profile carries it (none without a profile).
    pub fn dial_plans(&self) -> Arc<[DialPlan]> {
        (self.profiles.values().next())
            .map_or_else(|| Arc::from(Vec::new()), |p| p.uri.places.clone())
    }
}
