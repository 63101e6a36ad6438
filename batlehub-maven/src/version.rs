//! Maven version order: a small subset of Maven's `ComparableVersion`.
//!
//! Versions split into numeric and alphabetic items at `.`, `-` and digit/letter
//! transitions. Numbers compare numerically; qualifiers rank
//! `alpha < beta < milestone < rc = cr < snapshot < "" (release) = ga = final < sp`, and
//! unknown qualifiers sort after `sp`, alphabetically. Trailing zeros and empty
//! qualifiers are ignored, so `1.0` equals `1`.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Num(u64),
    Str(String),
}

fn qualifier_rank(q: &str) -> (u8, &str) {
    match q {
        "alpha" | "a" => (0, ""),
        "beta" | "b" => (1, ""),
        "milestone" | "m" => (2, ""),
        "rc" | "cr" => (3, ""),
        "snapshot" => (4, ""),
        "" | "ga" | "final" | "release" => (5, ""),
        "sp" => (6, ""),
        other => (7, other),
    }
}

fn items(v: &str) -> Vec<Item> {
    let lower = v.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digit = false;
    let flush = |cur: &mut String, digit: bool, out: &mut Vec<Item>| {
        if !cur.is_empty() {
            if digit {
                out.push(Item::Num(cur.parse().unwrap_or(u64::MAX)));
            } else {
                out.push(Item::Str(std::mem::take(cur)));
            }
        }
        cur.clear();
    };
    for c in lower.chars() {
        if c == '.' || c == '-' || c == '_' {
            flush(&mut cur, digit, &mut out);
            continue;
        }
        let d = c.is_ascii_digit();
        if !cur.is_empty() && d != digit {
            flush(&mut cur, digit, &mut out);
        }
        digit = d;
        cur.push(c);
    }
    flush(&mut cur, digit, &mut out);
    while matches!(out.last(), Some(Item::Num(0)))
        || matches!(out.last(), Some(Item::Str(s)) if qualifier_rank(s).0 == 5)
    {
        out.pop();
    }
    out
}

fn cmp_item(a: Option<&Item>, b: Option<&Item>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(Item::Num(x)), Some(Item::Num(y))) => x.cmp(y),
        // A number beats a qualifier (1.0.1 > 1.0-rc).
        (Some(Item::Num(_)), Some(Item::Str(_))) => Ordering::Greater,
        (Some(Item::Str(_)), Some(Item::Num(_))) => Ordering::Less,
        (Some(Item::Str(x)), Some(Item::Str(y))) => qualifier_rank(x).cmp(&qualifier_rank(y)),
        (Some(Item::Num(x)), None) => x.cmp(&0),
        (None, Some(Item::Num(y))) => 0.cmp(y),
        (Some(Item::Str(x)), None) => qualifier_rank(x).cmp(&qualifier_rank("")),
        (None, Some(Item::Str(y))) => qualifier_rank("").cmp(&qualifier_rank(y)),
    }
}

/// Compares two Maven versions.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (items(a), items(b));
    for i in 0..x.len().max(y.len()) {
        match cmp_item(x.get(i), y.get(i)) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

/// Sorts versions in Maven order, lowest first.
#[cfg(test)]
pub(crate) fn sort(versions: &mut [String]) {
    versions.sort_by(|a, b| order(a, b));
}

/// The total order of [`sort`]: Maven's version order, ties broken by spelling.
pub(crate) fn order(a: &str, b: &str) -> Ordering {
    compare(a, b).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_order() {
        let mut v: Vec<String> = [
            "1.10",
            "1.2",
            "1.0-SNAPSHOT",
            "1.0",
            "1.0-rc1",
            "1.0-alpha-1",
            "1.0-beta",
            "1.0-sp1",
            "1.0.1",
            "1.0-M2",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        sort(&mut v);
        assert_eq!(
            v,
            [
                "1.0-alpha-1",
                "1.0-beta",
                "1.0-M2",
                "1.0-rc1",
                "1.0-SNAPSHOT",
                "1.0",
                "1.0-sp1",
                "1.0.1",
                "1.2",
                "1.10"
            ]
        );
        assert_eq!(compare("1.0", "1"), Ordering::Equal);
        assert_eq!(compare("1.0-ga", "1"), Ordering::Equal);
    }
}
