//! Redis's glob matching (`stringmatchlen`): `*`, `?`, `[a-z]`, `[^abc]` and
//! `\x` escapes, used by KEYS, SCAN MATCH, CONFIG GET and pub/sub patterns.

/// True when `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_from(pattern, text, nocase, &mut skip_longer, 0)
}

// Redis bounds recursion and stops retrying longer suffixes once a `*` failed
// on the whole remainder: without that, `a*a*a*...b` takes exponential time.
fn match_from(
    pattern: &[u8],
    text: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    depth: usize,
) -> bool {
    if depth > 1000 {
        return false;
    }
    let (mut p, mut t) = (0usize, 0usize);
    let fold = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    while p < pattern.len() && t < text.len() {
        match pattern[p] {
            b'*' => {
                while pattern.get(p + 1) == Some(&b'*') {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                for start in t..text.len() {
                    if match_from(
                        &pattern[p + 1..],
                        &text[start..],
                        nocase,
                        skip_longer,
                        depth + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                }
                *skip_longer = true;
                return false;
            }
            b'?' => t += 1,
            b'[' => {
                p += 1;
                let negate = pattern.get(p) == Some(&b'^');
                if negate {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    match pattern.get(p) {
                        None => {
                            p -= 1;
                            break;
                        }
                        Some(b']') => break,
                        Some(b'\\') if p + 1 < pattern.len() => {
                            p += 1;
                            if fold(pattern[p]) == fold(text[t]) {
                                matched = true;
                            }
                        }
                        Some(_) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                            let (mut low, mut high) = (fold(pattern[p]), fold(pattern[p + 2]));
                            if low > high {
                                std::mem::swap(&mut low, &mut high);
                            }
                            p += 2;
                            let c = fold(text[t]);
                            if c >= low && c <= high {
                                matched = true;
                            }
                        }
                        Some(&c) => {
                            if fold(c) == fold(text[t]) {
                                matched = true;
                            }
                        }
                    }
                    p += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                t += 1;
            }
            b'\\' if p + 1 < pattern.len() => {
                p += 1;
                if fold(pattern[p]) != fold(text[t]) {
                    return false;
                }
                t += 1;
            }
            c => {
                if fold(c) != fold(text[t]) {
                    return false;
                }
                t += 1;
            }
        }
        p += 1;
        if t == text.len() {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && t == text.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_cases() {
        assert!(matches(b"*", b"anything", false));
        // As stringmatchlen: callers special-case a lone `*` (KEYS, SCAN) themselves.
        assert!(!matches(b"*", b"", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"h\\*llo", b"h*llo", false));
        assert!(!matches(b"h\\*llo", b"hello", false));
        assert!(matches(b"USER:*", b"user:1", true));
        assert!(!matches(b"a", b"", false));
        assert!(!matches(b"", b"a", false));
        assert!(matches(b"a*", b"a", false));
        assert!(!matches(b"a*b", b"a", false));
        assert!(matches(b"[abc", b"a", false));
    }

    #[test]
    fn pathological_pattern_finishes() {
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = vec![b'a'; 200];
        assert!(!matches(pattern, &text, false));
    }
}
