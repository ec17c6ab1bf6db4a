//! Values given on the command line, parsed and checked before any I/O.

use std::fmt;
use std::str::FromStr;

/// A request rate: `10/s`, `600/m`, `2.5/s`, `36000/h`, or a bare number per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, always above 0.
    pub per_second: f64,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        let (count, unit) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            other => {
                return Err(format!(
                    "unknown unit '/{other}' in rate '{text}': use /s, /m or /h, as in 10/s"
                ));
            }
        };
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a rate: write it as 10/s, 600/m or 2.5/s"))?;
        let per_second = count / seconds;
        if !(per_second > 0.0 && per_second.is_finite()) {
            return Err(format!("rate '{text}' must be above 0"));
        }
        Ok(Rate { per_second })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_each_unit() {
        assert_eq!("10/s".parse::<Rate>().unwrap().per_second, 10.0);
        assert_eq!("600/m".parse::<Rate>().unwrap().per_second, 10.0);
        assert_eq!("2.5/s".parse::<Rate>().unwrap().per_second, 2.5);
        assert_eq!("7200/h".parse::<Rate>().unwrap().per_second, 2.0);
        assert_eq!("4".parse::<Rate>().unwrap().per_second, 4.0);
    }

    #[test]
    fn bad_rates_say_what_to_write() {
        assert!("0/s".parse::<Rate>().unwrap_err().contains("above 0"));
        assert!("ten/s".parse::<Rate>().unwrap_err().contains("10/s"));
        assert!("10/d".parse::<Rate>().unwrap_err().contains("/d"));
    }
}
