//! `compare --html`: one well-formed, self-contained page with the timeline, per-core
//! utilization and roofline charts, consistent with `compare --json`, byte-identical across runs.
//! (scripts/check_html.sh renders it in headless Chromium for a visual check.)

use std::path::PathBuf;
use std::process::{Command, Output};

fn ttfuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttfuse"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn page(name: &str, extra: &[&str]) -> (String, serde_json::Value) {
    let file: PathBuf =
        std::env::temp_dir().join(format!("ttfuse-html-{name}-{}.html", std::process::id()));
    let mut args = vec!["compare", "--json", "--html", file.to_str().unwrap()];
    args.extend(extra);
    let out = ttfuse(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    (std::fs::read_to_string(&file).expect("page written"), json)
}

/// Checks that every element is closed in order (HTML void elements and `/>` aside) and
/// returns the start tags' names in order.
fn balanced_tags(html: &str) -> Vec<String> {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut opened = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("a tag is closed with >");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if let Some(closing) = tag.strip_prefix('/') {
            let top = stack
                .pop()
                .unwrap_or_else(|| panic!("</{closing}> closes nothing"));
            assert_eq!(top, name, "<{top}> closed by </{name}>");
        } else {
            opened.push(name.clone());
            if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    opened
}

#[test]
fn the_page_is_well_formed_and_self_contained() {
    let (html, json) = page("wellformed", &[]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    let tags = balanced_tags(&html);
    for forbidden in ["script", "link", "img", "iframe", "object"] {
        assert!(
            !tags.iter().any(|t| t == forbidden),
            "<{forbidden}> in the page"
        );
    }
    for external in ["http://", "https://", "url(", "src=", "@import"] {
        assert!(
            !html.contains(external),
            "the page refers to something outside: {external}"
        );
    }
    assert_eq!(
        tags.iter().filter(|t| *t == "svg").count(),
        4,
        "timeline, 2 heat maps, roofline"
    );
    for id in ["id=\"timeline\"", "id=\"roofline\"", "class=\"util\""] {
        assert!(html.contains(id), "{id} missing");
    }
    assert!(html.contains(&json["model"].as_str().unwrap().to_string()));

    // One timeline bar per step of each program.
    for side in ["unfused", "fused"] {
        let launches = json[side]["launches"].as_u64().unwrap() as usize;
        let bars = html.matches(&format!("<g><title>{side} #")).count();
        assert_eq!(bars, launches, "{side} bars");
    }
    // One heat-map cell per core of the 8x8 Wormhole grid, per program.
    assert_eq!(html.matches("<g><title>core (").count(), 2 * 64);
    // One roofline marker per step that moves bytes and does FLOPs.
    let markers = |side: &str| {
        json[side]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["flops"].as_f64().unwrap() > 0.0 && s["dram_bytes"].as_u64().unwrap() > 0)
            .count()
    };
    assert_eq!(
        html.matches("<g><title>unfused ").count()
            - json["unfused"]["launches"].as_u64().unwrap() as usize,
        markers("unfused")
    );
    assert_eq!(
        html.matches("<g><title>fused ").count()
            - json["fused"]["launches"].as_u64().unwrap() as usize,
        markers("fused")
    );
    // The speedup card shows compare's figure.
    let speedup = format!("{:.2}x", json["speedup"].as_f64().unwrap());
    assert!(html.contains(&speedup), "speedup {speedup} not shown");
}

#[test]
fn the_page_is_byte_identical_across_runs() {
    let (a, _) = page("same_a", &["models/mlp/model.onnx"]);
    let (b, _) = page("same_b", &["models/mlp/model.onnx"]);
    assert_eq!(a, b);
}

#[test]
fn names_are_escaped() {
    let dir = std::env::temp_dir().join(format!("ttfuse-html-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("a<b>&c.onnx");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/mlp/model.onnx"),
        &model,
    )
    .unwrap();
    let (html, _) = page("escape", &[model.to_str().unwrap()]);
    assert!(html.contains("a&lt;b&gt;&amp;c.onnx"));
    assert!(!html.contains("a<b>"));
    balanced_tags(&html);
}
