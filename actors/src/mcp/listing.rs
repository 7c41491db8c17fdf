//! `tools/list` pages, cut as the firmware cuts them (`mcp_server.cc`
//! `GetToolsList`): a page's `{"tools":[…]` JSON stays within 8000 bytes,
//! counting a 30-byte margin; `nextCursor` is the name of the first tool
//! that did not fit, and a `cursor` means "start at the tool with this
//! name" (inclusive). The last page has no `nextCursor`. Pure: the tools
//! come in already serialized.

use serde_json::Value;

/// The firmware's page budget for the `{"tools":[…]` JSON.
pub const PAGE_BUDGET: usize = 8000;

/// The firmware's margin inside that budget.
const PAGE_MARGIN: usize = 30;

/// `{"tools":[` and `]` around the entries, and `,"nextCursor":` with room
/// for a name: what a page holds besides its tools.
const PAGE_FRAME: usize = r#"{"tools":[]"#.len() + r#","nextCursor":""}"#.len() + super::tool::MAX_TOOL_NAME;

/// The largest tool entry, so that every tool fits a page on its own and
/// every page makes progress.
pub const MAX_TOOL_LISTING_BYTES: usize = PAGE_BUDGET - PAGE_MARGIN - PAGE_FRAME;

/// Why a page cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub enum PageError {
    /// No tool has the cursor's name (any more).
    UnknownCursor,
}

/// One tool as a page needs it: its name and its listing JSON.
pub struct Entry<'a> {
    /// The tool's name (the cursor of the page it starts).
    pub name: &'a str,
    /// `{"name","description","inputSchema"}`, compact.
    pub listing: &'a str,
}

/// The `result` of `tools/list` from `cursor` on, within [`PAGE_BUDGET`].
pub fn page(tools: &[Entry<'_>], cursor: Option<&str>) -> Result<Value, PageError> {
    let start = match cursor {
        None => 0,
        Some(name) => tools
            .iter()
            .position(|t| t.name == name)
            .ok_or(PageError::UnknownCursor)?,
    };
    let mut used = PAGE_MARGIN + PAGE_FRAME;
    let mut listed = Vec::new();
    let mut next = None;
    for tool in &tools[start..] {
        let cost = tool.listing.len() + 1;
        // The first tool of a page always goes in: declarations are
        // capped so that it fits, and a page must make progress.
        if used + cost > PAGE_BUDGET && !listed.is_empty() {
            next = Some(tool.name);
            break;
        }
        used += cost;
        listed.push(tool.listing);
    }
    let mut text = String::with_capacity(used);
    text.push_str(r#"{"tools":["#);
    text.push_str(&listed.join(","));
    text.push(']');
    if let Some(name) = next {
        text.push_str(r#","nextCursor":"#);
        text.push_str(&Value::String(name.to_owned()).to_string());
    }
    text.push('}');
    // The entries are JSON we serialized ourselves, so this cannot fail;
    // reading the page back keeps one type for every reply.
    Ok(serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({"tools": []})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing(name: &str, pad: usize) -> String {
        json!({"name": name, "description": "d".repeat(pad), "inputSchema": {"type": "object"}}).to_string()
    }

    fn pages(tools: &[(String, String)]) -> Vec<Value> {
        let entries: Vec<Entry> = tools.iter().map(|(n, l)| Entry { name: n, listing: l }).collect();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let page = page(&entries, cursor.as_deref()).unwrap();
            assert!(
                page.to_string().len() <= PAGE_BUDGET - PAGE_MARGIN,
                "{}",
                page.to_string().len()
            );
            cursor = page.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
            out.push(page);
            if cursor.is_none() {
                return out;
            }
        }
        panic!("no last page");
    }

    #[test]
    fn pages_stay_within_the_budget_and_cursors_name_the_next_tool() {
        let tools: Vec<(String, String)> = (0..20)
            .map(|i| {
                let name = format!("tool{i:02}");
                let l = listing(&name, 1000);
                (name, l)
            })
            .collect();
        let pages = pages(&tools);
        assert!(pages.len() >= 3, "{} pages", pages.len());
        let names: Vec<String> = pages
            .iter()
            .flat_map(|p| {
                p["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(names, tools.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        let second_first = pages[1]["tools"][0]["name"].clone();
        assert_eq!(
            pages[0]["nextCursor"], second_first,
            "the cursor is the first tool of the next page"
        );
        assert!(pages.last().unwrap().get("nextCursor").is_none());
    }

    #[test]
    fn no_tools_is_one_empty_page_and_a_stale_cursor_is_refused() {
        assert_eq!(page(&[], None).unwrap(), json!({"tools": []}));
        assert_eq!(page(&[], Some("gone")), Err(PageError::UnknownCursor));
    }

    #[test]
    fn the_largest_tool_allowed_fits_a_page_alone() {
        let name = "n".repeat(super::super::tool::MAX_TOOL_NAME - 1);
        let mut big = listing(&name, 0);
        let pad = MAX_TOOL_LISTING_BYTES - big.len();
        big = listing(&name, pad);
        assert_eq!(big.len(), MAX_TOOL_LISTING_BYTES);
        let tools = vec![(name.clone(), big.clone()), (format!("{name}2"), big)];
        let pages = pages(&tools);
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0]["nextCursor"], format!("{name}2"));
    }
}
