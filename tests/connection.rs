//! The connection family through the `redis` crate, under RESP2 and RESP3.

mod common;

use common::*;
use redis::Value;

#[tokio::test]
async fn ping_echo_select_under_both_protocols() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let mut c = server.client(resp3).await;
        assert_eq!(as_text(&q(&mut c, &["PING"]).await), "PONG");
        assert_eq!(as_text(&q(&mut c, &["PING", "hi"]).await), "hi");
        assert_eq!(as_text(&q(&mut c, &["ECHO", "x y"]).await), "x y");
        assert_eq!(
            err(&mut c, &["PING", "a", "b"]).await,
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(as_text(&q(&mut c, &["SELECT", "15"]).await), "OK");
        assert_eq!(
            err(&mut c, &["SELECT", "16"]).await,
            "ERR DB index is out of range"
        );
        assert_eq!(
            err(&mut c, &["SELECT", "x"]).await,
            "ERR value is not an integer or out of range"
        );
    }
}

#[tokio::test]
async fn hello_reports_protocol_and_identity() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let mut c = server.client(resp3).await;
        let reply = q(&mut c, &["HELLO", if resp3 { "3" } else { "2" }]).await;
        let pairs: Vec<(String, Value)> = match reply {
            Value::Map(pairs) => pairs.into_iter().map(|(k, v)| (as_text(&k), v)).collect(),
            Value::Array(items) => items
                .chunks(2)
                .map(|pair| (as_text(&pair[0]), pair[1].clone()))
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
        assert_eq!(
            field("mode").map(|v| as_text(&v)),
            Some("standalone".into())
        );
        assert!(matches!(field("id"), Some(Value::Int(id)) if id > 0));
        assert_eq!(
            err(&mut c, &["HELLO", "4"]).await,
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            err(&mut c, &["HELLO", "3", "BOGUS"]).await,
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
        err(&mut c, &["GET", "k"]).await,
        "NOAUTH Authentication required."
    );
    assert_eq!(
        err(&mut c, &["AUTH", "wrong"]).await,
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        err(&mut c, &["AUTH", "other", "s3cret"]).await,
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        as_text(&q(&mut c, &["AUTH", "default", "s3cret"]).await),
        "OK"
    );
    assert_eq!(as_text(&q(&mut c, &["PING"]).await), "PONG");
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
        assert_eq!(as_text(&q(&mut c, &["PING"]).await), "PONG");
    }
}

#[tokio::test]
async fn auth_without_a_password_configured() {
    let server = common::start().await;
    let mut c = server.client(false).await;
    assert_eq!(
        err(&mut c, &["AUTH", "pw"]).await,
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    assert_eq!(
        as_text(&q(&mut c, &["AUTH", "default", "anything"]).await),
        "OK"
    );
}

#[tokio::test]
async fn client_subcommands() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let mut c = server.client(resp3).await;
        let id = match q(&mut c, &["CLIENT", "ID"]).await {
            Value::Int(id) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(q(&mut c, &["CLIENT", "GETNAME"]).await, Value::Nil);
        assert_eq!(
            as_text(&q(&mut c, &["CLIENT", "SETNAME", "worker-1"]).await),
            "OK"
        );
        assert_eq!(
            as_text(&q(&mut c, &["CLIENT", "GETNAME"]).await),
            "worker-1"
        );
        assert_eq!(
            err(&mut c, &["CLIENT", "SETNAME", "has space"]).await,
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            as_text(&q(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]).await),
            "OK"
        );
        assert_eq!(
            as_text(&q(&mut c, &["CLIENT", "SETINFO", "LIB-VER", "1.2"]).await),
            "OK"
        );
        let info = as_text(&q(&mut c, &["CLIENT", "INFO"]).await);
        assert!(info.starts_with(&format!("id={id} ")), "{info}");
        assert!(info.contains(" name=worker-1 "), "{info}");
        assert!(info.contains(" lib-name=mylib lib-ver=1.2"), "{info}");
        assert!(info.contains(" cmd=client|info "), "{info}");
        assert!(
            info.contains(&format!(" resp={} ", if resp3 { 3 } else { 2 })),
            "{info}"
        );
        let list = as_text(&q(&mut c, &["CLIENT", "LIST"]).await);
        assert!(
            list.lines()
                .any(|line| line.starts_with(&format!("id={id} "))),
            "{list}"
        );
        let only = as_text(&q(&mut c, &["CLIENT", "LIST", "ID", &id.to_string()]).await);
        assert_eq!(only.lines().count(), 1);
        // qbuf: the input not yet run, the listing request's own bytes
        // included, as Redis's.
        let request = format!(
            "*4\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n$2\r\nID\r\n${}\r\n{id}\r\n",
            id.to_string().len()
        );
        assert!(
            only.contains(&format!(" qbuf={} ", request.len())),
            "{only}"
        );
        // Another client, idle, has nothing buffered.
        let mut idle = server.client(resp3).await;
        let idle_id = match q(&mut idle, &["CLIENT", "ID"]).await {
            Value::Int(n) => n,
            other => panic!("CLIENT ID: {other:?}"),
        };
        let other = as_text(&q(&mut c, &["CLIENT", "LIST", "ID", &idle_id.to_string()]).await);
        assert!(other.contains(" qbuf=0 "), "{other}");
        assert_eq!(
            as_text(&q(&mut c, &["CLIENT", "NO-EVICT", "on"]).await),
            "OK"
        );
        assert_eq!(
            as_text(&q(&mut c, &["CLIENT", "NO-TOUCH", "on"]).await),
            "OK"
        );
        let info = as_text(&q(&mut c, &["CLIENT", "INFO"]).await);
        assert!(info.contains(" flags=eT "), "{info}");
        assert_eq!(
            err(&mut c, &["CLIENT", "NO-TOUCH", "maybe"]).await,
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut c, &["CLIENT", "KILL", "1.2.3.4:5"]).await,
            "ERR No such client"
        );
        assert_eq!(
            q(&mut c, &["CLIENT", "KILL", "ID", "999999"]).await,
            Value::Int(0)
        );
        assert_eq!(
            err(&mut c, &["CLIENT", "MAINT_NOTIFICATIONS", "on"]).await,
            "ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP."
        );
        let help = q(&mut c, &["CLIENT", "HELP"]).await;
        assert!(matches!(help, Value::Array(ref lines) if lines.len() > 10));
        assert_eq!(as_text(&q(&mut c, &["PING"]).await), "PONG");
    }
}

#[tokio::test]
async fn reset_restores_the_connection_defaults() {
    let server = common::start().await;
    let mut c = server.client(false).await;
    q(&mut c, &["SELECT", "3"]).await;
    q(&mut c, &["CLIENT", "SETNAME", "before"]).await;
    assert_eq!(as_text(&q(&mut c, &["RESET"]).await), "RESET");
    assert_eq!(q(&mut c, &["CLIENT", "GETNAME"]).await, Value::Nil);
    let info = as_text(&q(&mut c, &["CLIENT", "INFO"]).await);
    assert!(info.contains(" db=0 "), "{info}");
}

/// CLIENT KILL: a client that kills itself gets the reply, then its
/// connection closes (Redis's close-after-reply); a user other than
/// `default` does not exist.
#[tokio::test]
async fn client_kill_of_itself_replies_before_closing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = common::start().await;
    let mut c = server.client(false).await;
    assert_eq!(
        err(&mut c, &["CLIENT", "KILL", "USER", "wrong_user"]).await,
        "ERR No such user 'wrong_user'"
    );
    assert_eq!(
        q(
            &mut c,
            &["CLIENT", "KILL", "USER", "default", "ID", "999999"]
        )
        .await,
        Value::Int(0)
    );
    drop(c);

    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    raw.write_all(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$6\r\nSKIPME\r\n$2\r\nno\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), raw.read_to_end(&mut got))
        .await
        .expect("the connection closes");
    assert!(read.is_ok(), "{read:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with(':') && text.ends_with("\r\n") && text.lines().count() == 1,
        "the reply, then the close: {text:?}"
    );
    let killed: i64 = text
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("a count");
    assert!(killed >= 1, "{text}");
}
