//! What `check-config` says about a `.env` file beyond the values it sets (which
//! loading validates): names tenantgate does not read. A mistyped name
//! (`JWT_SECRE`) is silently not applied; one that looks like ours is an error,
//! with the name it probably meant; others (another program's variables in a
//! shared file) are only noted. A name set twice is an error too: the first value
//! wins, which is rarely what an edit meant.

use std::path::Path;

use super::ENV_VARS;

/// Read besides the settings table: the settings file's path and the log filter
/// override.
const ALSO_READ: &[&str] = &["TENANTGATE_CONFIG", "RUST_LOG"];

/// One finding in a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line of the name.
    pub line: usize,
    /// The variable.
    pub name: String,
    /// What is wrong.
    pub kind: Kind,
}

/// What a [`Finding`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Looks like one of ours but is not (an error), perhaps meaning this one.
    Unknown {
        /// The closest known name, when one is close.
        did_you_mean: Option<&'static str>,
    },
    /// Not ours at all (a note).
    Foreign,
    /// Set again on this line (an error); the first value is the one used.
    Repeated {
        /// Where it was first set.
        first: usize,
    },
}

impl Finding {
    /// Whether this finding should fail `check-config`.
    pub fn is_error(&self) -> bool {
        !matches!(self.kind, Kind::Foreign)
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Unknown { did_you_mean: Some(known) } => {
                write!(f, "line {}: {} is not a tenantgate setting; did you mean {known}?", self.line, self.name)
            }
            Kind::Unknown { did_you_mean: None } => {
                write!(f, "line {}: {} is not a tenantgate setting (see .env.example)", self.line, self.name)
            }
            Kind::Foreign => write!(f, "line {}: {} is not read by tenantgate", self.line, self.name),
            Kind::Repeated { first } => {
                write!(f, "line {}: {} is set again; the value of line {first} is the one used", self.line, self.name)
            }
        }
    }
}

/// A `.env` error for a terminal or a log: never the offending text, which with a
/// quote left open runs to the end of the file, secrets included.
pub fn describe(error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(..) => ".env: a line does not parse (a value with spaces, `<` or `#` needs \
                                          quotes, or a quote is left open); nothing after it would be applied"
            .to_owned(),
        dotenvy::Error::Io(e) => format!(".env cannot be read: {e}"),
        _ => ".env cannot be read".to_owned(),
    }
}

/// The `.env` file the binaries read (the first in the working directory or a
/// parent), if there is one.
pub fn locate() -> Option<std::path::PathBuf> {
    dotenvy::dotenv().ok()
}

/// The findings of the `.env` file at `path`, parsed as the binaries parse it
/// (`dotenvy`).
///
/// # Errors
/// The file cannot be read or parsed (`dotenvy`'s error, naming the line).
pub fn check(path: &Path) -> Result<Vec<Finding>, dotenvy::Error> {
    let text = std::fs::read_to_string(path).map_err(dotenvy::Error::Io)?;
    // Parse errors are reported without the offending text (see `describe`).
    let mut findings = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut from_line = 0;
    for item in dotenvy::from_path_iter(path)? {
        let (name, _) = item?;
        // The line the name is set on: the next one after the previous name's.
        let line = line_of(&text, &name, from_line).unwrap_or(from_line + 1);
        from_line = line;
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            findings.push(Finding { line, name: name.clone(), kind: Kind::Repeated { first: *first } });
            continue;
        }
        seen.push((name.clone(), line));
        if let Some(kind) = classify(&name) {
            findings.push(Finding { line, name, kind });
        }
    }
    Ok(findings)
}

/// `None` for a name tenantgate reads.
fn classify(name: &str) -> Option<Kind> {
    let known = || ENV_VARS.iter().map(|(n, _)| *n).chain(ALSO_READ.iter().copied());
    if known().any(|n| n == name) {
        return None;
    }
    let family = |n: &str| n.split('_').next().map(str::to_owned);
    let ours = known().any(|n| family(n) == family(name));
    let did_you_mean =
        known().map(|n| (strsim::levenshtein(n, name), n)).filter(|(distance, _)| *distance <= 3).min().map(|(_, n)| n);
    Some(if ours || did_you_mean.is_some() { Kind::Unknown { did_you_mean } } else { Kind::Foreign })
}

/// The 1-based line after `after` where `name` is assigned (`NAME=`, `export NAME=`).
fn line_of(text: &str, name: &str, after: usize) -> Option<usize> {
    text.lines().enumerate().skip(after).find_map(|(i, line)| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        line.strip_prefix(name).is_some_and(|rest| rest.trim_start().starts_with('=')).then_some(i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, text).unwrap();
        check(&path).unwrap()
    }

    #[test]
    fn typos_of_our_names_are_errors_with_a_suggestion_and_other_programs_names_are_notes() {
        let found = findings(
            "# settings\nJWT_SECRET=x\nJWT_SECRE=y\n\nexport GATEWAY_LISTN=127.0.0.1:1\nPOSTGRES_PASSWORD=z\nREDIS_URL=\n",
        );
        assert_eq!(
            found,
            [
                Finding { line: 3, name: "JWT_SECRE".into(), kind: Kind::Unknown { did_you_mean: Some("JWT_SECRET") } },
                Finding {
                    line: 5,
                    name: "GATEWAY_LISTN".into(),
                    kind: Kind::Unknown { did_you_mean: Some("GATEWAY_LISTEN") }
                },
                Finding { line: 6, name: "POSTGRES_PASSWORD".into(), kind: Kind::Foreign },
            ]
        );
        assert!(found[0].is_error() && found[1].is_error() && !found[2].is_error());
        assert_eq!(found[0].to_string(), "line 3: JWT_SECRE is not a tenantgate setting; did you mean JWT_SECRET?");
    }

    #[test]
    fn a_name_set_twice_is_an_error_naming_both_lines() {
        let found = findings("LOG_LEVEL=info\nAPP_NAME=a\nLOG_LEVEL=debug\n");
        assert_eq!(found, [Finding { line: 3, name: "LOG_LEVEL".into(), kind: Kind::Repeated { first: 1 } }]);
        assert!(found[0].is_error());
    }

    /// dotenvy reads an unquoted `#` as the start of a comment, so
    /// `PORTAL_PRIMARY_COLOR=#3b5bdb` came out empty and every `.env` written
    /// from the example (scripts/dev.sh) failed to start: each value must read
    /// back as written, and the whole example must load as settings.
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn the_shipped_example_reads_as_written_and_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.env.example");
        let text = std::fs::read_to_string(&path).unwrap();
        let read: std::collections::HashMap<String, String> =
            dotenvy::from_path_iter(&path).unwrap().map(Result::unwrap).collect();
        let mut vars = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
            let (name, raw) = line.split_once('=').unwrap();
            let written = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
            assert_eq!(read[name], written, "{name} does not read back as written in .env.example");
            vars.push((name, written));
        }
        let mut loaded = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (name, value) in &vars {
                jail.set_env(name, value);
            }
            jail.set_env("APP_ENV", "development");
            loaded = Some(super::super::Settings::load_from(Path::new("none.toml"), figment::providers::Env::raw()));
            Ok(())
        });
        let settings = loaded.unwrap().unwrap();
        assert_eq!(settings.portal.primary_color.as_str(), "#3b5bdb");
    }

    #[test]
    fn the_shipped_example_is_clean() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.env.example");
        assert_eq!(check(&path).unwrap(), []);
    }
}
