//! `deploy-check exprs`: prints every dashboard and rule expression of `deploy/` as JSON
//! (`source`, `expr` with Grafana variables expanded, `alert`, `metrics`), for
//! `scripts/e2e.sh` to run against a real Prometheus.

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> eyre::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    if command != "exprs" {
        eyre::bail!("usage: deploy-check exprs");
    }
    let root = tandem_deploy_check::repo_root();
    let mut out = Vec::new();
    for expression in tandem_deploy_check::all_expressions(&root)? {
        let metrics: Vec<String> = expression.metric_names()?.into_iter().collect();
        out.push(serde_json::json!({
            "source": expression.source,
            "expr": expression.expanded(),
            "alert": expression.alert,
            "metrics": metrics,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
