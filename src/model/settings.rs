//! Settings: values given on the command line, parsed and checked before any I/O, as plain
//! types that every layer may read (the command line itself stays in `cli`).

use std::fmt;
use std::str::FromStr;

/// A request rate: `10/s`, `600/m`, `2.5/s`, `36000/h`, or a bare number per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, always above 0.
    pub per_second: f64,
}

impl Rate {
    /// The slowest rate accepted: one request a day.
    pub const SLOWEST: f64 = 1.0 / 86_400.0;
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
        if !per_second.is_finite() {
            return Err(format!(
                "rate '{text}' is not a finite number: give one such as 10/s, or --rate unlimited"
            ));
        }
        if per_second <= 0.0 {
            return Err(format!("rate '{text}' must be above 0"));
        }
        if per_second < Rate::SLOWEST {
            return Err(format!(
                "rate '{text}' is below one request a day: give a rate such as 1/h, 10/m or 2.5/s"
            ));
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
        for absurd in ["1e-20/s", "0.0000001/h", "NaN/s", "inf/s"] {
            assert!(absurd.parse::<Rate>().is_err(), "{absurd}");
        }
        assert!("1/h".parse::<Rate>().is_ok());
    }
}

/// `--shard I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This process's shard, from 0.
    pub index: u64,
    /// How many shards there are.
    pub count: u64,
}

impl Shard {
    /// The whole input.
    pub const ALL: Shard = Shard { index: 0, count: 1 };
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("--shard '{text}': {what} '{part}' is not a whole number"))
        };
        let (index, count) = match text.split_once('/') {
            Some((index, count)) => (number(index, "the index")?, number(count, "the count")?),
            None => {
                let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                    format!("--shard {text} takes the index from JOB_COMPLETION_INDEX, which is not set; write --shard I/{text}")
                })?;
                (
                    number(&index, "JOB_COMPLETION_INDEX")?,
                    number(text, "the count")?,
                )
            }
        };
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {index}/{count}: the index must be below the count"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// The service token. It has no `Display`, and its `Debug` hides it, so it cannot reach a
/// log line or an error message by accident; only [`ApiKey::expose`] reads it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a token, trimmed of surrounding white space (a key file's newline).
    pub fn new(token: &str) -> ApiKey {
        ApiKey(token.trim().to_owned())
    }

    /// The token itself, for the Authorization header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where the results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file.
    File(std::path::PathBuf),
    /// Standard output (`-o -`).
    Stdout,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::File(path) => write!(f, "{}", path.display()),
            Output::Stdout => f.write_str("-"),
        }
    }
}

/// Where the input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(std::path::PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::File(path) => write!(f, "{}", path.display()),
            Input::Stdin => f.write_str("stdin"),
        }
    }
}

impl Input {
    /// `-` is stdin; anything else a path.
    pub fn from_arg(arg: &str) -> Input {
        match arg {
            "-" => Input::Stdin,
            path => Input::File(path.into()),
        }
    }

    /// `-o` when given, else `<input stem>.results.csv` beside the input; a shard's own
    /// `<input stem>.shard-I-of-N.results.csv`, so shards never share a file.
    pub fn results_path(
        &self,
        output: Option<&str>,
        shard: Option<Shard>,
        kind: &str,
    ) -> Result<Output, String> {
        match (output, self) {
            (Some("-"), _) => Ok(Output::Stdout),
            (Some(path), _) => Ok(Output::File(path.into())),
            (None, Input::Stdin) => {
                Err("reading stdin, dbprov cannot name the results file: give -o PATH (or -o - for stdout)".into())
            }
            (None, Input::File(path)) => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let name = match shard {
                    Some(shard) => format!(
                        "{stem}.shard-{}-of-{}.{kind}.csv",
                        shard.index, shard.count
                    ),
                    None => format!("{stem}.{kind}.csv"),
                };
                Ok(Output::File(path.with_file_name(name)))
            }
        }
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = ApiKey::new("dbn_live_secret\n");
        assert_eq!(key.expose(), "dbn_live_secret");
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn the_results_path_defaults_beside_the_input() {
        let input = Input::from_arg("data/tenants.csv");
        assert_eq!(
            input.results_path(None, None, "results").unwrap(),
            Output::File("data/tenants.results.csv".into())
        );
        let shard = Shard { index: 2, count: 4 };
        assert_eq!(
            input.results_path(None, Some(shard), "results").unwrap(),
            Output::File("data/tenants.shard-2-of-4.results.csv".into())
        );
        assert_eq!(
            input.results_path(Some("-"), None, "results").unwrap(),
            Output::Stdout
        );
        assert!(
            Input::Stdin
                .results_path(None, None, "results")
                .unwrap_err()
                .contains("-o")
        );
    }
}

/// What a taken name means (`--on-exists`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExists {
    /// A taken name is a success: status `exists`.
    Skip,
    /// A taken name is a failure: status `failed`, code `WORKSPACE_NAME_ALREADY_EXISTS`.
    Fail,
    /// Send the row again as `PUT`: status `updated`.
    Update,
}

/// When a progress bar is drawn (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    /// A bar, terminal or not.
    Always,
    /// No bar: log lines.
    Never,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// `--max-failures`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFailures {
    /// More failed rows than this stop the job.
    Count(u64),
    /// More failed rows than this share of the input's rows stop the job.
    Percent(f64),
}

impl FromStr for MaxFailures {
    type Err = String;

    fn from_str(text: &str) -> Result<MaxFailures, String> {
        let text = text.trim();
        let wrong = || format!("'{text}' is neither a count (50) nor a share (2%)");
        match text.strip_suffix('%') {
            Some(share) => {
                let share: f64 = share.trim().parse().map_err(|_| wrong())?;
                if !(0.0..=100.0).contains(&share) {
                    return Err(format!("{text}: a share is between 0% and 100%"));
                }
                Ok(MaxFailures::Percent(share))
            }
            None => text.parse().map(MaxFailures::Count).map_err(|_| wrong()),
        }
    }
}

/// `--rate`: a rate, or none at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    /// At most this rate.
    Limited(Rate),
    /// As fast as `--concurrency` allows.
    Unlimited,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimit::Limited(rate) => write!(f, "{rate}"),
            RateLimit::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<RateLimit, String> {
        match text.trim() {
            "unlimited" | "none" => Ok(RateLimit::Unlimited),
            _ => text.parse().map(RateLimit::Limited),
        }
    }
}
