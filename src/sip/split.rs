/// Split a comma-separated header value (Route, Record-Route, Contact) into its elements,
/// respecting quoted strings and `<…>` so `"Bell, A." <sip:a@b>` stays one element.
pub fn split_header_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_commas_only() {
        let v = r#""Bell, A." <sip:a@b;lr>, <sip:c@d,e>;x=1 , sip:f@g"#;
        assert_eq!(
            split_header_list(v),
            vec![r#""Bell, A." <sip:a@b;lr>"#, "<sip:c@d,e>;x=1", "sip:f@g"]
        );
    }
}
