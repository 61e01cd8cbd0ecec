//! Rich output for notebook cells that is not a picture: HTML (tables, or several figures in
//! one cell). Kept apart from the figure code so that modules that only make tables (metrics,
//! grid reports) need no drawing code.

#[derive(Clone, Debug, PartialEq)]
pub struct Html(pub String);

impl Html {
    /// Called by evcxr when this is a cell's value.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

/// `text` with `&`, `<`, `>` and `"` escaped, to put into HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as a table or chart prints it: a whole number with thousands separators
/// (`6000` → `6,000`), anything else with three decimals.
pub(crate) fn format_value(v: f64) -> String {
    if v.fract().abs() < 1e-9 && v.abs() < 1e9 {
        let s = format!("{}", v as i64);
        // thousands separators: 6000 -> 6,000
        let bytes: Vec<char> = s.chars().collect();
        let mut out = String::new();
        for (i, ch) in bytes.iter().enumerate() {
            if i > 0 && (bytes.len() - i) % 3 == 0 && *ch != '-' {
                out.push(',');
            }
            out.push(*ch);
        }
        out
    } else {
        format!("{v:.3}")
    }
}
