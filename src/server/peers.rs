//! The whole deployment on one page: `/api/v1/checks?scope=cluster` asks every other member
//! for its checks (`GET /api/v1/checks`) at once, with a short deadline, and marks the ones
//! that did not answer. Members are `host:port` (from DNS or a fixed list); `--shard` names
//! are not addresses, so each shard is asked on its own.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::{Value, json};

use crate::config::{Config, PeerClient};
use crate::probe::Reason;
use crate::probe::certs::Alpn;
use crate::probe::net::{self, io_words};
use crate::probe::timing::Timeline;

/// How long a peer has to answer before it is marked as not answering.
pub(super) const DEADLINE: Duration = Duration::from_secs(2);
/// The most of a peer's answer read (10,000 checks are a few MB).
const MAX_ANSWER: usize = 64 << 20;

/// Every member's checks, each row with the `instance` that owns it, and the members that
/// did not answer in time (with why).
pub(super) async fn gather(
    own: Vec<Value>,
    me: &str,
    members: &[String],
    client: &PeerClient,
) -> Value {
    let mut rows: Vec<Value> = own
        .into_iter()
        .map(|mut c| {
            c["instance"] = json!(me);
            c
        })
        .collect();
    let asks = members
        .iter()
        .filter(|m| m.as_str() != me)
        .map(|m| async move {
            (
                m.clone(),
                tokio::time::timeout(DEADLINE, checks_of(m, client)).await,
            )
        });
    let mut unreachable = Vec::new();
    for (member, answer) in futures_util::future::join_all(asks).await {
        match answer {
            Ok(Ok(list)) => rows.extend(list.into_iter().map(|mut c| {
                c["instance"] = json!(member);
                c
            })),
            Ok(Err(e)) => unreachable.push(json!({"instance": member, "error": e})),
            Err(_) => unreachable.push(json!({
                "instance": member,
                "error": format!("no answer within {}", humantime::format_duration(DEADLINE)),
            })),
        }
    }
    json!({ "checks": rows, "unreachable": unreachable })
}

/// `cluster.client` of the running config (plain http without `cluster:`).
pub(super) fn client(config: &Config) -> PeerClient {
    config
        .cluster
        .as_ref()
        .map(|c| c.client.clone())
        .unwrap_or_default()
}

/// `GET http(s)://MEMBER/api/v1/checks`, its `checks`, with the TLS and credentials of
/// `cluster.client`.
async fn checks_of(member: &str, client: &PeerClient) -> Result<Vec<Value>, String> {
    let tcp = tokio::net::TcpStream::connect(member)
        .await
        .map_err(|e| format!("cannot connect: {}", io_words(&e)))?;
    let answer = match &client.tls {
        None => ask(tcp, member, client).await,
        Some(tls) => {
            let host = member
                .rsplit_once(':')
                .map_or(member, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = tls.server_name.as_deref().unwrap_or(host);
            let mut tl = Timeline::new(DEADLINE);
            let h = net::handshake(&mut tl, tcp, name, tls, Alpn::Http1)
                .await
                .map_err(|f| f.message)?;
            h.verdict.map_err(|f| match (f.reason, &tls.server_name) {
                (Reason::TlsHostname, None) => format!(
                    "{}: set cluster.client.tls.server_name to a name it covers",
                    f.message
                ),
                _ => f.message,
            })?;
            ask(h.stream, member, client).await
        }
    };
    let doc = answer?;
    match doc.get("checks") {
        Some(Value::Array(list)) => Ok(list.clone()),
        _ => Err("the answer has no `checks` list".into()),
    }
}

/// One request for `/api/v1/checks` over a connection, its answer as JSON.
async fn ask<IO>(io: IO, member: &str, client: &PeerClient) -> Result<Value, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|_| "the HTTP handshake failed".to_string())?;
    tokio::spawn(conn);
    let mut request = hyper::Request::get("/api/v1/checks").header(hyper::header::HOST, member);
    if let Some(auth) = &client.basic_auth {
        let pair = format!("{}:{}", auth.username, auth.password);
        request = request.header(
            hyper::header::AUTHORIZATION,
            format!("Basic {}", data_encoding::BASE64.encode(pair.as_bytes())),
        );
    }
    let request = request
        .body(Empty::new())
        .map_err(|_| "bad member address".to_string())?;
    let response = send.send_request(request).await.map_err(|e| {
        match (e.is_parse(), client.tls.is_some()) {
            (true, false) => "the answer is not HTTP: is the peer's listener https? set cluster.client.tls".to_string(),
            (true, true) => "the answer is not HTTP".to_string(),
            (false, false) => "the connection closed before an answer: is the peer's listener https? set cluster.client.tls".to_string(),
            (false, true) => "the connection closed before an answer".to_string(),
        }
    })?;
    let status = response.status().as_u16();
    match (status, client.basic_auth.is_some()) {
        (200..=299, _) => {}
        (401, false) => {
            return Err(
                "answered HTTP 401: the peer asks for credentials; set cluster.client.basic_auth"
                    .into(),
            );
        }
        (401, true) => {
            return Err("answered HTTP 401: the peer refused the user and password of cluster.client.basic_auth".into());
        }
        (400, false) if client.tls.is_none() => {
            // Go and rustls listeners answer plain HTTP sent to their TLS port with 400.
            return Err(
                "answered HTTP 400: is the peer's listener https? set cluster.client.tls".into(),
            );
        }
        _ => return Err(format!("answered HTTP {status}")),
    }
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|_| "the answer broke off or was too large".to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|_| "the answer is not JSON".to_string())
}
