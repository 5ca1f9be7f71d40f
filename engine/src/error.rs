//! Errors: located policy diagnostics (`file:line:col` plus a source snippet, via miette) and
//! the library's error enum.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a problem is: a file relative to the policy directory, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What sort of problem a diagnostic reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// The file does not parse.
    Syntax,
    /// The file is not UTF-8.
    Encoding,
    /// An error raised while evaluating (unknown function, `throw`, bad argument, …).
    Runtime,
    /// A limit was hit: operations, call depth, sizes, the deadline.
    Limit,
    /// The set is well-formed Rhai but not a valid policy (missing function, wrong arity).
    Validation,
    /// A policy function returned a value of the wrong shape.
    ReturnType,
    /// `fleetward.toml` is invalid.
    Config,
    /// A policy test failed.
    TestFailure,
}

impl DiagnosticKind {
    fn code(self) -> &'static str {
        match self {
            DiagnosticKind::Syntax => "fleetward::syntax",
            DiagnosticKind::Encoding => "fleetward::encoding",
            DiagnosticKind::Runtime => "fleetward::runtime",
            DiagnosticKind::Limit => "fleetward::limit",
            DiagnosticKind::Validation => "fleetward::validation",
            DiagnosticKind::ReturnType => "fleetward::return_type",
            DiagnosticKind::Config => "fleetward::config",
            DiagnosticKind::TestFailure => "fleetward::test_failure",
        }
    }
}

/// One problem in a policy set, located in a file when it can be.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Innermost first: `in call to \`boom\` at rollout.rhai:3:3`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<String>,
    #[serde(skip)]
    source_text: Option<Arc<str>>,
}

impl Diagnostic {
    /// A diagnostic with no location.
    pub fn new(kind: DiagnosticKind, message: impl Into<String>) -> Self {
        Diagnostic {
            kind,
            message: message.into(),
            location: None,
            help: None,
            trace: Vec::new(),
            source_text: None,
        }
    }

    /// Points the diagnostic at `file:line:col`, keeping the file's text for the snippet.
    pub fn at(mut self, file: &str, line: usize, col: usize, text: Option<Arc<str>>) -> Self {
        self.location = Some(Location {
            file: file.to_string(),
            line: line.max(1),
            col: col.max(1),
        });
        self.source_text = text;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_trace(mut self, trace: Vec<String>) -> Self {
        self.trace = trace;
        self
    }

    /// `file:line:col: message`, the one-line form for logs and event streams.
    pub fn one_line(&self) -> String {
        match &self.location {
            Some(l) => format!("{l}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// The full rendering: message, `file:line:col`, source snippet, call trace and help.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        if handler.render_report(&mut out, self).is_err() {
            return self.one_line();
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut parts: Vec<String> = self.trace.clone();
        if let Some(h) = &self.help {
            parts.push(h.clone());
        }
        if parts.is_empty() {
            None
        } else {
            Some(Box::new(parts.join("\n")))
        }
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source_text.as_ref()?;
        Some(self as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (loc, text) = (self.location.as_ref()?, self.source_text.as_ref()?);
        let offset = offset_of(text, loc.line, loc.col);
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".to_string()),
            offset,
            0,
        ))))
    }
}

impl SourceCode for Diagnostic {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let text = self
            .source_text
            .as_deref()
            .ok_or(miette::MietteError::OutOfBounds)?;
        let name = self
            .location
            .as_ref()
            .map(|l| l.file.clone())
            .unwrap_or_default();
        let inner = text.read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            name,
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// Byte offset of a 1-based line and column (columns count characters).
pub fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return (offset + within).min(text.len());
        }
        offset += l.len();
    }
    text.len()
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Declares an error that is one message in words, built from a `String` or `&str`, so
/// `Err(format!(..).into())` and `?` on a message work.
macro_rules! message_error {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        $vis struct $name(pub String);

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}
pub(crate) use message_error;

message_error! {
    /// A value that is not what it must be, in words (lowercase, user input in backticks): the
    /// error of the small parsers and checks (`--limit`, `--field`, scopes, eligibility,
    /// catalogue entries, step and signal specs). It converts to and from a message, so a
    /// check can build on another with `?`.
    pub struct Invalid;
}

impl From<Invalid> for String {
    fn from(e: Invalid) -> String {
        e.0
    }
}

fn closest_hint(closest: &[String]) -> String {
    if closest.is_empty() {
        "; `fleetward check -o json` lists every function".to_string()
    } else {
        format!(
            "; the closest are {}",
            closest
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Errors from the fleetward engine.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy directory `{}` does not exist", .0.display())]
    MissingDir(PathBuf),
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("policy directory `{}` holds no `.rhai` files", .0.display())]
    EmptyDir(PathBuf),
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One or more located problems; the set was not loaded.
    #[error("{}", summarize(.0))]
    Invalid(Vec<Diagnostic>),
    /// An evaluation failed.
    #[error("{}", .0.one_line())]
    Eval(Box<Diagnostic>),
    #[error("no policy defines `fn {0}`")]
    NoSuchFunction(String),
    #[error("no policy or module defines `fn {name}`{}", closest_hint(closest))]
    UnknownFunction { name: String, closest: Vec<String> },
    #[error("`fn {name}` is defined in several policies ({}); qualify it as `KIND::{name}`", .files.join(", "))]
    AmbiguousFunction { name: String, files: Vec<String> },
    #[error("bad input for `fn {function}`: {message}")]
    BadInput { function: String, message: String },
    #[error("cannot watch `{}`: {message}", path.display())]
    Watch { path: PathBuf, message: String },
}

fn summarize(d: &[Diagnostic]) -> String {
    match d {
        [one] => one.one_line(),
        many => format!(
            "{} problems in the policy set; first: {}",
            many.len(),
            many.first().map(|d| d.one_line()).unwrap_or_default()
        ),
    }
}

impl PolicyError {
    /// The located diagnostics this error carries, if any.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            PolicyError::Invalid(d) => d.clone(),
            PolicyError::Eval(d) => vec![(**d).clone()],
            other => vec![Diagnostic::new(
                DiagnosticKind::Validation,
                other.to_string(),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let text = "ab\ncdé\nf";
        for (line, col) in [(1, 1), (2, 3), (2, 4), (3, 1)] {
            assert_eq!(line_col(text, offset_of(text, line, col)), (line, col));
        }
    }
}
