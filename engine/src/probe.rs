//! HTTP fetches the controller makes itself (an `http` check with `from: "controller"`),
//! behind the [`HttpProbe`] trait: [`UreqProbe`] for real rollouts, the simulator's hosts and
//! test doubles in its place.

use crate::clock::Clock;
use crate::model::Host;
use std::time::Duration;

/// The most of a body a probe keeps: a health page, not a download.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// What an HTTP server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The first [`BODY_LIMIT`] bytes, invalid UTF-8 replaced.
    pub body: String,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer from the controller within {secs} s: {message}")]
    Timeout { secs: u64, message: String },
    #[error("the controller could not fetch it: {message}")]
    Failed { message: String },
}

/// One GET, made by the controller on behalf of `host`.
pub trait HttpProbe: Send + Sync {
    fn get(
        &self,
        host: &Host,
        url: &str,
        timeout: Duration,
        clock: &dyn Clock,
    ) -> Result<Answer, ProbeError>;
}

/// The controller's own HTTP client: one GET, no retries (a check judges what it sees
/// once), redirects followed, any status returned as an answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct UreqProbe;

impl HttpProbe for UreqProbe {
    fn get(
        &self,
        _host: &Host,
        url: &str,
        timeout: Duration,
        _clock: &dyn Clock,
    ) -> Result<Answer, ProbeError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout.max(Duration::from_secs(1))))
            .http_status_as_error(false)
            .user_agent(concat!("fleetward/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let failed = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => ProbeError::Timeout {
                secs: timeout.as_secs().max(1),
                message: e.to_string(),
            },
            e => ProbeError::Failed {
                message: e.to_string(),
            },
        };
        let mut resp = agent.get(url).call().map_err(failed)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let reader = resp.body_mut().as_reader();
        std::io::Read::read_to_end(&mut std::io::Read::take(reader, BODY_LIMIT), &mut body)
            .map_err(|e| ProbeError::Failed {
                message: format!("reading the body: {e}"),
            })?;
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallClock;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP server on loopback answering each request with `answer(path)`
    /// (status, body, delay); returns its base URL.
    fn serve(
        answer: impl Fn(&str) -> (u16, String, Duration) + Send + 'static,
        requests: usize,
    ) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for s in l.incoming().take(requests) {
                let mut s = s.unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let (status, body, delay) = answer(&path);
                std::thread::sleep(delay);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    fn host() -> Host {
        Host {
            name: "h".into(),
            ..Host::default()
        }
    }

    #[test]
    fn a_real_listener_answers_with_its_status_and_body() {
        let url = serve(
            |p| match p {
                "/ok" => (200, "all good".into(), Duration::ZERO),
                _ => (503, "x".repeat(100_000), Duration::ZERO),
            },
            2,
        );
        let p = UreqProbe;
        let a = p
            .get(
                &host(),
                &format!("{url}/ok"),
                Duration::from_secs(5),
                &WallClock,
            )
            .unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "all good"));
        let a = p
            .get(
                &host(),
                &format!("{url}/down"),
                Duration::from_secs(5),
                &WallClock,
            )
            .unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(a.body.len() as u64, BODY_LIMIT);
    }

    #[test]
    fn a_closed_port_and_a_hung_server_are_errors_not_answers() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = UreqProbe
            .get(
                &host(),
                &format!("http://{closed}/"),
                Duration::from_secs(2),
                &WallClock,
            )
            .unwrap_err();
        assert!(matches!(e, ProbeError::Failed { .. }), "{e}");
        let url = serve(|_| (200, "late".into(), Duration::from_secs(4)), 1);
        let e = UreqProbe
            .get(&host(), &url, Duration::from_secs(1), &WallClock)
            .unwrap_err();
        assert!(matches!(e, ProbeError::Timeout { secs: 1, .. }), "{e}");
    }
}
