//! `--api-faults`: how often the twin's APIs misbehave on purpose, per API.
//! `0.05` is 5% of every request; `kube=1,aws=0.05` sets each on its own.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiFaultRates {
    /// Of Kubernetes API requests (every cluster's API server).
    pub kubernetes: f64,
    /// Of AWS API requests (EC2, ELBv2, EKS, STS).
    pub aws: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--api-faults {given:?}: {why} (e.g. 0.05, or kube=1,aws=0.05; rates from 0 to 1)")]
pub struct BadRates {
    pub given: String,
    pub why: String,
}

impl std::str::FromStr for ApiFaultRates {
    type Err = BadRates;

    fn from_str(s: &str) -> Result<Self, BadRates> {
        let bad = |why: String| BadRates { given: s.to_string(), why };
        let rate = |v: &str| -> Result<f64, BadRates> {
            let r: f64 = v.trim().parse().map_err(|_| bad(format!("{v:?} is not a number")))?;
            if (0.0..=1.0).contains(&r) {
                Ok(r)
            } else {
                Err(bad(format!("{r} is not between 0 and 1")))
            }
        };
        if !s.contains('=') {
            let r = rate(s)?;
            return Ok(ApiFaultRates { kubernetes: r, aws: r });
        }
        let mut rates = ApiFaultRates::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (api, v) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not API=RATE")))?;
            match api.trim() {
                "kube" | "kubernetes" => rates.kubernetes = rate(v)?,
                "aws" => rates.aws = rate(v)?,
                other => return Err(bad(format!("unknown API {other:?} (kube or aws)"))),
            }
        }
        Ok(rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rate_or_one_per_api() {
        assert_eq!("0.05".parse::<ApiFaultRates>().unwrap(), ApiFaultRates { kubernetes: 0.05, aws: 0.05 });
        assert_eq!("kube=1,aws=0".parse::<ApiFaultRates>().unwrap(), ApiFaultRates { kubernetes: 1.0, aws: 0.0 });
        assert!("1.5".parse::<ApiFaultRates>().unwrap_err().to_string().contains("not between 0 and 1"));
        assert!("dns=1".parse::<ApiFaultRates>().unwrap_err().to_string().contains("unknown API"));
        assert!("lots".parse::<ApiFaultRates>().is_err());
    }
}
