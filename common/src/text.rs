//! Human text on its way into plugin output: one sanitizer and one way to shorten.
//!
//! Process names, command lines, paths and messages come from whoever controls the process
//! or the file. Before any of it reaches the output, [`sanitize`] makes sure it cannot:
//! - start perfdata (`|`) or a new line (`\n`, `\r`, U+2028/U+2029, U+0085, VT, FF);
//! - drive a terminal or a web UI (ESC and every other C0/C1 control character, DEL);
//! - reorder what a reader sees (bidi overrides and isolates, U+202A-U+202E,
//!   U+2066-U+2069, and the invisible direction marks).
//!
//! [`shorten`] cuts text to a byte budget at a word boundary, never inside a number, so a
//! cut figure can never be read as a different one.

/// The replacement for a character that could corrupt or disguise the output.
pub const REPLACEMENT: char = '?';

/// `text` with line breaks and tabs as spaces, `|` as `/`, and control, bidi and other
/// invisible formatting characters as [`REPLACEMENT`].
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' => '/',
            '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            c if is_hostile(c) => REPLACEMENT,
            c => c,
        })
        .collect()
}

/// Control characters and the bidi/invisible formatting characters.
fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}'              // ARABIC LETTER MARK
            | '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM, RLM
            | '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, isolates
            | '\u{feff}'            // zero-width no-break space (BOM)
        )
}

/// `text` cut to at most `max` bytes, ending in `...` when cut. The cut goes back to a
/// space when one is near, and never falls between two digits or inside a character.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let ellipsis = "...";
    let budget = max.saturating_sub(ellipsis.len());
    let mut end = budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // A space in the last quarter of the budget (or 40 bytes) makes a clean word cut.
    let near = end.saturating_sub((budget / 4).max(40));
    if let Some(space) = text[..end].rfind(' ').filter(|&s| s >= near && s > 0) {
        end = space;
    } else {
        let bytes = text.as_bytes();
        while end > 0 && bytes[end].is_ascii_digit() && bytes[end - 1].is_ascii_digit() {
            end -= 1;
        }
    }
    format!("{}{ellipsis}", text[..end].trim_end())
}

/// A serde error message (YAML, JSON) without what the input said: a quoted or backticked
/// span before `, expected` is the input's content (`invalid type: string "root:*:...",
/// expected a map`), the rest is what the format expected. A plugin reading a file it was
/// pointed at must never print that file's content; where and what was expected is enough.
pub fn without_input(msg: &str) -> String {
    let (head, tail) = msg.split_at(msg.find(", expected").unwrap_or(msg.len()));
    let mut out = String::new();
    let mut quote = None;
    for c in head.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '`' => quote = Some(c),
            None => out.push(c),
        }
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let out = out.trim_end_matches([' ', ':']);
    format!("{out}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_line_breaks_are_replaced() {
        assert_eq!(
            sanitize("ev\u{1b}[31mil\u{2028}x\ty|z\r\n\u{202e}gpj.exe\u{7f}\u{9b}"),
            "ev?[31mil x y/z  ?gpj.exe??"
        );
        assert_eq!(
            sanitize("nginx: worker process [1]"),
            "nginx: worker process [1]"
        );
        assert_eq!(
            sanitize("caf\u{e9} \u{65e5}\u{672c}"),
            "caf\u{e9} \u{65e5}\u{672c}"
        );
        assert_eq!(sanitize("\0a\u{2066}b\u{2069}\u{feff}"), "?a?b??");
    }

    #[test]
    fn shorten_cuts_at_words_and_never_inside_a_number() {
        assert_eq!(shorten("short", 10), "short");
        let s = "limit 1024:4096 too low (nofile 1024:409612345) and more";
        let cut = shorten(s, 40);
        assert!(cut.len() <= 40 && cut.ends_with("..."), "{cut}");
        assert_eq!(cut, "limit 1024:4096 too low (nofile...");
        // No space near the end: the cut backs off to the start of the number.
        let digits = format!("x{}", "7".repeat(100));
        assert_eq!(shorten(&digits, 20), "x...");
        let multibyte = "\u{e9}".repeat(50);
        let cut = shorten(&multibyte, 21);
        assert!(cut.len() <= 21 && cut.ends_with("..."), "{cut}");
        assert!(shorten("abc", 0).len() <= 3);
    }

    #[test]
    fn serde_messages_lose_the_input() {
        assert_eq!(
            without_input(
                r#"invalid type: string "root:*:20228:0:99999:7:::", expected struct Config"#
            ),
            "invalid type: string, expected struct Config"
        );
        assert_eq!(
            without_input("unknown field `limts_conf`, expected one of `name`, `select`"),
            "unknown field, expected one of `name`, `select`"
        );
        assert_eq!(
            without_input(r#"limit value "lots" is not a number"#),
            "limit value is not a number"
        );
        assert_eq!(
            without_input("EOF while parsing a value"),
            "EOF while parsing a value"
        );
    }
}
