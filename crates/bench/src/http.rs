//! One HTTP/1.1 keep-alive connection to the server, as lean as the load generator can
//! make it (hyper's client connection, no pool): the server, PostgreSQL and the load
//! share two cores, so every cycle spent here is one the server does not get.
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    client::conn::http1::SendRequest,
    header::{AUTHORIZATION, CONTENT_TYPE, HOST},
    Request,
};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// A keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A GraphQL answer: the HTTP status and the body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// A 200 whose body holds no `errors` member.
    pub fn ok(&self) -> bool {
        self.status == 200 && !contains(&self.body, b"\"errors\"")
    }

    /// The body as JSON.
    ///
    /// Errors: a body that is not JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("status {}, body not JSON: {}", self.status, String::from_utf8_lossy(&self.body)))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Conn {
    /// Opens a connection (TCP_NODELAY, as browsers and HTTP clients do).
    ///
    /// Errors: the connect or the HTTP handshake.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender, host: addr.to_string() })
    }

    /// `POST /graphql` with `body` (a JSON request), as `token`'s bearer when given.
    ///
    /// Errors: the connection's (a closed socket, a malformed answer).
    pub async fn graphql(&mut self, token: Option<&str>, body: Bytes) -> anyhow::Result<Answer> {
        self.send("POST", "/graphql", token, &[], body).await
    }

    /// `GET path`: status and body.
    ///
    /// Errors: the connection's.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let a = self.send("GET", path, None, &[], Bytes::new()).await?;
        Ok((a.status, a.body))
    }

    /// One request with extra headers.
    ///
    /// Errors: the connection's.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        self.sender.ready().await?;
        let mut req = Request::builder().method(method).uri(path).header(HOST, &self.host);
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.sender.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }
}

/// A GraphQL request body.
pub fn request(query: &str, variables: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&serde_json::json!({ "query": query, "variables": variables })).expect("JSON"))
}
