//! How the operator commands print: aligned tables for people, `--json`
//! for scripts.

/// The output flag shared by the operator commands.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Output {
    /// JSON output instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// Prints `rows` under `header`, each column as wide as its widest cell;
/// trailing spaces are trimmed so that the output diffs cleanly.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        line(r);
    }
}
