//! `timetable --plot` and the input checks of `bench pipeline` (a real benchmark run takes
//! minutes and is not a CI test).

use xml::reader::{EventReader, XmlEvent};

use crate::common::*;

/// The `<rect>` count and `<text>` contents of an SVG; panics when it is not well-formed.
fn svg_contents(svg: &str) -> (usize, Vec<String>) {
    let (mut rects, mut texts, mut in_text) = (0, Vec::new(), false);
    for event in EventReader::new(svg.as_bytes()) {
        match event.expect("well-formed SVG") {
            XmlEvent::StartElement { name, .. } if name.local_name == "rect" => rects += 1,
            XmlEvent::StartElement { name, .. } if name.local_name == "text" => {
                in_text = true;
                texts.push(String::new());
            }
            XmlEvent::EndElement { name } if name.local_name == "text" => in_text = false,
            XmlEvent::Characters(text) if in_text => {
                texts.last_mut().unwrap().push_str(text.trim());
            }
            _ => {}
        }
    }
    (rects, texts)
}

#[test]
fn timetable_plot_draws_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timetable.svg");
    let output = run(tandem()
        .args([
            "timetable",
            "--slot",
            "24s",
            "--l1-slot",
            "2s",
            "--block",
            "2s",
            "--json",
            "--plot",
        ])
        .arg(&path));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    let blocks = |mode: &str| json[mode]["max_blocks_per_checkpoint"].as_u64().unwrap();
    let svg = std::fs::read_to_string(&path).expect("the plot was written");
    let (rects, texts) = svg_contents(&svg);
    // One bar per block of each mode at least.
    assert!(
        rects as u64 > blocks("pipelined") + blocks("non_pipelined"),
        "{rects} rects"
    );
    for expected in [
        format!("pipelined: build ({} blocks)", blocks("pipelined")),
        format!("non-pipelined: build ({} blocks)", blocks("non_pipelined")),
    ] {
        assert!(texts.contains(&expected), "{expected:?} not in {texts:?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("one slot's schedule: S = 24s, E = 2s, D = 2s, R = 2s, P = ")),
        "{texts:?}"
    );
}

#[test]
fn timetable_plot_is_refused_when_nothing_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timetable.svg");
    let output = run(tandem()
        .args([
            "timetable",
            "--slot",
            "4s",
            "--l1-slot",
            "2s",
            "--block",
            "3s",
            "--plot",
        ])
        .arg(&path));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--plot: no schedule fits"),
        "{}",
        stderr(&output)
    );
    assert!(!path.exists());
}

#[test]
fn bench_pipeline_checks_its_inputs_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench");
    for (args, message) in [
        (vec!["--slots", "0"], "--slots 0: expected 1..="),
        (vec!["--profile", "mainnet"], "--profile \"mainnet\""),
        (
            vec!["--profile", "ci", "--reexecution-budget", "1s"],
            "needs 0 < R < D = 1s",
        ),
        (
            vec!["--plot", "run.png"],
            "--plot run.png: expected a .svg file",
        ),
        (vec!["--tx-rate", "0"], "--tx-rate 0: expected a rate in"),
        (vec!["--validators", "0"], "--validators 0: expected 1..=64"),
        (
            vec!["--validators", "100000"],
            "--validators 100000: expected 1..=64",
        ),
        (
            vec!["--skip-short-r", "--reexecution-budget", "1ms"],
            "cannot be used with",
        ),
    ] {
        let output = run(tandem()
            .args(["bench", "pipeline", "--data-dir"])
            .arg(&data)
            .args(&args));
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // A plot that could not be written would otherwise be found only after the runs.
    let plot = dir.path().join("missing").join("run.svg");
    let output = run(tandem()
        .args(["bench", "pipeline", "--data-dir"])
        .arg(&data)
        .arg("--plot")
        .arg(&plot));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("run.svg: cannot create it"),
        "{}",
        stderr(&output)
    );
    assert!(
        !data.exists(),
        "nothing is created before the inputs are checked"
    );
}
