//! The Redis side of cache commands, behind the [`CacheClient`] trait: the async `redis`
//! crate with one multiplexed connection per node, connect and command timeouts, and an
//! ACL user and password from the configuration (never printed). Replies come back as JSON
//! values, the form scripts see.

use super::Node;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value as RValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Why a node did not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    #[error("cannot reach `{node}`: {message}")]
    Unreachable { node: String, message: String },
    #[error("`{node}` did not answer within {secs} s")]
    Timeout { node: String, secs: f64 },
}

/// Sends a round of commands to one node (pipelined) and returns one reply per command. A
/// command the server rejects comes back as `{"error": "..."}`, not as a failure.
pub trait CacheClient: Send + Sync {
    fn send(&self, node: &Node, cmds: &[Vec<String>]) -> Result<Vec<Value>, NodeError>;
}

/// How to reach the cache nodes.
#[derive(Clone)]
pub struct RedisOptions {
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl RedisOptions {
    /// The set's `[cache]` credentials (the password from the environment variable it
    /// names), `user` overriding its user.
    pub fn for_set(
        set: &crate::runtime::PolicySet,
        user: Option<String>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisOptions {
        let cfg = set.cache_settings();
        RedisOptions {
            username: user.or_else(|| cfg.user.clone()),
            password: std::env::var(&cfg.password_env).ok(),
            connect_timeout: connect_timeout.max(Duration::from_millis(1)),
            command_timeout: command_timeout.max(Duration::from_millis(1)),
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(5),
        }
    }
}

/// The `redis` crate client.
pub struct RedisClient {
    rt: tokio::runtime::Runtime,
    opts: RedisOptions,
    conns: Mutex<HashMap<String, MultiplexedConnection>>,
}

/// Percent-encodes a URL user-info part.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A reply as JSON.
pub fn to_json(v: RValue) -> Value {
    match v {
        RValue::Nil => Value::Null,
        RValue::Int(i) => Value::from(i),
        RValue::BulkString(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        RValue::Array(a) | RValue::Set(a) => Value::Array(a.into_iter().map(to_json).collect()),
        RValue::SimpleString(s) => Value::String(s),
        RValue::Okay => Value::String("OK".into()),
        RValue::Map(pairs) => {
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        RValue::Attribute { data, .. } => to_json(*data),
        RValue::Double(d) => serde_json::Number::from_f64(d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        RValue::Boolean(b) => Value::Bool(b),
        RValue::VerbatimString { text, .. } => Value::String(text),
        RValue::Push { data, .. } => Value::Array(data.into_iter().map(to_json).collect()),
        RValue::ServerError(e) => serde_json::json!({ "error": e.to_string() }),
        other => Value::String(format!("{other:?}")),
    }
}

impl RedisClient {
    pub fn new(opts: RedisOptions) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(RedisClient {
            rt,
            opts,
            conns: Mutex::new(HashMap::new()),
        })
    }

    fn url(&self, node: &Node) -> String {
        let auth = match (&self.opts.username, &self.opts.password) {
            (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
            (None, Some(p)) => format!(":{}@", encode(p)),
            (Some(u), None) => format!("{}@", encode(u)),
            (None, None) => String::new(),
        };
        let host = if node.address.contains(':') {
            format!("[{}]", node.address)
        } else {
            node.address.clone()
        };
        format!("redis://{auth}{host}:{}/", node.port)
    }

    async fn connection(&self, node: &Node) -> Result<MultiplexedConnection, NodeError> {
        if let Some(c) = self
            .conns
            .lock()
            .ok()
            .and_then(|m| m.get(&node.name).cloned())
        {
            return Ok(c);
        }
        let unreachable = |e: redis::RedisError| NodeError::Unreachable {
            node: node.name.clone(),
            // The URL (and so the password) is never part of the message.
            message: e.to_string(),
        };
        let client = redis::Client::open(self.url(node)).map_err(unreachable)?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.connect_timeout))
            .set_response_timeout(Some(self.opts.command_timeout));
        let c = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(unreachable)?;
        if let Ok(mut m) = self.conns.lock() {
            m.insert(node.name.clone(), c.clone());
        }
        Ok(c)
    }

    fn forget(&self, node: &Node) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&node.name);
        }
    }
}

impl CacheClient for RedisClient {
    fn send(&self, node: &Node, cmds: &[Vec<String>]) -> Result<Vec<Value>, NodeError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for c in cmds {
            let Some((name, args)) = c.split_first() else {
                continue;
            };
            let mut cmd = redis::cmd(name);
            for a in args {
                cmd.arg(a);
            }
            pipe.add_command(cmd);
        }
        let limit = self.opts.connect_timeout + self.opts.command_timeout;
        let r = self.rt.block_on(async {
            tokio::time::timeout(limit, async {
                let mut con = self.connection(node).await?;
                pipe.query_async::<Vec<RValue>>(&mut con)
                    .await
                    .map_err(|e| {
                        if e.is_timeout() {
                            NodeError::Timeout {
                                node: node.name.clone(),
                                secs: self.opts.command_timeout.as_secs_f64(),
                            }
                        } else {
                            NodeError::Unreachable {
                                node: node.name.clone(),
                                message: e.to_string(),
                            }
                        }
                    })
            })
            .await
        });
        match r {
            Ok(Ok(values)) => Ok(values.into_iter().map(to_json).collect()),
            Ok(Err(e)) => {
                self.forget(node);
                Err(e)
            }
            Err(_) => {
                self.forget(node);
                Err(NodeError::Timeout {
                    node: node.name.clone(),
                    secs: limit.as_secs_f64(),
                })
            }
        }
    }
}
