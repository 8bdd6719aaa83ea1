//! Human units: sizes (`4M`, `64MiB`, `1.5G`, `4096`) and durations (`500ms`,
//! `30s`, `15m`), as configuration values and on the command line.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A byte size written with units (`"4M"`, `"64MiB"`, `4096`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SizeRepr", into = "String")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Number(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Number(n) => Ok(Size(n)),
            SizeRepr::Text(s) => parse_size(&s).map(Size),
        }
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.0.to_string()
    }
}

/// A duration written with units (`"15m"`, `"30s"`, `"500ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).map(HumanDuration)
    }
}

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        format!("{}ms", d.0.as_millis())
    }
}

/// Parses a byte size: a number with an optional binary suffix (`K`, `M`, `G`, `T`,
/// optionally followed by `i`/`iB`/`B`; all powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("{s:?} is not a size (like 4M, 64MiB, 4096)"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KI" | "KIB" => 1 << 10,
        "M" | "MB" | "MI" | "MIB" => 1 << 20,
        "G" | "GB" | "GI" | "GIB" => 1 << 30,
        "T" | "TB" | "TI" | "TIB" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?} (use K, M, G or T)")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Parses a duration: a whole number with a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration (like 500ms, 30s, 15m, 1h)"))?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown duration unit {other:?} in {s:?} (use ms, s, m, h or d)")),
    };
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(|| format!("{s:?} is too long"))
}

/// Formats a byte count with a binary unit: `64 MiB`, `1.5 GiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 { format!("{v} {}", UNITS[u]) } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size(" 8 k "), Ok(8192));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("0.5B").is_err());
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(7), "7 B");
        assert_eq!(parse_duration("15m"), Ok(std::time::Duration::from_secs(900)));
        assert_eq!(parse_duration("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("1y").is_err());
    }
}
