//! The xl.cfg lexer and statement parser, after `libxlu_cfg_l.l` / `libxlu_cfg_y.y`.
//!
//! Grammar (xl's): a file is statements `ident = value` or `ident += value`, each ended by
//! a newline or `;`; an identifier is `[a-z][_0-9a-z]*`; a value is an atom (a string in
//! `"..."` with backslash escapes or `'...'` without, or a number `[0-9][0-9a-fx]*`, kept
//! as text as xl keeps it) or a list `[ atom, atom, ]` (newlines allowed inside, a trailing
//! comma allowed, no nesting); `#` starts a comment to the end of the line; blank
//! statements are allowed.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Problem;

/// A setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string or number, as its text.
    Atom(String),
    /// A list of atoms, each with its line.
    List(Vec<(usize, String)>),
}

/// One `key = value` (or `key += value`) statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The line the key is on (1-based).
    pub line: usize,
    /// The key.
    pub key: String,
    /// `+=` rather than `=`.
    pub append: bool,
    /// The value.
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Atom(String),
    Eq,
    PlusEq,
    End,
    Comma,
    Open,
    Close,
    Newline,
    Bad(String),
}

fn lex(text: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let tok = match c {
            '\n' => {
                out.push((line, Tok::Newline));
                line += 1;
                continue;
            }
            ' ' | '\t' | '\r' => continue,
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
                continue;
            }
            '=' => Tok::Eq,
            '+' if chars.peek() == Some(&'=') => {
                chars.next();
                Tok::PlusEq
            }
            ';' => Tok::End,
            ',' => Tok::Comma,
            '[' => Tok::Open,
            ']' => Tok::Close,
            'a'..='z' => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_lowercase() || n.is_ascii_digit() || n == '_' {
                        s.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                Tok::Ident(s)
            }
            '0'..='9' => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_digit() || ('a'..='f').contains(&n) || n == 'x' {
                        s.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                Tok::Atom(s)
            }
            '\'' => {
                let mut s = String::new();
                loop {
                    match chars.peek() {
                        None | Some('\n') => break Tok::Bad("unterminated string".into()),
                        Some('\'') => {
                            chars.next();
                            break Tok::Atom(s);
                        }
                        Some(&n) => {
                            s.push(n);
                            chars.next();
                        }
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                let mut bad = None;
                loop {
                    match chars.peek() {
                        None | Some('\n') => break Tok::Bad("unterminated string".into()),
                        Some('"') => {
                            chars.next();
                            break match bad {
                                Some(b) => Tok::Bad(b),
                                None => Tok::Atom(s),
                            };
                        }
                        Some('\\') => {
                            chars.next();
                            match chars.peek().copied() {
                                None | Some('\n') => {
                                    break Tok::Bad("unterminated string".into());
                                }
                                Some(e) => {
                                    chars.next();
                                    match e {
                                        '"' | '\'' | '\\' => s.push(e),
                                        'n' => s.push('\n'),
                                        't' => s.push('\t'),
                                        'r' => s.push('\r'),
                                        other => {
                                            bad.get_or_insert_with(|| {
                                                alloc::format!(
                                                    "unsupported escape \\{other} in a string"
                                                )
                                            });
                                        }
                                    }
                                }
                            }
                        }
                        Some(&n) => {
                            s.push(n);
                            chars.next();
                        }
                    }
                }
            }
            other => Tok::Bad(alloc::format!("unexpected character {other:?}")),
        };
        out.push((line, tok));
    }
    out
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of file".into(),
        Some(Tok::Ident(s)) => alloc::format!("`{s}`"),
        Some(Tok::Atom(s)) => alloc::format!("value {s:?}"),
        Some(Tok::Eq) => "`=`".into(),
        Some(Tok::PlusEq) => "`+=`".into(),
        Some(Tok::End) => "`;`".into(),
        Some(Tok::Comma) => "`,`".into(),
        Some(Tok::Open) => "`[`".into(),
        Some(Tok::Close) => "`]`".into(),
        Some(Tok::Newline) => "end of line".into(),
        Some(Tok::Bad(s)) => s.clone(),
    }
}

/// Splits `text` into settings; syntax errors become problems (the statement is skipped up
/// to the end of its line, then parsing goes on).
pub fn statements(text: &str, problems: &mut Vec<Problem>) -> Vec<Setting> {
    let toks = lex(text);
    let mut out = Vec::new();
    let mut i = 0;
    let last_line = toks.last().map_or(1, |(l, _)| *l);
    let line_at = |i: usize| toks.get(i).map_or(last_line, |(l, _)| *l);
    while i < toks.len() {
        let start = line_at(i);
        let first = i;
        match parse_one(&toks, &mut i) {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err((line, key, what)) => {
                problems.push(Problem::new(line.max(start), key, what));
                // Skip the rest of the statement: to the end of its list if one is open
                // (lists span lines), then to the end of the line.
                let seen = &toks[first..i.min(toks.len())];
                let in_list = seen.iter().any(|(_, t)| *t == Tok::Open)
                    && !seen.iter().any(|(_, t)| *t == Tok::Close);
                if in_list {
                    while i < toks.len() && toks[i].1 != Tok::Close {
                        i += 1;
                    }
                }
                while i < toks.len() && toks[i].1 != Tok::Newline {
                    i += 1;
                }
            }
        }
    }
    out
}

type SyntaxError = (usize, String, String);

fn parse_one(toks: &[(usize, Tok)], i: &mut usize) -> Result<Option<Setting>, SyntaxError> {
    let last_line = toks.last().map_or(1, |(l, _)| *l);
    let at = |i: usize| toks.get(i).map(|(_, t)| t);
    let line_at = |i: usize| toks.get(i).map_or(last_line, |(l, _)| *l);
    let (line, key) = match at(*i) {
        Some(Tok::Newline) | Some(Tok::End) => {
            *i += 1;
            return Ok(None);
        }
        Some(Tok::Ident(k)) => (line_at(*i), k.clone()),
        other => {
            return Err((
                line_at(*i),
                "syntax".into(),
                alloc::format!("expected a key, found {}", describe(other)),
            ));
        }
    };
    *i += 1;
    let append = match at(*i) {
        Some(Tok::Eq) => false,
        Some(Tok::PlusEq) => true,
        other => {
            return Err((
                line_at(*i),
                key,
                alloc::format!("expected `=` after the key, found {}", describe(other)),
            ));
        }
    };
    *i += 1;
    let value = match at(*i) {
        Some(Tok::Bad(what)) => return Err((line_at(*i), key, what.clone())),
        Some(Tok::Atom(s)) => {
            *i += 1;
            Value::Atom(s.clone())
        }
        Some(Tok::Open) => {
            *i += 1;
            let mut items = Vec::new();
            let mut want_item = true;
            loop {
                match at(*i) {
                    Some(Tok::Newline) => *i += 1,
                    Some(Tok::Close) => {
                        *i += 1;
                        break;
                    }
                    Some(Tok::Atom(s)) if want_item => {
                        items.push((line_at(*i), s.clone()));
                        want_item = false;
                        *i += 1;
                    }
                    Some(Tok::Comma) if !want_item => {
                        want_item = true;
                        *i += 1;
                    }
                    other => {
                        let what = if want_item {
                            "a value or `]`"
                        } else {
                            "`,` or `]`"
                        };
                        return Err((
                            line_at(*i),
                            key,
                            alloc::format!("in a list: expected {what}, found {}", describe(other)),
                        ));
                    }
                }
            }
            Value::List(items)
        }
        other => {
            return Err((
                line_at(*i),
                key,
                alloc::format!("expected a value after `=`, found {}", describe(other)),
            ));
        }
    };
    match at(*i) {
        None | Some(Tok::Newline) | Some(Tok::End) => {
            if at(*i).is_some() {
                *i += 1;
            }
            Ok(Some(Setting {
                line,
                key,
                append,
                value,
            }))
        }
        other => Err((
            line_at(*i),
            key,
            alloc::format!(
                "expected the end of the line or `;`, found {}",
                describe(other)
            ),
        )),
    }
}
