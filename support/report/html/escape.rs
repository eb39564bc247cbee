//! Escaping: every string that reaches the page goes through here, so that no
//! text from a cluster, an error or a feature can open a tag or an attribute.

/// Text escaped for an HTML element or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// Escaped text with `backquoted` spans as <code>, as the features write commands.
pub fn text_with_code(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        // An odd part is inside backquotes, unless it is the last (unclosed).
        if i % 2 == 1 && i + 1 < parts.len() {
            out.push_str(&format!("<code>{}</code>", esc(part)));
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&esc(part));
        }
    }
    out
}

/// A free-text description (a feature's or a scenario's) as paragraphs and
/// lists: blank lines separate paragraphs, lines starting with "- " are items.
pub fn description(text: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for block in lines.split(|l| l.is_empty()).filter(|b| !b.is_empty()) {
        let mut items: Vec<String> = Vec::new();
        let mut lead: Vec<&str> = Vec::new();
        for l in block {
            if let Some(item) = l.strip_prefix("- ") {
                items.push(item.to_string());
            } else if let Some(last) = items.last_mut() {
                last.push(' ');
                last.push_str(l);
            } else {
                lead.push(l);
            }
        }
        if !lead.is_empty() {
            out.push_str(&format!("<p>{}</p>", text_with_code(&lead.join(" "))));
        }
        if !items.is_empty() {
            out.push_str("<ul>");
            for i in items {
                out.push_str(&format!("<li>{}</li>", text_with_code(&i)));
            }
            out.push_str("</ul>");
        }
    }
    out
}

/// An id fragment: lowercase letters, digits and dashes.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn backquotes_become_code_and_stay_escaped() {
        assert_eq!(text_with_code("run `kubectl get <pod>` now"), "run <code>kubectl get &lt;pod&gt;</code> now");
        assert_eq!(text_with_code("a ` alone"), "a ` alone");
    }

    #[test]
    fn descriptions_keep_paragraphs_and_lists() {
        let html = description("The runbook:\n- first,\n  continued\n- second\n\nThen `this`.");
        assert_eq!(
            html,
            "<p>The runbook:</p><ul><li>first, continued</li><li>second</li></ul><p>Then <code>this</code>.</p>"
        );
    }

    #[test]
    fn slugs_are_safe_ids() {
        assert_eq!(slug("Cross-cluster endpoint sync / <eks-1>"), "cross-cluster-endpoint-sync-eks-1");
    }
}
