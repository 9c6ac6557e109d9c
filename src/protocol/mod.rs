//! The wire: request decoding (RESP multibulk and inline), the protocol-neutral
//! [`Reply`] commands return, and its RESP2/RESP3 encoding.

mod decode;
mod encode;
mod reply;

pub use decode::{parse_i64, split_args, DecodeLimits, Decoder, ProtocolError, INLINE_MAX_SIZE};
pub use encode::{encode, format_double, format_g, int_text, Version};
pub use reply::Reply;
