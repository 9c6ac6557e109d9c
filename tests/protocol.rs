//! Raw-socket tests of the wire protocol: inline commands, pipelining,
//! every malformed input (its exact error, then the close), limits,
//! RESP3 shapes, connection limits and graceful shutdown.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(server: &common::TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connects")
}

/// Reads until `expected` bytes arrived (or the peer closed / 5 s passed).
async fn read_exact_text(stream: &mut TcpStream, expected: usize) -> String {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while buf.len() < expected {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Reads everything until the server closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let result = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(result.is_ok(), "server did not close the connection");
    String::from_utf8_lossy(&buf).into_owned()
}

async fn exchange(server: &common::TestServer, request: &[u8], expected: &str) {
    let mut stream = connect(server).await;
    stream.write_all(request).await.unwrap();
    let got = read_exact_text(&mut stream, expected.len()).await;
    assert_eq!(
        got,
        expected,
        "request {:?}",
        String::from_utf8_lossy(request)
    );
}

async fn error_then_close(server: &common::TestServer, request: &[u8], error: &str) {
    let mut stream = connect(server).await;
    stream.write_all(request).await.unwrap();
    let got = read_to_close(&mut stream).await;
    assert_eq!(got, format!("-ERR Protocol error: {error}\r\n"));
}

#[tokio::test]
async fn inline_commands_and_quoting() {
    let server = common::start().await;
    exchange(&server, b"PING\r\n", "+PONG\r\n").await;
    exchange(&server, b"ping\n", "+PONG\r\n").await;
    exchange(
        &server,
        b"ECHO \"hello world\"\r\n",
        "$11\r\nhello world\r\n",
    )
    .await;
    exchange(&server, b"ECHO '\\'q\\''\r\n", "$3\r\n'q'\r\n").await;
    exchange(&server, b"ECHO \"\\x41\\n\"\r\n", "$2\r\nA\n\r\n").await;
    exchange(&server, b"\r\n\r\nPING\r\n", "+PONG\r\n").await;
}

#[tokio::test]
async fn pipelined_batch_gets_every_reply_in_order() {
    let server = common::start().await;
    let mut request = Vec::new();
    let mut expected = String::new();
    for i in 0..500 {
        request.extend_from_slice(
            format!("*2\r\n$4\r\nECHO\r\n${}\r\n{}\r\n", i.to_string().len(), i).as_bytes(),
        );
        expected.push_str(&format!("${}\r\n{}\r\n", i.to_string().len(), i));
    }
    request.extend_from_slice(b"PING\r\n");
    expected.push_str("+PONG\r\n");
    exchange(&server, &request, &expected).await;
}

#[tokio::test]
async fn request_split_across_writes() {
    let server = common::start().await;
    let mut stream = connect(&server).await;
    for byte in b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n" {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
    }
    assert_eq!(read_exact_text(&mut stream, 11).await, "$5\r\nhello\r\n");
}

#[tokio::test]
async fn malformed_input_errors_then_closes() {
    let server = common::start().await;
    error_then_close(&server, b"*abc\r\n", "invalid multibulk length").await;
    error_then_close(&server, b"*3000000000\r\n", "invalid multibulk length").await;
    error_then_close(&server, b"*1\r\n$abc\r\n", "invalid bulk length").await;
    error_then_close(&server, b"*1\r\n$-1\r\n", "invalid bulk length").await;
    error_then_close(&server, b"*1\r\n$536870913\r\n", "invalid bulk length").await;
    error_then_close(&server, b"*1\r\nPING\r\n", "expected '$', got 'P'").await;
    error_then_close(
        &server,
        b"ECHO \"unterminated\r\n",
        "unbalanced quotes in request",
    )
    .await;
    error_then_close(&server, &vec![b'x'; 70 * 1024], "too big inline request").await;
    error_then_close(
        &server,
        format!("*{}", "1".repeat(70 * 1024)).as_bytes(),
        "too big mbulk count string",
    )
    .await;
    error_then_close(
        &server,
        format!("*1\r\n${}", "1".repeat(70 * 1024)).as_bytes(),
        "too big bulk count string",
    )
    .await;
}

#[tokio::test]
async fn replies_before_a_protocol_error_are_delivered() {
    let server = common::start().await;
    let mut stream = connect(&server).await;
    stream.write_all(b"PING\r\n*x\r\nPING\r\n").await.unwrap();
    let got = read_to_close(&mut stream).await;
    assert_eq!(
        got,
        "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    );
}

#[tokio::test]
async fn announced_huge_bulk_allocates_nothing_up_front() {
    let server = common::start().await;
    let mut stream = connect(&server).await;
    // 512 MB announced, 5 bytes sent: the server must simply wait for more.
    stream
        .write_all(b"*2\r\n$4\r\nECHO\r\n$536870912\r\nhello")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let waited = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(waited.is_err(), "server answered an incomplete request");
    let mut other = connect(&server).await;
    other.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_exact_text(&mut other, 7).await, "+PONG\r\n");
}

#[tokio::test]
async fn unauthenticated_clients_get_tighter_limits() {
    let server = common::start_with(|c| c.server.requirepass = "pw".into()).await;
    error_then_close(&server, b"*11\r\n", "unauthenticated multibulk length").await;
    error_then_close(&server, b"*1\r\n$16385\r\n", "unauthenticated bulk length").await;
    exchange(&server, b"PING\r\n", "-NOAUTH Authentication required.\r\n").await;
    exchange(&server, b"AUTH pw\r\nPING\r\n", "+OK\r\n+PONG\r\n").await;
    exchange(&server, b"AUTH default pw\r\n", "+OK\r\n").await;
    exchange(
        &server,
        b"AUTH nope\r\n",
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
}

#[tokio::test]
async fn unknown_command_and_arity_errors_keep_the_connection() {
    let server = common::start().await;
    exchange(
        &server,
        b"FOO a b\r\nPING\r\n",
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n+PONG\r\n",
    )
    .await;
    exchange(
        &server,
        b"GET\r\n",
        "-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    exchange(
        &server,
        b"CLIENT MAINT_NOTIFICATIONS on\r\nPING\r\n",
        "-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n+PONG\r\n",
    )
    .await;
    exchange(
        &server,
        b"CLIENT SETNAME\r\n",
        "-ERR wrong number of arguments for 'client|setname' command\r\n",
    )
    .await;
}

#[tokio::test]
async fn resp3_shapes_after_hello() {
    let server = common::start().await;
    let mut stream = connect(&server).await;
    stream.write_all(b"HELLO 3\r\n").await.unwrap();
    let hello = read_exact_text(&mut stream, 10).await;
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    stream.write_all(b"HELLO 4\r\n").await.unwrap();
    let got = read_exact_text(&mut stream, 1).await;
    assert!(
        got.contains("-NOPROTO unsupported protocol version\r\n"),
        "{got}"
    );
}

#[tokio::test]
async fn client_reply_off_and_skip() {
    let server = common::start().await;
    exchange(
        &server,
        b"CLIENT REPLY OFF\r\nPING\r\nCLIENT REPLY ON\r\nPING\r\n",
        "+OK\r\n+PONG\r\n",
    )
    .await;
    exchange(
        &server,
        b"CLIENT REPLY SKIP\r\nPING\r\nECHO x\r\n",
        "$1\r\nx\r\n",
    )
    .await;
    // ON right after SKIP clears it: its own OK is sent (Redis's
    // "CLIENT REPLY ON: unset SKIP flag"); SKIP right after SKIP skips the
    // command after it.
    exchange(
        &server,
        b"CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING\r\n",
        "+OK\r\n+PONG\r\n",
    )
    .await;
    exchange(
        &server,
        b"CLIENT REPLY SKIP\r\nCLIENT REPLY SKIP\r\nPING\r\nECHO y\r\n",
        "$1\r\ny\r\n",
    )
    .await;
}

#[tokio::test]
async fn quit_replies_then_closes() {
    let server = common::start().await;
    let mut stream = connect(&server).await;
    stream.write_all(b"QUIT\r\nPING\r\n").await.unwrap();
    assert_eq!(read_to_close(&mut stream).await, "+OK\r\n");
}

#[tokio::test]
async fn maxclients_refuses_with_redis_error() {
    let server = common::start_with(|c| c.server.maxclients = 2).await;
    let mut first = connect(&server).await;
    let mut second = connect(&server).await;
    first.write_all(b"PING\r\n").await.unwrap();
    second.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_exact_text(&mut first, 7).await, "+PONG\r\n");
    assert_eq!(read_exact_text(&mut second, 7).await, "+PONG\r\n");
    let mut third = connect(&server).await;
    assert_eq!(
        read_to_close(&mut third).await,
        "-ERR max number of clients reached\r\n"
    );
}

#[tokio::test]
async fn client_kill_closes_the_target() {
    let server = common::start().await;
    let mut victim = connect(&server).await;
    victim.write_all(b"CLIENT ID\r\n").await.unwrap();
    let id_reply = read_exact_text(&mut victim, 4).await;
    let id = id_reply.trim().trim_start_matches(':').to_string();
    let mut killer = connect(&server).await;
    killer
        .write_all(format!("CLIENT KILL ID {id}\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_exact_text(&mut killer, 4).await, ":1\r\n");
    assert_eq!(read_to_close(&mut victim).await, "");
}

#[tokio::test]
async fn shutdown_command_stops_the_server() {
    let server = common::start().await;
    let mut idle = connect(&server).await;
    let mut stream = connect(&server).await;
    stream.write_all(b"SHUTDOWN NOSAVE\r\n").await.unwrap();
    assert_eq!(read_to_close(&mut stream).await, "");
    assert_eq!(read_to_close(&mut idle).await, "");
    tokio::time::timeout(Duration::from_secs(5), server.app.wait())
        .await
        .expect("server stopped");
}

/// RESP3 reply shapes (map, verbatim, null, errors, aggregates) parsed by an
/// independent RESP3 decoder: redis-protocol.
#[tokio::test]
async fn resp3_replies_parse_with_redis_protocol() {
    use redis_protocol::resp3::decode::complete::decode;
    use redis_protocol::resp3::types::OwnedFrame;

    let server = common::start().await;
    let mut stream = connect(&server).await;
    type Expectation = (&'static [u8], fn(&OwnedFrame) -> bool);
    let requests: &[Expectation] = &[
        (
            b"HELLO 3\r\n",
            |f| matches!(f, OwnedFrame::Map { data, .. } if data.len() == 7),
        ),
        (b"CONFIG GET maxmemory*\r\n", |f| {
            matches!(f, OwnedFrame::Map { .. })
        }),
        (b"INFO server\r\n", |f| {
            matches!(f, OwnedFrame::VerbatimString { .. })
        }),
        (b"CLIENT INFO\r\n", |f| {
            matches!(f, OwnedFrame::VerbatimString { .. })
        }),
        (b"GET missing\r\n", |f| matches!(f, OwnedFrame::Null)),
        (b"SET f 1.5\r\n", |f| {
            matches!(f, OwnedFrame::SimpleString { .. })
        }),
        (b"INCRBYFLOAT f 1\r\n", |f| {
            matches!(f, OwnedFrame::BlobString { .. })
        }),
        // COMMAND INFO/DOCS are left out: like Redis, they send sets of maps,
        // which redis-protocol's hash-set frames cannot hold.
        (
            b"COMMAND COUNT\r\n",
            |f| matches!(f, OwnedFrame::Number { data, .. } if *data > 50),
        ),
        (b"LCS f f IDX\r\n", |f| matches!(f, OwnedFrame::Map { .. })),
        (b"NOSUCH\r\n", |f| {
            matches!(f, OwnedFrame::SimpleError { .. })
        }),
    ];
    let mut pending = Vec::new();
    for (request, check) in requests {
        stream.write_all(request).await.unwrap();
        let frame = loop {
            if let Some((frame, used)) = decode(&pending).expect("valid RESP3") {
                pending.drain(..used);
                break frame;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(n > 0, "closed");
            pending.extend_from_slice(&chunk[..n]);
        };
        assert!(
            check(&frame),
            "{}: {frame:?}",
            String::from_utf8_lossy(request)
        );
    }
}
