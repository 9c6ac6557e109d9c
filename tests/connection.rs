//! The connection family through the `redis` crate, under RESP2 and RESP3.

mod common;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

async fn query(conn: &mut MultiplexedConnection, args: &[&str]) -> RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

fn error_text(result: RedisResult<Value>) -> String {
    let err = result.expect_err("an error reply");
    format!(
        "{} {}",
        err.code().unwrap_or(""),
        err.detail().unwrap_or("")
    )
}

#[tokio::test]
async fn ping_echo_select_under_both_protocols() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let mut c = server.client(resp3).await;
        assert_eq!(text(&query(&mut c, &["PING"]).await.unwrap()), "PONG");
        assert_eq!(text(&query(&mut c, &["PING", "hi"]).await.unwrap()), "hi");
        assert_eq!(text(&query(&mut c, &["ECHO", "x y"]).await.unwrap()), "x y");
        assert_eq!(
            error_text(query(&mut c, &["PING", "a", "b"]).await),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(text(&query(&mut c, &["SELECT", "15"]).await.unwrap()), "OK");
        assert_eq!(
            error_text(query(&mut c, &["SELECT", "16"]).await),
            "ERR DB index is out of range"
        );
        assert_eq!(
            error_text(query(&mut c, &["SELECT", "x"]).await),
            "ERR value is not an integer or out of range"
        );
    }
}

#[tokio::test]
async fn hello_reports_protocol_and_identity() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let mut c = server.client(resp3).await;
        let reply = query(&mut c, &["HELLO", if resp3 { "3" } else { "2" }])
            .await
            .unwrap();
        let pairs: Vec<(String, Value)> = match reply {
            Value::Map(pairs) => pairs.into_iter().map(|(k, v)| (text(&k), v)).collect(),
            Value::Array(items) => items
                .chunks(2)
                .map(|pair| (text(&pair[0]), pair[1].clone()))
                .collect(),
            other => panic!("HELLO reply {other:?}"),
        };
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(field("proto"), Some(Value::Int(if resp3 { 3 } else { 2 })));
        assert_eq!(field("mode").map(|v| text(&v)), Some("standalone".into()));
        assert!(matches!(field("id"), Some(Value::Int(id)) if id > 0));
        assert_eq!(
            error_text(query(&mut c, &["HELLO", "4"]).await),
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            error_text(query(&mut c, &["HELLO", "3", "BOGUS"]).await),
            "ERR Syntax error in HELLO option 'BOGUS'"
        );
    }
}

#[tokio::test]
async fn auth_with_requirepass() {
    let server = common::start_with(|c| c.server.requirepass = "s3cret".into()).await;
    let client = redis::Client::open(format!("redis://{}/", server.addr)).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    assert_eq!(
        error_text(query(&mut c, &["GET", "k"]).await),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        error_text(query(&mut c, &["AUTH", "wrong"]).await),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        error_text(query(&mut c, &["AUTH", "other", "s3cret"]).await),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        text(&query(&mut c, &["AUTH", "default", "s3cret"]).await.unwrap()),
        "OK"
    );
    assert_eq!(text(&query(&mut c, &["PING"]).await.unwrap()), "PONG");
    // The password in the URL goes through HELLO/AUTH as clients do it.
    for resp3 in [false, true] {
        let url = format!(
            "redis://:s3cret@{}/{}",
            server.addr,
            if resp3 { "?protocol=resp3" } else { "" }
        );
        let mut c = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        assert_eq!(text(&query(&mut c, &["PING"]).await.unwrap()), "PONG");
    }
}

#[tokio::test]
async fn auth_without_a_password_configured() {
    let server = common::start().await;
    let mut c = server.client(false).await;
    assert_eq!(
        error_text(query(&mut c, &["AUTH", "pw"]).await),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    assert_eq!(
        text(
            &query(&mut c, &["AUTH", "default", "anything"])
                .await
                .unwrap()
        ),
        "OK"
    );
}

#[tokio::test]
async fn client_subcommands() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let mut c = server.client(resp3).await;
        let id = match query(&mut c, &["CLIENT", "ID"]).await.unwrap() {
            Value::Int(id) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            query(&mut c, &["CLIENT", "GETNAME"]).await.unwrap(),
            Value::Nil
        );
        assert_eq!(
            text(
                &query(&mut c, &["CLIENT", "SETNAME", "worker-1"])
                    .await
                    .unwrap()
            ),
            "OK"
        );
        assert_eq!(
            text(&query(&mut c, &["CLIENT", "GETNAME"]).await.unwrap()),
            "worker-1"
        );
        assert_eq!(
            error_text(query(&mut c, &["CLIENT", "SETNAME", "has space"]).await),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            text(
                &query(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"])
                    .await
                    .unwrap()
            ),
            "OK"
        );
        assert_eq!(
            text(
                &query(&mut c, &["CLIENT", "SETINFO", "LIB-VER", "1.2"])
                    .await
                    .unwrap()
            ),
            "OK"
        );
        let info = text(&query(&mut c, &["CLIENT", "INFO"]).await.unwrap());
        assert!(info.starts_with(&format!("id={id} ")), "{info}");
        assert!(info.contains(" name=worker-1 "), "{info}");
        assert!(info.contains(" lib-name=mylib lib-ver=1.2"), "{info}");
        assert!(info.contains(" cmd=client|info "), "{info}");
        assert!(
            info.contains(&format!(" resp={} ", if resp3 { 3 } else { 2 })),
            "{info}"
        );
        let list = text(&query(&mut c, &["CLIENT", "LIST"]).await.unwrap());
        assert!(
            list.lines()
                .any(|line| line.starts_with(&format!("id={id} "))),
            "{list}"
        );
        let only = text(
            &query(&mut c, &["CLIENT", "LIST", "ID", &id.to_string()])
                .await
                .unwrap(),
        );
        assert_eq!(only.lines().count(), 1);
        assert_eq!(
            text(&query(&mut c, &["CLIENT", "NO-EVICT", "on"]).await.unwrap()),
            "OK"
        );
        assert_eq!(
            text(&query(&mut c, &["CLIENT", "NO-TOUCH", "on"]).await.unwrap()),
            "OK"
        );
        let info = text(&query(&mut c, &["CLIENT", "INFO"]).await.unwrap());
        assert!(info.contains(" flags=eT "), "{info}");
        assert_eq!(
            error_text(query(&mut c, &["CLIENT", "NO-TOUCH", "maybe"]).await),
            "ERR syntax error"
        );
        assert_eq!(
            error_text(query(&mut c, &["CLIENT", "KILL", "1.2.3.4:5"]).await),
            "ERR No such client"
        );
        assert_eq!(
            query(&mut c, &["CLIENT", "KILL", "ID", "999999"])
                .await
                .unwrap(),
            Value::Int(0)
        );
        assert_eq!(
            error_text(query(&mut c, &["CLIENT", "MAINT_NOTIFICATIONS", "on"]).await),
            "ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP."
        );
        let help = query(&mut c, &["CLIENT", "HELP"]).await.unwrap();
        assert!(matches!(help, Value::Array(ref lines) if lines.len() > 10));
        assert_eq!(text(&query(&mut c, &["PING"]).await.unwrap()), "PONG");
    }
}

#[tokio::test]
async fn reset_restores_the_connection_defaults() {
    let server = common::start().await;
    let mut c = server.client(false).await;
    query(&mut c, &["SELECT", "3"]).await.unwrap();
    query(&mut c, &["CLIENT", "SETNAME", "before"])
        .await
        .unwrap();
    assert_eq!(text(&query(&mut c, &["RESET"]).await.unwrap()), "RESET");
    assert_eq!(
        query(&mut c, &["CLIENT", "GETNAME"]).await.unwrap(),
        Value::Nil
    );
    let info = text(&query(&mut c, &["CLIENT", "INFO"]).await.unwrap());
    assert!(info.contains(" db=0 "), "{info}");
}
