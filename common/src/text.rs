//! Text we did not write — from a model, an upstream, a client's registration — as a person
//! will read it. A character that displays as nothing, or that changes how the text around it
//! is displayed (bidirectional overrides, isolates, marks), lets what a person reads differ from
//! what is stored or run: pages make each one visible ([`visible`]), tool arguments refuse them
//! ([`refuse_unseen`]) and names we keep drop them ([`clean_name`]). One classification serves
//! all three, so a page and a check never disagree on what counts.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Why a character is not seen as itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unseen {
    /// C0 and C1 control characters and DEL.
    Control,
    /// Changes the direction, order or shape in which the text around it is displayed: bidi
    /// embeddings, overrides, isolates and marks, and the deprecated shaping controls.
    Direction,
    /// Displays as nothing, or as blank: zero-width characters and joiners, invisible operators,
    /// the byte-order mark, the soft hyphen, blank fillers, tag characters, line and paragraph
    /// separators, and variation selectors that select nothing.
    Invisible,
}

/// Most characters a `client_name` keeps: the consent page shows it in a sentence.
pub const MAX_NAME_CHARS: usize = 100;

/// How `c` is not seen, taken on its own. A variation selector counts as [`Unseen::Invisible`]
/// here; in a text, [`visible`], [`first_unseen`] and [`clean_name`] let one through directly
/// after a character that is shown, where it only picks that character's glyph (the emoji
/// style of ❤️, say).
pub fn unseen(c: char) -> Option<Unseen> {
    if c.is_control() {
        return Some(Unseen::Control);
    }
    match c {
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{206f}' => Some(Unseen::Direction),
        '\u{00ad}'
        | '\u{034f}'
        | '\u{115f}'
        | '\u{1160}'
        | '\u{17b4}'
        | '\u{17b5}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200d}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{2060}'..='\u{2065}'
        | '\u{2800}'
        | '\u{3164}'
        | '\u{feff}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e007f}' => Some(Unseen::Invisible),
        c if is_variation_selector(c) => Some(Unseen::Invisible),
        _ => None,
    }
}

/// Selects a glyph variant of the character before it; a run of them is invisible and can
/// carry hidden data (one byte each), so only the first after a shown character passes.
fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{180b}'..='\u{180d}' | '\u{180f}' | '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}')
}

/// Each character of `text` with how it is not seen, if it is not: [`unseen`] in context.
fn classify(text: &str) -> impl Iterator<Item = (char, Option<Unseen>)> + '_ {
    let mut after_shown = false;
    text.chars().map(move |c| {
        let selector = is_variation_selector(c);
        let class = if selector && after_shown {
            None
        } else {
            unseen(c)
        };
        // White space has no variants: a selector after it selects nothing, and would be left
        // leading a name once the space is trimmed (the fuzz target domain_inputs found it).
        after_shown = class.is_none() && !selector && !c.is_whitespace();
        (c, class)
    })
}

/// The first character of `text` a person would not see as itself, if any.
pub fn first_unseen(text: &str) -> Option<char> {
    classify(text).find_map(|(c, class)| class.map(|_| c))
}

/// `text` with every character a person would not see replaced by a visible marker such as
/// `⟨U+202E⟩`, so the reader sees that something is there and where. Everything else is kept as
/// it is (HTML escaping is the page's business). Borrowed when there is nothing to mark.
pub fn visible(text: &str) -> Cow<'_, str> {
    if first_unseen(text).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (c, class) in classify(text) {
        match class {
            // Writing to a String cannot fail.
            Some(_) => {
                let _ = write!(out, "⟨U+{:04X}⟩", u32::from(c));
            }
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `U+202E (RIGHT-TO-LEFT OVERRIDE)`: the character as an error message names it.
pub fn describe(c: char) -> String {
    let code = u32::from(c);
    match name(c) {
        Some(name) => format!("U+{code:04X} ({name})"),
        None => match unseen(c) {
            Some(Unseen::Control) => format!("U+{code:04X} (a control character)"),
            Some(Unseen::Direction) => format!("U+{code:04X} (a text-direction control)"),
            Some(Unseen::Invisible) => format!("U+{code:04X} (an invisible character)"),
            None => format!("U+{code:04X}"),
        },
    }
}

/// Refuses a free-text argument holding a character a person would not see as itself, naming
/// the argument and the character: e.g. "comment contains U+202E (RIGHT-TO-LEFT OVERRIDE),
/// which would make the approval preview read differently from what runs; remove it".
/// `consequence` finishes "which would make …".
pub fn refuse_unseen(argument: &str, value: &str, consequence: &str) -> Result<(), String> {
    match first_unseen(value) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{argument} contains {}, which would make {consequence}; remove it",
            describe(c)
        )),
    }
}

/// A name someone else chose (an OAuth client's `client_name`, from a metadata document or a
/// dynamic registration) as we keep and show it: without any character a person would not see,
/// trimmed, [`MAX_NAME_CHARS`] characters at most; `None` if nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let seen: String = classify(raw)
        .filter(|(_, class)| class.is_none())
        .map(|(c, _)| c)
        .collect();
    let capped: String = seen.trim().chars().take(MAX_NAME_CHARS).collect();
    let name = capped.trim_end();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The Unicode names of the characters people are most likely to meet, for error messages.
fn name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00ad}' => "SOFT HYPHEN",
        '\u{034f}' => "COMBINING GRAPHEME JOINER",
        '\u{061c}' => "ARABIC LETTER MARK",
        '\u{115f}' => "HANGUL CHOSEONG FILLER",
        '\u{1160}' => "HANGUL JUNGSEONG FILLER",
        '\u{180e}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{200b}' => "ZERO WIDTH SPACE",
        '\u{200c}' => "ZERO WIDTH NON-JOINER",
        '\u{200d}' => "ZERO WIDTH JOINER",
        '\u{200e}' => "LEFT-TO-RIGHT MARK",
        '\u{200f}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202a}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202b}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202c}' => "POP DIRECTIONAL FORMATTING",
        '\u{202d}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202e}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}' => "FUNCTION APPLICATION",
        '\u{2062}' => "INVISIBLE TIMES",
        '\u{2063}' => "INVISIBLE SEPARATOR",
        '\u{2064}' => "INVISIBLE PLUS",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{2800}' => "BRAILLE PATTERN BLANK",
        '\u{3164}' => "HANGUL FILLER",
        '\u{feff}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{ffa0}' => "HALFWIDTH HANGUL FILLER",
        '\u{e0001}' => "LANGUAGE TAG",
        '\u{e0020}'..='\u{e007f}' => "a tag character",
        c if is_variation_selector(c) => "a variation selector",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character the classes are meant to cover, by class.
    const DIRECTION: &[char] = &[
        '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
        '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{206a}', '\u{206f}',
    ];
    const INVISIBLE: &[char] = &[
        '\u{00ad}',
        '\u{034f}',
        '\u{115f}',
        '\u{1160}',
        '\u{17b4}',
        '\u{17b5}',
        '\u{180e}',
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{2028}',
        '\u{2029}',
        '\u{2060}',
        '\u{2061}',
        '\u{2062}',
        '\u{2063}',
        '\u{2064}',
        '\u{2800}',
        '\u{3164}',
        '\u{feff}',
        '\u{ffa0}',
        '\u{fff9}',
        '\u{fffb}',
        '\u{13430}',
        '\u{1bca0}',
        '\u{1d173}',
        '\u{e0001}',
        '\u{e0020}',
        '\u{e0041}',
        '\u{e007f}',
    ];
    const SELECTORS: &[char] = &[
        '\u{180b}',
        '\u{180f}',
        '\u{fe00}',
        '\u{fe0e}',
        '\u{fe0f}',
        '\u{e0100}',
        '\u{e01ef}',
    ];
    const CONTROL: &[char] = &[
        '\u{0000}', '\u{0007}', '\t', '\n', '\r', '\u{001b}', '\u{007f}', '\u{0080}', '\u{0085}',
        '\u{009b}', '\u{009f}',
    ];
    /// Look like nothing special but are plain text: kept as they are.
    const ORDINARY: &[char] = &[
        'a', 'Z', '0', ' ', '-', '<', '&', 'é', 'ß', 'א', 'ب', '中', '—', '“', '\u{00a0}',
        '\u{2014}', '\u{0301}', '😀', '\u{fffd}', '\u{e000}',
    ];

    fn marker(c: char) -> String {
        format!("⟨U+{:04X}⟩", u32::from(c))
    }

    #[test]
    fn every_class_is_made_visible_between_ordinary_text() {
        for (class, chars) in [
            (Unseen::Control, CONTROL),
            (Unseen::Direction, DIRECTION),
            (Unseen::Invisible, INVISIBLE),
        ] {
            for &c in chars {
                assert_eq!(unseen(c), Some(class), "{}", describe(c));
                let text = format!("pay{c}pal");
                let shown = visible(&text);
                assert_eq!(shown, format!("pay{}pal", marker(c)), "{}", describe(c));
                assert!(!shown.contains(c), "{} stayed raw", describe(c));
                assert_eq!(first_unseen(&text), Some(c));
            }
        }
    }

    #[test]
    fn the_markers_read_as_the_issue_names_them() {
        assert_eq!(visible("a\u{202e}b"), "a⟨U+202E⟩b");
        assert_eq!(visible("\u{200b}"), "⟨U+200B⟩");
        assert_eq!(visible("\u{e0041}"), "⟨U+E0041⟩");
        assert_eq!(visible("\u{7}"), "⟨U+0007⟩");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for &c in ORDINARY {
            assert_eq!(unseen(c), None, "{}", describe(c));
        }
        let text: String = ORDINARY.iter().collect();
        assert!(matches!(visible(&text), Cow::Borrowed(t) if t == text));
        assert_eq!(first_unseen(&text), None);
        assert_eq!(visible(""), "");
    }

    #[test]
    fn a_variation_selector_after_white_space_selects_nothing() {
        for &s in SELECTORS {
            for space in [' ', '\u{2000}', '\u{3000}'] {
                let text = format!("a{space}{s}b");
                assert_eq!(first_unseen(&text), Some(s), "{}", describe(s));
                assert_eq!(clean_name(&format!("{space}{s}")), None, "{}", describe(s));
            }
        }
        assert_eq!(clean_name("\u{2000}\u{e0100}Acme"), Some("Acme".to_owned()));
    }

    #[test]
    fn one_variation_selector_after_a_shown_character_is_its_glyph() {
        // The emoji style of a heart, text style of a digit: kept.
        for text in ["\u{2764}\u{fe0f}", "1\u{fe0e}", "葛\u{e0100}", "a\u{180b}"] {
            assert_eq!(visible(text), text);
        }
        for &s in SELECTORS {
            // Alone, first, after another selector or after something unseen: marked.
            assert_eq!(visible(&s.to_string()), marker(s));
            assert_eq!(
                visible(&format!("a{s}{s}")),
                format!("a{s}{}", marker(s)),
                "{}",
                describe(s)
            );
            assert_eq!(
                visible(&format!("\u{200b}{s}")),
                format!("{}{}", marker('\u{200b}'), marker(s))
            );
            assert_eq!(first_unseen(&format!("x{s}")), None);
            assert_eq!(first_unseen(&format!("x{s}{s}")), Some(s));
        }
        // Data hidden in selectors after one character (a byte each) shows as markers.
        let smuggled = "A\u{fe0f}\u{e0130}\u{e0121}";
        assert_eq!(visible(smuggled), "A\u{fe0f}⟨U+E0130⟩⟨U+E0121⟩");
    }

    /// No character of all of Unicode survives [`visible`] raw if it is unseen, in any position,
    /// and every shown character survives exactly.
    #[test]
    fn visible_never_lets_an_unseen_character_through() {
        for code in 0..=u32::from(char::MAX) {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let text = format!("{c}x{c}");
            let shown = visible(&text);
            match unseen(c) {
                Some(_) if is_variation_selector(c) => {
                    // Marked first, kept after the shown `x`.
                    assert_eq!(shown, format!("{}x{c}", marker(c)));
                }
                Some(_) => {
                    assert_eq!(shown, format!("{}x{}", marker(c), marker(c)));
                }
                None => assert_eq!(shown, text),
            }
            assert!(
                classify(&shown).all(|(_, class)| class.is_none()),
                "{code:04X}"
            );
        }
    }

    #[test]
    fn errors_name_the_argument_and_the_character() {
        assert_eq!(
            refuse_unseen(
                "comment",
                "ok\u{202e}gnp.exe",
                "the approval preview read differently from what runs"
            ),
            Err(
                "comment contains U+202E (RIGHT-TO-LEFT OVERRIDE), which would make the \
                 approval preview read differently from what runs; remove it"
                    .to_owned()
            )
        );
        assert_eq!(
            refuse_unseen("comment", "Blog \u{2764}\u{fe0f} (owner)", "x"),
            Ok(())
        );
        assert_eq!(describe('\u{200b}'), "U+200B (ZERO WIDTH SPACE)");
        assert_eq!(describe('\u{7}'), "U+0007 (a control character)");
        assert_eq!(describe('\u{206c}'), "U+206C (a text-direction control)");
        assert_eq!(describe('\u{17b4}'), "U+17B4 (an invisible character)");
        assert_eq!(describe('\u{e0041}'), "U+E0041 (a tag character)");
        assert_eq!(describe('\u{fe0f}'), "U+FE0F (a variation selector)");
        for &c in CONTROL.iter().chain(DIRECTION).chain(INVISIBLE) {
            let refused = refuse_unseen("content", &format!("v=spf1{c} -all"), "x");
            assert!(
                refused.is_err_and(|e| e.contains(&describe(c))),
                "{}",
                describe(c)
            );
        }
    }

    #[test]
    fn names_drop_what_is_not_seen() {
        assert_eq!(clean_name("  Claude \n"), Some("Claude".to_owned()));
        assert_eq!(
            clean_name("Good\u{202e}emaN\u{0007}"),
            Some("GoodemaN".to_owned())
        );
        assert_eq!(
            clean_name("Cl\u{200b}au\u{2066}de\u{e0041}\u{fe0f}"),
            Some("Claude".to_owned())
        );
        assert_eq!(
            clean_name("Heart \u{2764}\u{fe0f}"),
            Some("Heart \u{2764}\u{fe0f}".into())
        );
        assert_eq!(clean_name(" \t\u{2066} \u{feff}"), None);
        assert_eq!(clean_name(""), None);
        let long = "é".repeat(150);
        assert_eq!(
            clean_name(&long).map(|n| n.chars().count()),
            Some(MAX_NAME_CHARS)
        );
        for &c in CONTROL
            .iter()
            .chain(DIRECTION)
            .chain(INVISIBLE)
            .chain(SELECTORS)
        {
            let name = clean_name(&format!("A{c}{c}B")).unwrap_or_default();
            assert!(first_unseen(&name).is_none(), "{}: {name:?}", describe(c));
        }
    }
}
