//! The critical step size of Ott et al. (ICLR 2021, §4): the largest training step size
//! (or, for adaptive methods, training tolerance) above which models stop being ODE flows.
//!
//! A sweep trains models at several settings `s₁ < s₂ < …` (step sizes or tolerances) and
//! several seeds, and [`super::verdict`] judges each model: its worst accuracy drop under
//! any more accurate test solver. A setting *passes* when the largest drop over its seeds is
//! at most the threshold. Because accuracy near the transition is noisy, a coarse setting
//! that passes by chance must not be taken for the critical one: the critical setting is the
//! largest `s_k` such that `s₁, …, s_k` all pass, i.e. the end of the passing run that starts
//! at the finest setting.

use serde::{Deserialize, Serialize};

/// One training setting of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SettingDrop {
    /// Step size or tolerance.
    pub setting: f64,
    /// The largest worst-case accuracy drop over the setting's seeds.
    pub drop_max: f64,
}

/// Which settings pass, and the critical one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalSetting {
    /// The critical setting, if the finest setting passes.
    pub critical: Option<f64>,
    /// Settings whose models all pass, ascending.
    pub passing: Vec<f64>,
    /// Settings with at least one failing model, ascending.
    pub failing: Vec<f64>,
}

/// The critical setting among `settings` (any order) at `threshold`.
pub fn critical_setting(settings: &[SettingDrop], threshold: f64) -> CriticalSetting {
    let mut sorted = settings.to_vec();
    sorted.sort_by(|a, b| a.setting.total_cmp(&b.setting));
    let passes = |s: &SettingDrop| s.drop_max <= threshold;
    let (pass, fail): (Vec<SettingDrop>, Vec<SettingDrop>) = sorted.iter().partition(|s| passes(s));
    CriticalSetting {
        critical: sorted
            .iter()
            .take_while(|s| passes(s))
            .last()
            .map(|s| s.setting),
        passing: pass.iter().map(|s| s.setting).collect(),
        failing: fail.iter().map(|s| s.setting).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(setting: f64, drop_max: f64) -> SettingDrop {
        SettingDrop { setting, drop_max }
    }

    #[test]
    fn a_coarse_setting_that_passes_by_chance_is_not_critical() {
        // 1/64 and 1/16 pass, 1/8 fails, 1/4 passes by chance, 1/2 fails.
        let c = critical_setting(
            &[
                s(0.5, 0.4),
                s(0.25, 0.01),
                s(0.125, 0.3),
                s(0.0625, 0.0),
                s(1.0 / 64.0, 0.01),
            ],
            0.02,
        );
        assert_eq!(c.critical, Some(0.0625));
        assert_eq!(c.passing, vec![1.0 / 64.0, 0.0625, 0.25]);
        assert_eq!(c.failing, vec![0.125, 0.5]);
    }

    #[test]
    fn no_setting_is_critical_when_the_finest_fails() {
        let c = critical_setting(&[s(0.01, 0.5), s(0.1, 0.0)], 0.02);
        assert_eq!(c.critical, None);
        assert!(critical_setting(&[], 0.02).critical.is_none());
    }

    #[test]
    fn the_threshold_is_inclusive() {
        assert_eq!(critical_setting(&[s(0.1, 0.02)], 0.02).critical, Some(0.1));
    }
}
