//! `sigs.k8s.io/yaml.JSONToYAML` as istioctl 1.20.2 uses it for `-o yaml`: the JSON is read
//! by go-yaml v2 (strings, ints, floats, booleans; mappings as Go maps) and written again
//! by go-yaml v2's emitter.
//!
//! Sources (kubernetes-sigs/yaml v1.4.0, istio 1.20.2's go.mod pin; facts only):
//! - `yaml.go` `JSONToYAML`: `yaml.Unmarshal` into `interface{}`, then `yaml.Marshal`.
//! - `goyaml.v2/resolve.go`: which plain texts are ints, floats, bools, nulls, timestamps.
//! - `goyaml.v2/sorter.go` `keyList.Less`: mapping keys sorted, digit runs compared as numbers.
//! - `goyaml.v2/encode.go`: `stringv` (plain when the text resolves to a string and is no
//!   base-60 float, literal when it holds "\n", else double-quoted), `floatv`
//!   (`FormatFloat(f, 'g', -1, 64)`, `.inf`, `.nan`), unicode output on.
//! - `goyaml.v2/emitterc.go`: block style, indent 2, sequences in a mapping not indented,
//!   empty collections as `{}`/`[]`, `analyze_scalar`/`select_scalar_style` (plain ->
//!   single-quoted -> double-quoted), the scalar writers and their line folding at column 80.

use super::envoy_dump::{go_parse_int, go_parse_uint, shortest_e, Out};

/// A value as go-yaml v2 holds it after reading the JSON.
#[derive(Debug, Clone, PartialEq)]
enum Y {
    Map(Vec<(String, Y)>),
    Seq(Vec<Y>),
    Str(String),
    /// An integer's decimal text.
    Int(String),
    Float(f64),
    Bool(bool),
}

pub fn json_to_yaml(v: &Out) -> String {
    let mut e =
        Emitter { out: String::new(), column: 0, indent: -1, whitespace: true, indention: true, open_ended: false };
    e.node(&from_json(v), Ctx::Root);
    // Document end: a line break after the last scalar; `...` after a kept (`|+`) literal.
    e.write_indent();
    if e.open_ended {
        e.indicator("...", true);
        e.indent = -1;
        e.write_indent();
    }
    e.out
}

fn from_json(v: &Out) -> Y {
    match v {
        Out::Obj(members) => {
            // A Go map: the last of repeated keys, then sorted.
            let mut m: Vec<(String, Y)> = Vec::new();
            for (k, v) in members {
                m.retain(|(x, _)| x != k);
                m.push((k.clone(), from_json(v)));
            }
            m.sort_by(|a, b| key_order(&a.0, &b.0));
            Y::Map(m)
        }
        Out::Arr(items) => Y::Seq(items.iter().map(from_json).collect()),
        Out::Str(s) => Y::Str(s.clone()),
        Out::Bool(b) => Y::Bool(*b),
        Out::Num(n) => match resolve(n) {
            Resolved::Int(i) => Y::Int(i),
            Resolved::Float(f) => Y::Float(f),
            // A JSON number always resolves to an int or a float.
            _ => Y::Str(n.clone()),
        },
    }
}

/// go-yaml v2 `keyList.Less` for two string keys.
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if a == b {
        return Equal;
    }
    if key_less(a, b) {
        Less
    } else if key_less(b, a) {
        Greater
    } else {
        Equal
    }
}

fn key_less(a: &str, b: &str) -> bool {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

enum Resolved {
    Str,
    Other,
    Int(String),
    Float(f64),
}

/// go-yaml v2 `resolve("", text)` for a plain scalar.
fn resolve(s: &str) -> Resolved {
    const OTHER: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no", "No", "NO", "false",
        "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null", "NULL",
    ];
    const FLOATS: &[(&str, f64)] = &[
        (".nan", f64::NAN),
        (".NaN", f64::NAN),
        (".NAN", f64::NAN),
        (".inf", f64::INFINITY),
        (".Inf", f64::INFINITY),
        (".INF", f64::INFINITY),
        ("+.inf", f64::INFINITY),
        ("+.Inf", f64::INFINITY),
        ("+.INF", f64::INFINITY),
        ("-.inf", f64::NEG_INFINITY),
        ("-.Inf", f64::NEG_INFINITY),
        ("-.INF", f64::NEG_INFINITY),
    ];
    let Some(first) = s.bytes().next() else { return Resolved::Other };
    let hint = match first {
        b'+' | b'-' | b'0'..=b'9' => 'D',
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => 'M',
        b'.' => '.',
        _ => return Resolved::Str,
    };
    if OTHER.contains(&s) {
        return Resolved::Other;
    }
    if let Some((_, f)) = FLOATS.iter().find(|(t, _)| *t == s) {
        return Resolved::Float(*f);
    }
    match hint {
        '.' => match s.parse::<f64>() {
            // Go's ParseFloat takes these; Rust's also takes "inf"/"nan" words, which
            // cannot start with '.'.
            Ok(f) => Resolved::Float(f),
            Err(_) => Resolved::Str,
        },
        'D' => {
            if is_timestamp(s) {
                return Resolved::Other;
            }
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Resolved::Int(i.to_string());
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Resolved::Int(u.to_string());
            }
            if is_yaml_float(&plain) {
                if let Ok(f) = plain.parse::<f64>() {
                    if f.is_finite() {
                        return Resolved::Float(f);
                    }
                }
            }
            if let Some(b) = plain.strip_prefix("0b") {
                if let Ok(i) = i64::from_str_radix(b, 2) {
                    return Resolved::Int(i.to_string());
                }
                if let Ok(u) = u64::from_str_radix(b, 2) {
                    return Resolved::Int(u.to_string());
                }
            } else if let Some(b) = plain.strip_prefix("-0b") {
                if let Ok(i) = i64::from_str_radix(&format!("-{b}"), 2) {
                    return Resolved::Int(i.to_string());
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml v2 `parseTimestamp`: four digits and '-', then one of its layouts. The layouts
/// are checked by shape (date `Y-M-D` with 1-2 digit month and day, optional time part);
/// calendar validity is not, so a text like "2024-02-31" is taken as a timestamp (quoted),
/// which only ever adds quotes.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &s[5..];
    let (date, time) = match rest.find(['T', 't', ' ']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut parts = date.split('-');
    let ok_num = |p: Option<&str>, max: u32| {
        p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
            && p.and_then(|p| p.parse::<u32>().ok()).is_some_and(|v| (1..=max).contains(&v))
    };
    if !(ok_num(parts.next(), 12) && ok_num(parts.next(), 31) && parts.next().is_none()) {
        return false;
    }
    match time {
        None => true,
        Some(t) => {
            let hms: Vec<&str> = t.splitn(3, ':').collect();
            hms.len() == 3
                && hms[0].len() <= 2
                && hms[0].bytes().all(|c| c.is_ascii_digit())
                && hms[1].len() <= 2
                && hms[1].bytes().all(|c| c.is_ascii_digit())
                && hms[2].bytes().next().is_some_and(|c| c.is_ascii_digit())
        }
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 2 {
            i += 1;
        }
        let g = &s[st..i];
        let ok = match g.len() {
            1 => true,
            2 => g.as_bytes()[0] <= b'5',
            _ => false,
        };
        if !ok {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// `strconv.FormatFloat(f, 'g', -1, 64)` and go-yaml's names for the non-finite ones.
fn go_yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mantissa, exp) = shortest_e(f);
    // Shortest 'g' uses %e when the exponent is < -4 or >= 6 (eprec = 6 when shortest).
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

// ---------------------------------------------------------------------------------------
// The emitter: the parts of go-yaml v2's emitterc.go these documents reach.

const BEST_INDENT: i64 = 2;
const BEST_WIDTH: usize = 80;

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Root,
    /// A mapping's value, after "key:".
    MapValue,
    /// A sequence item, after "-".
    SeqItem,
    /// A mapping's key (a simple key: no line folding).
    Key,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Emitter {
    out: String,
    column: usize,
    indent: i64,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    // libyaml's byte test: LF, 0x20-0x7E, U+00A0 and up except surrogates, BOM and U+FFFE/F.
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
        || (0x10000..=0x10FFFF).contains(&u)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t'))
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None | Some('\0') => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c),
    }
}

fn analyze(value: &str) -> Analysis {
    let chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = value.starts_with("---") || value.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let n = chars.len();
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = i + 1 >= n || is_blank(chars.get(i + 1).copied());
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => {
                    block_indicators = true
                }
                '?' | ':' if followed_by_whitespace => block_indicators = true,
                '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == n {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + 1 == n {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(Some(c));
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn indicator(&mut self, s: &str, need_whitespace: bool) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in s.chars() {
            self.put(c);
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn node(&mut self, y: &Y, ctx: Ctx) {
        match y {
            Y::Map(m) if m.is_empty() => {
                self.indicator("{", true);
                self.indicator("}", false);
            }
            Y::Seq(s) if s.is_empty() => {
                self.indicator("[", true);
                self.indicator("]", false);
            }
            Y::Map(m) => {
                let saved = self.indent;
                self.indent = if self.indent < 0 { 0 } else { self.indent + BEST_INDENT };
                for (i, (k, v)) in m.iter().enumerate() {
                    // The first key of a mapping in a sequence item stays on the "- " line.
                    if !(i == 0 && ctx == Ctx::SeqItem) {
                        self.write_indent();
                    }
                    self.scalar(k, Ctx::Key);
                    self.indicator(":", false);
                    self.node(v, Ctx::MapValue);
                }
                self.indent = saved;
            }
            Y::Seq(s) => {
                let saved = self.indent;
                // In a mapping (after "key:") a sequence is not indented.
                let indentless = ctx == Ctx::MapValue && !self.indention;
                self.indent = if self.indent < 0 {
                    0
                } else if indentless {
                    self.indent
                } else {
                    self.indent + BEST_INDENT
                };
                for v in s {
                    self.write_indent();
                    self.indicator("-", true);
                    self.indention = true;
                    self.node(v, Ctx::SeqItem);
                }
                self.indent = saved;
            }
            Y::Str(s) => self.scalar(s, ctx),
            Y::Int(i) => self.plain_text(i, ctx),
            Y::Float(f) => self.plain_text(&go_yaml_float(*f), ctx),
            Y::Bool(b) => self.plain_text(if *b { "true" } else { "false" }, ctx),
        }
    }

    /// Numbers and booleans: plain, never folded.
    fn plain_text(&mut self, s: &str, ctx: Ctx) {
        let saved = self.indent;
        self.indent = if self.indent < 0 { BEST_INDENT } else { self.indent + BEST_INDENT };
        self.write_plain(s, ctx != Ctx::Key);
        self.indent = saved;
    }

    fn scalar(&mut self, s: &str, ctx: Ctx) {
        let requested = if s.contains('\n') {
            Style::Literal
        } else if matches!(resolve(s), Resolved::Str) && !is_base60_float(s) {
            Style::Plain
        } else {
            Style::Double
        };
        let a = analyze(s);
        let simple_key = ctx == Ctx::Key;
        let mut style = requested;
        if simple_key && a.multiline {
            style = Style::Double;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || simple_key) {
            style = Style::Double;
        }
        // emit_scalar: increase_indent(flow=true), so a root scalar is at 2.
        let saved = self.indent;
        self.indent = if self.indent < 0 { BEST_INDENT } else { self.indent + BEST_INDENT };
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.write_plain(s, allow_breaks),
            Style::Single => self.write_single(s, allow_breaks),
            Style::Double => self.write_double(s, allow_breaks),
            Style::Literal => self.write_literal(s),
        }
        self.indent = saved;
    }

    fn write_plain(&mut self, s: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && chars.get(i + 1) != Some(&' ') {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, s: &str, allow_breaks: bool) {
        self.indicator("'", true);
        let chars: Vec<char> = s.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let n = chars.len();
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < n
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.indicator("'", false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_double(&mut self, s: &str, allow_breaks: bool) {
        self.indicator("\"", true);
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let short = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match short {
                    Some(e) => self.put(e),
                    None => {
                        let u = c as u32;
                        let text = if u <= 0xFF {
                            format!("x{u:02X}")
                        } else if u <= 0xFFFF {
                            format!("u{u:04X}")
                        } else {
                            format!("U{u:08X}")
                        };
                        for ch in text.chars() {
                            self.put(ch);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i + 1 < n {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.indicator("\"", false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, s: &str) {
        self.indicator("|", true);
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.indicator(&BEST_INDENT.to_string(), false);
        }
        self.open_ended = false;
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => {
                self.open_ended = true;
                Some("+")
            }
            [.., before, _] if is_break(*before) => {
                self.open_ended = true;
                Some("+")
            }
            _ => None,
        };
        if let Some(h) = chomp {
            self.indicator(h, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}
