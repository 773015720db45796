//! Number formatting for users: VND with Vietnamese digit grouping.

/// Formats an integer amount with `.` as the thousands separator, the
/// Vietnamese convention (1.234.567).
pub fn group_vi(n: i64) -> String {
    group(n, '.')
}

/// Same with `,` (English).
pub fn group_en(n: i64) -> String {
    group(n, ',')
}

fn group(n: i64, sep: char) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    let first = digits.len() % 3;
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (i + 3 - first).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// A number as written in claims: no grouping, no trailing `.0`.
pub fn plain_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits() {
        assert_eq!(group_vi(0), "0");
        assert_eq!(group_vi(999), "999");
        assert_eq!(group_vi(1000), "1.000");
        assert_eq!(group_vi(1234567), "1.234.567");
        assert_eq!(group_vi(-1234567), "-1.234.567");
        assert_eq!(group_en(779_600_000_000), "779,600,000,000");
    }
}
