//! The scripting family as far as a server without scripting has one:
//! there are no function libraries (FUNCTION LOAD is not offered), so
//! FUNCTION LIST is empty and FUNCTION FLUSH, which tools and test
//! harnesses send to reset a server, has nothing to remove.

use super::args::{Args, CmdResult};
use super::context::Ctx;
use crate::error;
use crate::protocol::Reply;

/// # Format
/// `FUNCTION FLUSH [ASYNC|SYNC]`
pub fn function_flush(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    if args.remaining() > 1 {
        return Err(error::wrong_arity("function|flush"));
    }
    if !args.is_empty() && !args.eat("async") && !args.eat("sync") {
        return Err(Reply::StaticError(
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    Ok(Reply::Simple("OK"))
}

/// Parsed as Redis parses it, so a mistake gets Redis's error; with no
/// library there is nothing to match the pattern against.
///
/// # Format
/// `FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]`
pub fn function_list(_ctx: &mut Ctx<'_>, args: &mut Args<'_>) -> CmdResult {
    let (mut with_code, mut pattern) = (false, false);
    while !args.is_empty() {
        let word = args.next_bytes()?;
        if !with_code && word.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if !pattern && word.eq_ignore_ascii_case(b"libraryname") {
            if args.is_empty() {
                return Err(Reply::StaticError(
                    "ERR library name argument was not given",
                ));
            }
            args.next_bytes()?;
            pattern = true;
        } else {
            return Err(Reply::Error(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(word)
            )));
        }
    }
    Ok(Reply::Array(Vec::new()))
}

/// # Format
/// `FUNCTION HELP`
pub fn function_help(_ctx: &mut Ctx<'_>, _args: &mut Args<'_>) -> CmdResult {
    Ok(super::server::help(
        "FUNCTION",
        &[
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "FLUSH [ASYNC|SYNC]",
            "    Deletes all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
        ],
    ))
}
