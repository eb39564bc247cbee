//! Recording stand-ins for the tools that cannot run here (terraform, kind,
//! helm, docker): `standin.py` installed under each tool's name in a directory
//! put first on PATH. Each call is recorded; rules say what it prints, what
//! real effect it has on the twin (a shell command) and how it exits.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Call {
    pub tool: String,
    pub args: Vec<String>,
    #[allow(dead_code)]
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
}

impl Call {
    /// The arguments as one line, for readable assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.tool, self.args.join(" "))
    }

    /// The values of `-target=` arguments.
    pub fn targets(&self) -> Vec<String> {
        self.args.iter().filter_map(|a| a.strip_prefix("-target=")).map(str::to_string).collect()
    }
}

pub struct Standins {
    pub dir: tempfile::TempDir,
    pub record: PathBuf,
    pub rules: PathBuf,
}

impl Standins {
    pub fn install(tools: &[&str], rules: serde_json::Value) -> Standins {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("standin.py");
        std::fs::write(&script, include_str!("standin.py")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        for t in tools {
            std::os::unix::fs::symlink(&script, dir.path().join(t)).unwrap();
        }
        let record = dir.path().join("calls.jsonl");
        let rules_path = dir.path().join("rules.json");
        std::fs::write(&rules_path, serde_json::to_vec(&rules).unwrap()).unwrap();
        Standins { dir, record, rules: rules_path }
    }

    /// Put the stand-ins first on PATH of `cmd` and tell them where to record.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        let path = format!("{}:{}", self.dir.path().display(), std::env::var("PATH").unwrap_or_default());
        cmd.env("PATH", path).env("STANDIN_RECORD", &self.record).env("STANDIN_RULES", &self.rules);
    }

    pub fn calls(&self) -> Vec<Call> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
