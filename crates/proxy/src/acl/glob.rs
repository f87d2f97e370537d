//! Glob matching as Redis does it (`stringmatchlen` in util.c): `*`, `?`, `[abc]`, `[^a-z]`,
//! `\` escapes. ACL key and channel patterns must match exactly what the nodes would match, so
//! the odd corners are kept: an unclosed `[` matches nothing, a reversed range `[z-a]` is
//! the range `a-z`, bytes compare as C's signed `char` in ranges, and a pattern nested more
//! than 1000 stars deep matches nothing (Redis' guard against abusive patterns).

/// Whether `text` matches `pattern`, case-sensitive (ACL patterns are).
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut give_up = false;
    match_from(pattern, text, &mut give_up, 0)
}

fn match_from(mut pattern: &[u8], mut text: &[u8], give_up: &mut bool, depth: u32) -> bool {
    if depth > 1000 {
        return false;
    }
    while !pattern.is_empty() && !text.is_empty() {
        match pattern[0] {
            b'*' => {
                while pattern.get(1) == Some(&b'*') {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                while !text.is_empty() {
                    if match_from(&pattern[1..], text, give_up, depth + 1) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    text = &text[1..];
                }
                // The rest of the pattern matches nowhere in the rest of the text, so a
                // longer match for an earlier star cannot help either.
                *give_up = true;
                return false;
            }
            b'?' => text = &text[1..],
            b'[' => {
                let (matched, last) = bracket(pattern, text[0]);
                if !matched {
                    return false;
                }
                // `last` is the class' closing `]` (or its last byte when unclosed), which
                // the common step below skips.
                pattern = &pattern[last..];
                text = &text[1..];
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                if pattern[0] != text[0] {
                    return false;
                }
                text = &text[1..];
            }
            literal => {
                if literal != text[0] {
                    return false;
                }
                text = &text[1..];
            }
        }
        pattern = &pattern[1..];
        if text.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            break;
        }
    }
    pattern.is_empty() && text.is_empty()
}

/// A `[...]` class (`pattern[0]` is the `[`) against one byte: whether it matched, and the
/// index of the class' last byte. An unclosed class ends at the pattern's last byte, as Redis
/// steps back one byte when it runs out of pattern.
fn bracket(pattern: &[u8], c: u8) -> (bool, usize) {
    let mut i = 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match &pattern[i..] {
            [b'\\', escaped, ..] => {
                i += 1;
                matched |= *escaped == c;
            }
            [b']', ..] => break,
            [] => {
                i -= 1;
                break;
            }
            [start, b'-', end, ..] => {
                let (lo, hi) = ordered(signed(*start), signed(*end));
                matched |= (lo..=hi).contains(&signed(c));
                i += 2;
            }
            [other, ..] => matched |= *other == c,
        }
        i += 1;
    }
    (matched != negate, i)
}

/// C's `char` is signed on the platforms Redis runs on, and ranges compare it as `int`.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

fn ordered(a: i32, b: i32) -> (i32, i32) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        assert!(!matches(b"*", b""), "Redis: a lone star does not match the empty string");
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"user:*", b"user:1"));
        assert!(!matches(b"user:*", b"use"));
        assert!(matches(b"a*b*c", b"aXXbYYc"));
        assert!(!matches(b"a*b*c", b"aXXbYY"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"a**", b"a"));
        assert!(!matches(b"", b"a"));
        assert!(matches(b"", b""));
    }

    #[test]
    fn classes_ranges_and_escapes() {
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-c]llo", b"hbllo"));
        assert!(matches(b"h[c-a]llo", b"hbllo"), "a reversed range is the same range");
        assert!(matches(b"a\\*", b"a*"));
        assert!(!matches(b"a\\*", b"ab"));
        assert!(matches(b"[\\]]", b"]"));
        // Redis' corners: an unclosed class is a class to the end, `[` alone matches nothing,
        // `[^` anything.
        assert!(matches(b"[abc", b"a"));
        assert!(!matches(b"[abc", b"d"));
        assert!(!matches(b"[", b"["));
        assert!(matches(b"[^", b"x"));
    }
}
