//! Text laid out in columns whose widths come from their content.

/// Rows of cells as lines: each column as wide as its widest cell, two
/// spaces between columns, no trailing spaces. Widths count characters,
/// so names with accents stay aligned.
pub fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.push_str(&" ".repeat(widths[i] - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key: value` lines with the values aligned, each line prefixed by `indent`.
pub fn pairs(indent: &str, pairs: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(key, value)| vec![format!("{indent}{key}:"), value.clone()])
        .collect();
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn widths_follow_the_widest_cell() {
        let text = columns(&[
            row(&["NAME", "STATE"]),
            row(&["kitchen", "ready"]),
            row(&["é", "backoff (930ms)"]),
        ]);
        assert_eq!(text, "NAME     STATE\nkitchen  ready\né        backoff (930ms)\n");
    }

    #[test]
    fn pairs_align_values() {
        let text = pairs("  ", &[("a".into(), "1".into()), ("longer".into(), "2".into())]);
        assert_eq!(text, "  a:       1\n  longer:  2\n");
    }
}
