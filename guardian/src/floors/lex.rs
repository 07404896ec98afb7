//! Test-only lexer behind `floors`: identifiers, `::`, punctuation and string literals with
//! their line; comments, char literals and lifetimes dropped.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

/// Tokens with their line; comments dropped, string literals kept whole, char literals and
/// lifetimes dropped.
pub(super) fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = src.chars().collect();
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(b[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' || ((c == 'b' || c == 'r') && raw_or_byte_string(&b, i).is_some()) {
            let (start, hashes) = if c == '"' {
                (i, None)
            } else {
                raw_or_byte_string(&b, i).expect("checked")
            };
            let (s, end) = read_string(&b, start, hashes);
            out.push((Tok::Str(s.clone()), line));
            line += s.matches('\n').count();
            i = end;
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            let q = if c == 'b' { i + 1 } else { i };
            if at(q + 1) == '\\' {
                i = q + 3;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(q + 2) == '\'' {
                i = q + 3;
            } else {
                i = q + 1; // a lifetime: its name follows as an identifier
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), line));
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// At `b"`, `r"`, `r#"`, `br#"`…: the index of the opening quote and the raw hashes (if raw).
fn raw_or_byte_string(b: &[char], i: usize) -> Option<(usize, Option<usize>)> {
    let mut j = i + usize::from(b[i] == 'b');
    if b.get(j) == Some(&'"') && j == i + 1 {
        return Some((j, None));
    }
    if b.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while b.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (b.get(j) == Some(&'"')).then_some((j, Some(hashes)))
}

/// The string's content and the index after it; `raw`: the number of closing hashes.
fn read_string(b: &[char], quote: usize, raw: Option<usize>) -> (String, usize) {
    let mut i = quote + 1;
    let mut s = String::new();
    while i < b.len() {
        match (b[i], raw) {
            ('\\', None) => {
                s.push(b.get(i + 1).copied().unwrap_or(' '));
                i += 2;
            }
            ('"', None) => return (s, i + 1),
            ('"', Some(n)) if (1..=n).all(|k| b.get(i + k) == Some(&'#')) => return (s, i + 1 + n),
            (c, _) => {
                s.push(c);
                i += 1;
            }
        }
    }
    (s, i)
}
