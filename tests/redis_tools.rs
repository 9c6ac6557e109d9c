//! Redis's own tools against strata: redis-cli (one-shot and interactive on a
//! pseudo-terminal, which sends COMMAND DOCS first) and redis-benchmark.
//! `tools/test.sh` installs them; without them these tests fail.

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

async fn output_of(mut command: Command, stdin: Option<&[u8]>) -> (String, String, bool) {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .expect("the Redis tools must be installed (tools/test.sh)");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).await.expect("writes stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("tool finished in time")
        .expect("tool ran");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.success(),
    )
}

fn cli(server: &common::TestServer) -> Command {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_one_shot_commands() {
    let server = common::start().await;
    let run = |args: &[&str]| {
        let mut command = cli(&server);
        command.args(args);
        output_of(command, None)
    };
    assert_eq!(run(&["PING"]).await.0, "PONG\n");
    assert_eq!(run(&["SET", "greeting", "hello world"]).await.0, "OK\n");
    assert_eq!(run(&["GET", "greeting"]).await.0, "hello world\n");
    assert_eq!(run(&["INCR", "counter"]).await.0, "1\n");
    let (hello, _, ok) = run(&["-3", "HELLO", "3"]).await;
    assert!(
        ok && hello.contains("proto") && hello.contains('3'),
        "{hello}"
    );
    let (out, _, _) = run(&["NOSUCHCMD"]).await;
    assert!(out.starts_with("ERR unknown command 'NOSUCHCMD'"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_commands_from_a_pipe() {
    let server = common::start().await;
    let (out, err, ok) = output_of(cli(&server), Some(b"SET a 1\nINCR a\nGET a\nDEL a\n")).await;
    assert!(ok, "{err}");
    assert_eq!(out, "OK\n2\n2\n1\n");
}

/// Interactive redis-cli (on a pseudo-terminal via `script`) asks COMMAND DOCS
/// on start and aborts if the reply has the wrong shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_interactive_survives_command_docs() {
    let server = common::start().await;
    for resp3 in [false, true] {
        let cli_line = format!(
            "redis-cli -h 127.0.0.1 -p {}{}",
            server.addr.port(),
            if resp3 { " -3" } else { "" }
        );
        let mut command = Command::new("script");
        command.args(["-qec", &cli_line, "/dev/null"]);
        command.env("TERM", "dumb");
        let (out, err, ok) =
            output_of(command, Some(b"SET k interactive\nGET k\nHELP GET\nexit\n")).await;
        assert!(ok, "interactive redis-cli failed: {out}\n{err}");
        assert!(!out.contains("Assertion"), "{out}");
        assert!(out.contains("interactive"), "{out}");
        // HELP GET is answered from the COMMAND DOCS strata sent.
        assert!(out.contains("Get the value of a key"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_without_errors() {
    let server = common::start().await;
    let mut command = Command::new("redis-benchmark");
    command.args([
        "-h",
        "127.0.0.1",
        "-p",
        &server.addr.port().to_string(),
        "-q",
        "-n",
        "2000",
        "-t",
        "ping_inline,ping_mbulk,set,get,incr,mset",
    ]);
    let (out, err, ok) = output_of(command, None).await;
    assert!(ok, "{out}\n{err}");
    let text = format!("{out}{err}").to_lowercase();
    assert!(!text.contains("error"), "{text}");
    for test in [
        "ping_inline",
        "ping_mbulk",
        "set",
        "get",
        "incr",
        "mset (10 keys)",
    ] {
        assert!(
            // Progress updates end in '\r'; the final figure follows the last one.
            text.split(['\r', '\n'])
                .map(str::trim)
                .any(|line| line.starts_with(&format!("{test}:"))
                    && line.contains("requests per second")),
            "no result line for {test}: {text}"
        );
    }
}
