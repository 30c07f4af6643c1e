//! Drawings of a workflow: Graphviz DOT and Mermaid `stateDiagram-v2`, labelled in French.

use std::fmt::Write;

use crate::definition::Workflow;
use crate::model::TerminalOutcome;

impl Workflow {
    /// Graphviz DOT: rounded boxes, a dot for the start, double borders for terminal states.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&self.id));
        let _ = writeln!(
            out,
            "  label=\"{}\";\n  labelloc=t;\n  rankdir=LR;",
            dot_escape(&self.labels.fr)
        );
        let _ = writeln!(
            out,
            "  node [shape=box, style=rounded, fontname=\"sans-serif\"];"
        );
        let _ = writeln!(out, "  edge [fontname=\"sans-serif\", fontsize=10];");
        let _ = writeln!(out, "  \"__start\" [shape=point, label=\"\"];");
        for state in &self.states {
            let extra = match state.outcome {
                Some(TerminalOutcome::Success) => ", peripheries=2, color=darkgreen",
                Some(TerminalOutcome::Failure) => ", peripheries=2, color=firebrick",
                None => "",
            };
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\"{extra}];",
                dot_escape(&state.id),
                dot_escape(&state.labels.fr)
            );
        }
        let _ = writeln!(
            out,
            "  \"__start\" -> \"{}\";",
            dot_escape(&self.initial_state().id)
        );
        for transition in &self.transitions {
            for from in &transition.from {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\" [label=\"{}\"];",
                    dot_escape(from),
                    dot_escape(&transition.to),
                    dot_escape(&transition.labels.fr)
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid `stateDiagram-v2`: `[*] --> initial`, one line per transition and source, `terminal --> [*]`.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        let _ = writeln!(out, "  %% {} v{}", mermaid_escape(&self.id), self.version);
        for state in &self.states {
            let _ = writeln!(out, "  {} : {}", state.id, mermaid_escape(&state.labels.fr));
        }
        let _ = writeln!(out, "  [*] --> {}", self.initial_state().id);
        for transition in &self.transitions {
            for from in &transition.from {
                let _ = writeln!(
                    out,
                    "  {from} --> {} : {}",
                    transition.to,
                    mermaid_escape(&transition.labels.fr)
                );
            }
        }
        for state in self.states.iter().filter(|s| s.is_terminal()) {
            let _ = writeln!(out, "  {} --> [*]", state.id);
        }
        out
    }
}

/// Inside a DOT double-quoted string only `"`, `\` and line breaks need care.
fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ")
}

/// Mermaid reads `:` `;` `#` `<` `>` and line breaks as syntax in a label; entity codes keep them as text.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ':' => out.push_str("#58;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '"' => out.push_str("#quot;"),
            '{' => out.push_str("#123;"),
            '}' => out.push_str("#125;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
