//! The HTML report of a run: one self-contained page (inline CSS, the SVG plots inlined, the
//! JSON results embedded as a download link) with the run's metadata and a table per
//! operation. Every piece of text from the run is escaped.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::files::client_tag;
use crate::results::{Phase, RunResults};
use crate::values::show_size;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;padding:1.5em 2em;color:#222;background:#fafafa}
h1{margin:0 0 .3em;font-size:1.6em}h2{margin:1.6em 0 .5em;font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{border-collapse:collapse;margin:.5em 0}.meta th{text-align:left;padding:.15em 1em .15em 0;color:#555;font-weight:600;vertical-align:top}
.meta td{padding:.15em 0}code,pre{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:.9em}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
figure{margin:1em 0;background:#fff;border:1px solid #ddd;padding:.5em;overflow-x:auto}
figcaption{font-weight:600;margin-bottom:.3em}figure svg{max-width:100%;height:auto}
table.phases{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
table.phases th,table.phases td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
table.phases th{background:#f0f0f0}table.phases tr:nth-child(even) td{background:#f8f8f8}
td.bad{color:#b00;font-weight:600}.note{color:#666;font-size:.9em}
";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The operations of a run in the order the report shows them: SET, GET, MIXED, then others.
fn ops_of(results: &RunResults) -> Vec<&str> {
    let rank = |op: &str| match op {
        "SET" => 0,
        "GET" => 1,
        "MIXED" => 2,
        _ => 3,
    };
    let mut ops: Vec<&str> = results.phases.iter().map(|p| p.op.as_str()).collect();
    ops.sort_by_key(|op| (rank(op), *op));
    ops.dedup();
    ops
}

/// The page. `svgs` are (title, SVG document) pairs, inlined in that order.
pub fn render(results: &RunResults, svgs: &[(String, String)]) -> String {
    let m = &results.meta;
    let mut out = String::new();
    let title = format!("redkeep bench: {} ({})", m.target, m.mode);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );

    // Metadata.
    out.push_str("<table class=\"meta\">\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{}</th><td>{value}</td></tr>", escape(name));
    };
    let ids = m.client_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    row("target", format!("<code>{}</code>", escape(&m.target)));
    row("mode", escape(&m.mode));
    if !m.topology.is_empty() {
        row("topology", format!("<pre>{}</pre>", escape(&m.topology.join("\n"))));
    }
    row("client ids", escape(&ids));
    row("redis version", escape(&m.redis_version));
    row("redkeep version", escape(&m.redkeep_version));
    row("command line", format!("<pre>{}</pre>", escape(&m.command_line)));
    row("started at", escape(&m.started_at));
    row("connections", m.connections.to_string());
    row("pipeline", m.pipeline.to_string());
    row("workload", escape(&m.workload));
    row("key pattern", format!("<code>{}</code>", escape(&m.key_pattern)));
    if let Some(rate) = m.rate {
        row("rate", format!("{rate} requests/s (open loop)"));
    }
    if let Ok(json) = serde_json::to_string_pretty(results) {
        let data = base64::engine::general_purpose::STANDARD.encode(json);
        let name = format!("results-{}.json", client_tag(results));
        row(
            "data",
            format!(
                "<a download=\"{}\" href=\"data:application/json;base64,{data}\">{}</a>",
                escape(&name),
                escape(&name)
            ),
        );
    }
    out.push_str("</table>\n</header>\n<main>\n");

    // Plots.
    if !svgs.is_empty() {
        out.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n");
        for (name, svg) in svgs {
            let _ = writeln!(out, "<figure>\n<figcaption>{}</figcaption>", escape(name));
            match svg.find("<svg") {
                // Inlined from the root element on: an XML declaration or doctype before it
                // has no place inside HTML.
                Some(start) => out.push_str(svg[start..].trim_end()),
                None => out.push_str("<p class=\"note\">(plot unavailable)</p>"),
            }
            out.push_str("\n</figure>\n");
        }
        out.push_str("</section>\n");
    }

    // A table per operation.
    let ops = ops_of(results);
    if ops.is_empty() {
        out.push_str("<p class=\"note\">No phases were measured.</p>\n");
    }
    for op in ops {
        let id = op.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let _ = writeln!(
            out,
            "<section id=\"op-{}\">\n<h2>{}</h2>\n<table class=\"phases\" id=\"table-{}\">",
            escape(&id),
            escape(op),
            escape(&id)
        );
        out.push_str(
            "<thead><tr><th>size</th><th>requests</th><th>error %</th><th>ops/s</th><th>MB/s</th>\
             <th>mean (µs)</th><th>p50 (µs)</th><th>p90 (µs)</th><th>p99 (µs)</th><th>p99.9 (µs)</th>\
             <th>max (µs)</th></tr></thead>\n<tbody>\n",
        );
        for p in results.phases.iter().filter(|p| p.op == op) {
            phase_row(&mut out, p);
        }
        out.push_str("</tbody>\n</table>\n</section>\n");
    }
    out.push_str(
        "<p class=\"note\">Latency in microseconds from HDR histograms; MB/s counts value bytes \
         (10<sup>6</sup> bytes per MB). Errors include error replies, lost connections, missing keys \
         and wrong values.</p>\n</main>\n</body>\n</html>\n",
    );
    out
}

fn phase_row(out: &mut String, p: &Phase) {
    let l = &p.latency;
    let errors = p.error_percent();
    let class = if p.errors > 0 { " class=\"bad\"" } else { "" };
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{}</td><td{class} title=\"{} errors ({} missing, {} wrong)\">{errors:.3}</td>\
         <td>{:.0}</td><td>{:.2}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(&show_size(p.size)),
        p.requests,
        p.errors,
        p.missing,
        p.wrong,
        p.ops_per_sec(),
        p.mb_per_sec(),
        l.mean,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::sample;

    #[test]
    fn report_has_metadata_plots_and_tables() {
        let results = sample(&[16, 1024, 4096], &["SET", "GET"]);
        let svg = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><text>ops/s</text></svg>\n";
        let html = render(&results, &[("throughput".into(), svg.into())]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg xmlns"), "SVG inlined");
        assert!(!html.contains("<?xml"), "no XML declaration inside HTML");
        assert!(html.contains("<figcaption>throughput</figcaption>"));
        assert!(html.contains("id=\"table-set\"") && html.contains("id=\"table-get\""));
        assert!(html.contains("<h2>SET</h2>") && html.contains("<h2>GET</h2>"));
        assert!(html.contains("<td>4 KiB</td>"));
        assert!(html.contains("127.0.0.1:7001 master 5461-10922"));
        assert!(
            html.contains("7.2.4")
                && html.contains("2025-01-02T03:04:05Z")
                && html.contains("set-then-get")
        );
        // The command line had `<a&b>`: escaped, never raw.
        assert!(html.contains("--note &lt;a&amp;b&gt;"));
        assert!(!html.contains("<a&b>"));
        assert!(
            !html.contains("<link") && !html.contains("<script") && !html.contains(" src="),
            "self-contained"
        );
        // The embedded data decodes back to the results.
        let start = html.find("base64,").unwrap() + "base64,".len();
        let end = start + html[start..].find('"').unwrap();
        let json = base64::engine::general_purpose::STANDARD.decode(&html[start..end]).unwrap();
        let back: RunResults = serde_json::from_slice(&json).unwrap();
        // (Floats may differ in their last digit after JSON.)
        assert_eq!(back.meta, results.meta);
        let key = |r: &RunResults| {
            r.phases
                .iter()
                .map(|p| (p.op.clone(), p.size, p.requests, p.errors))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&back), key(&results));
    }

    #[test]
    fn report_of_an_empty_run() {
        let html = render(&sample(&[], &[]), &[]);
        assert!(html.contains("No phases were measured."));
        assert!(html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
