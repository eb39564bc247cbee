//! Evidence: what a check saw (an endpoint table, a response distribution),
//! attached to the step that checked it.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use base64::Engine;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub feature: String,
    pub scenario: String,
    pub step: String,
    pub name: String,
    pub data: Value,
}

#[derive(Debug, Default)]
pub struct EvidenceStore {
    items: Mutex<Vec<Evidence>>,
}

impl EvidenceStore {
    /// Keep a piece of evidence, with every credential in it redacted.
    pub fn add(&self, mut e: Evidence) {
        e.data = super::redact::redact(e.data);
        self.items.lock().expect("evidence lock").push(e);
    }

    pub fn all(&self) -> Vec<Evidence> {
        self.items.lock().expect("evidence lock").clone()
    }

    /// Write evidence.json and embed each item into the matching step of the Cucumber JSON report.
    pub fn write(&self, report_dir: &Path, cucumber_json: &Path) -> Result<()> {
        let items = self.all();
        std::fs::write(report_dir.join("evidence.json"), serde_json::to_vec_pretty(&items)?)
            .context("cannot write evidence.json")?;
        if items.is_empty() {
            return Ok(());
        }
        let text = std::fs::read_to_string(cucumber_json).context("cannot read the Cucumber JSON report")?;
        let mut report: Value = serde_json::from_str(&text).context("the Cucumber JSON report does not parse")?;
        for e in &items {
            if let Some(step) = find_step(&mut report, e) {
                let embeddings = step
                    .as_object_mut()
                    .expect("a step is an object")
                    .entry("embeddings")
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(list) = embeddings {
                    list.push(serde_json::json!({
                        "mime_type": "application/json",
                        "name": e.name,
                        "data": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&e.data)?),
                    }));
                }
            }
        }
        std::fs::write(cucumber_json, serde_json::to_vec(&report)?).context("cannot rewrite the Cucumber JSON report")
    }
}

fn find_step<'a>(report: &'a mut Value, e: &Evidence) -> Option<&'a mut Value> {
    report
        .as_array_mut()?
        .iter_mut()
        .filter(|f| f["name"] == e.feature.as_str())
        .flat_map(|f| f["elements"].as_array_mut().into_iter().flatten())
        .filter(|s| s["name"] == e.scenario.as_str())
        .flat_map(|s| s["steps"].as_array_mut().into_iter().flatten())
        // An empty step name means the scenario's failed step (failure bundles).
        .find(|st| if e.step.is_empty() { st["result"]["status"] == "failed" } else { st["name"] == e.step.as_str() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_lands_on_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("cucumber.json");
        std::fs::write(
            &json,
            r#"[{"name":"F","elements":[{"name":"S","steps":[{"keyword":"Then ","name":"it works"},{"keyword":"And ","name":"other"}]}]}]"#,
        )
        .unwrap();
        let store = EvidenceStore::default();
        store.add(Evidence {
            feature: "F".into(),
            scenario: "S".into(),
            step: "it works".into(),
            name: "distribution".into(),
            data: serde_json::json!({"v1": 3}),
        });
        store.write(dir.path(), &json).unwrap();
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let emb = &report[0]["elements"][0]["steps"][0]["embeddings"][0];
        assert_eq!(emb["name"], "distribution");
        let data = base64::engine::general_purpose::STANDARD.decode(emb["data"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&data).unwrap()["v1"], 3);
        assert!(report[0]["elements"][0]["steps"][1].get("embeddings").is_none());
        assert!(dir.path().join("evidence.json").exists());
    }
}
