//! Ports as the user names them: single ports and ranges (`--port 4000 --port 8000-8010`).

use std::fmt;

/// An inclusive range of ports, 1 to 65535; a single port is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    pub fn ports(&self) -> std::ops::RangeInclusive<u16> {
        self.first..=self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// One port number of a `--port` value, with the messages clap gives for a plain port, so that
/// `--port 0` still says "0 is not in 1..=65535".
fn port_number(s: &str) -> Result<u16, String> {
    let v: i64 = s
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    u16::try_from(v)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{v} is not in 1..=65535"))
}

/// Parses `PORT` or `FIRST-LAST` (clap value parser for `--port`).
pub fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let s = s.trim();
    let Some((a, b)) = s.split_once('-') else {
        return port_number(s).map(PortRange::single);
    };
    if a.is_empty() || b.is_empty() {
        return Err(format!(
            "{s:?} is not a port or a range of ports: write PORT or FIRST-LAST, e.g. 8000-8010"
        ));
    }
    let (first, last) = (port_number(a)?, port_number(b)?);
    if first > last {
        return Err(format!(
            "{s}: the range is reversed; write it from the lower port, {last}-{first}"
        ));
    }
    Ok(PortRange { first, last })
}

/// The watched ports: the ranges as given (empty: every port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<PortRange>);

impl PortSet {
    pub fn new(ranges: impl IntoIterator<Item = PortRange>) -> Self {
        Self(ranges.into_iter().collect())
    }

    pub fn single(port: u16) -> Self {
        Self(vec![PortRange::single(port)])
    }

    /// No port given: every port is watched.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `port` is in one of the ranges (never port 0, which no range holds).
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(port))
    }

    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    /// "port 4000" (today's wording for one port), "ports 4000, 8000-8010", "all ports".
    pub fn describe(&self) -> String {
        match self.0.as_slice() {
            [] => "all ports".into(),
            [r] if r.first == r.last => format!("port {r}"),
            rs => format!(
                "ports {}",
                rs.iter()
                    .map(PortRange::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ports_and_ranges() {
        assert_eq!(parse_port_range("4000"), Ok(PortRange::single(4000)));
        assert_eq!(
            parse_port_range("8000-8010"),
            Ok(PortRange {
                first: 8000,
                last: 8010
            })
        );
        assert_eq!(
            parse_port_range("1-65535"),
            Ok(PortRange {
                first: 1,
                last: 65535
            })
        );
        assert_eq!(parse_port_range("7-7"), Ok(PortRange::single(7)));
    }

    #[test]
    fn bad_ports_and_ranges_say_why() {
        assert_eq!(parse_port_range("0").unwrap_err(), "0 is not in 1..=65535");
        assert_eq!(
            parse_port_range("65536").unwrap_err(),
            "65536 is not in 1..=65535"
        );
        assert!(parse_port_range("http")
            .unwrap_err()
            .contains("invalid digit"));
        assert!(parse_port_range("8010-8000")
            .unwrap_err()
            .contains("reversed; write it from the lower port, 8000-8010"));
        assert_eq!(
            parse_port_range("0-10").unwrap_err(),
            "0 is not in 1..=65535"
        );
        assert_eq!(
            parse_port_range("10-70000").unwrap_err(),
            "70000 is not in 1..=65535"
        );
        for bad in ["8000-", "-8000", "-", "1-2-3", "a-b", ""] {
            assert!(parse_port_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_set_holds_its_ranges_and_says_them() {
        let s = PortSet::new([
            PortRange::single(4000),
            parse_port_range("8000-8010").unwrap(),
        ]);
        assert!(s.contains(4000) && s.contains(8000) && s.contains(8005) && s.contains(8010));
        assert!(!s.contains(4001) && !s.contains(7999) && !s.contains(8011) && !s.contains(0));
        assert_eq!(s.describe(), "ports 4000, 8000-8010");
        assert_eq!(PortSet::single(4000).describe(), "port 4000");
        assert_eq!(PortSet::default().describe(), "all ports");
        assert!(PortSet::default().is_empty());
    }
}
