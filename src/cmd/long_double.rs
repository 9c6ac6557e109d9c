//! An exact software model of the x87 80-bit `long double` that Redis 7 on
//! x86-64 Linux uses for INCRBYFLOAT: a 64-bit significand, exponents down to
//! the subnormal step 2^-16445, and overflow at 2^16384.
//!
//! Three operations mirror Redis and glibc bit for bit:
//! - [`parse`] is Redis's `string2ld` (glibc `strtold`, correctly rounded,
//!   round-half-to-even), with its rejections: empty or 5 KiB-long text,
//!   anything `strtold` would not consume whole (leading or trailing space,
//!   NUL bytes, garbage), NaN, overflow to infinity and underflow to zero.
//!   Decimal and hexadecimal (`0x1.8p3`) forms and `inf`/`infinity` are read.
//! - [`LongDouble::finite_sum`] is one `long double` addition.
//! - [`Finite::to_human`] is `ld2string(.., LD_STR_HUMAN)`: `%.17Lf`, trailing
//!   zeros (and a bare '.') trimmed, and "-0" printed as "0".
//!
//! All big-number work is bounded: exponents that must overflow or underflow
//! are rejected from the digit counts before any power is built, so the
//! largest number ever formed has about 40,000 bits.

use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};

/// Redis's `MAX_LONG_DOUBLE_CHARS`: inputs this long or longer are invalid.
const MAX_TEXT_LEN: usize = 5 * 1024;
/// Significand bits.
const PRECISION: i64 = 64;
/// Exponent of the unit of the least subnormal: every finite value is a
/// multiple of 2^MIN_EXP.
const MIN_EXP: i64 = -16445;
/// Largest exponent of a 64-bit significand: values reach up to
/// (2^64 - 1) * 2^MAX_EXP, just under 2^16384.
const MAX_EXP: i64 = 16384 - PRECISION;
/// Values under 2^MIN_NORMAL_EXP (those whose top bit has an exponent
/// below -16382) are subnormal.
const MIN_NORMAL_EXP: i64 = -16382;
/// Decimal digits printed after the point (`%.17Lf`).
const FRACTION_DIGITS: usize = 17;
/// Extra quotient bits beyond the significand when dividing, so that the
/// rounding bit is exact and the rest is summed up in a sticky flag.
const GUARD_BITS: i64 = 2;

/// A finite `long double`: `(-1)^negative * mantissa * 2^exponent`. Normal
/// values keep the top mantissa bit set; subnormals have `exponent == MIN_EXP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finite {
    negative: bool,
    mantissa: u64,
    exponent: i64,
}

/// A `long double` that is not NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDouble {
    Finite(Finite),
    Infinite { negative: bool },
}

/// What rounding an exact value to a `long double` gave.
enum Rounded {
    Value(Finite),
    /// The magnitude reached 2^16384: infinity, `ERANGE`.
    Overflow,
    /// A nonzero value rounded to zero: `ERANGE`.
    Underflow,
}

impl Finite {
    /// Positive zero, what a missing key counts as.
    pub const ZERO: Finite = Finite {
        negative: false,
        mantissa: 0,
        exponent: 0,
    };

    fn zero(negative: bool) -> Finite {
        Finite {
            negative,
            ..Finite::ZERO
        }
    }

    fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The text Redis stores and replies with: `%.17Lf` (glibc rounds the
    /// exact binary value half-to-even to 17 decimals), then trailing zeros
    /// and a trailing '.' dropped, and "-0" turned into "0".
    pub fn to_human(self) -> String {
        let scaled =
            BigUint::from(self.mantissa) * BigUint::from(10u32).pow(FRACTION_DIGITS as u32);
        let scaled = if self.exponent >= 0 {
            scaled << usize::try_from(self.exponent).unwrap_or(0)
        } else {
            let shift = self.exponent.unsigned_abs();
            let mut quotient = &scaled >> shift;
            // Round half to even on the bits shifted out.
            let half_bit = shift >= 1 && scaled.bit(shift - 1);
            let below_half = trailing_zeros(&scaled) < shift.saturating_sub(1);
            if half_bit && (below_half || quotient.bit(0)) {
                quotient += 1u32;
            }
            quotient
        };
        let digits = scaled.to_str_radix(10);
        // Padded to at least one integer digit, so the split below is in range.
        let digits = format!("{digits:0>width$}", width = FRACTION_DIGITS + 1);
        let (int_part, fraction) = digits.split_at(digits.len() - FRACTION_DIGITS);
        let fraction = fraction.trim_end_matches('0');
        let mut text = String::with_capacity(digits.len() + 2);
        if self.negative {
            text.push('-');
        }
        text.push_str(int_part);
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(fraction);
        }
        if text == "-0" {
            text.truncate(0);
            text.push('0');
        }
        text
    }
}

impl LongDouble {
    /// `self + other` in `long double`, or `None` when the sum is NaN or
    /// infinite (INCRBYFLOAT's "increment would produce NaN or Infinity").
    pub fn finite_sum(self, other: LongDouble) -> Option<Finite> {
        let (LongDouble::Finite(a), LongDouble::Finite(b)) = (self, other) else {
            return None;
        };
        if b.is_zero() {
            // x + 0 is x, except that -0 + +0 is +0.
            return Some(if a.is_zero() {
                Finite::zero(a.negative && b.negative)
            } else {
                a
            });
        }
        if a.is_zero() {
            return Some(b);
        }
        let exponent = a.exponent.min(b.exponent);
        let align = |x: Finite| {
            let shift = usize::try_from(x.exponent - exponent).unwrap_or(0);
            BigUint::from(x.mantissa) << shift
        };
        let (x, y) = (align(a), align(b));
        let (negative, magnitude) = if a.negative == b.negative {
            (a.negative, x + y)
        } else if x >= y {
            (a.negative, x - y)
        } else {
            (b.negative, y - x)
        };
        if magnitude.is_zero() {
            // An exact cancellation is +0 when rounding to nearest.
            return Some(Finite::ZERO);
        }
        match round(negative, &magnitude, exponent, false) {
            Rounded::Value(sum) => Some(sum),
            Rounded::Overflow | Rounded::Underflow => None,
        }
    }
}

/// Redis's `string2ld`: the value of `text`, or `None` where Redis replies
/// "value is not a valid float".
pub fn parse(text: &[u8]) -> Option<LongDouble> {
    if text.is_empty() || text.len() >= MAX_TEXT_LEN {
        return None;
    }
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(LongDouble::Infinite { negative });
    }
    let rounded = match body {
        [b'0', b'x' | b'X', hex @ ..] => parse_hex(negative, hex)?,
        _ => parse_decimal(negative, body)?,
    };
    match rounded {
        Rounded::Value(value) => Some(LongDouble::Finite(value)),
        Rounded::Overflow | Rounded::Underflow => None,
    }
}

/// The digits of a mantissa: `int_digits[.frac_digits]`, at least one digit
/// in all, and what follows them.
struct Mantissa<'a> {
    int_digits: &'a [u8],
    frac_digits: &'a [u8],
    rest: &'a [u8],
}

const EMPTY: &[u8] = &[];

fn split_mantissa(text: &[u8], is_digit: fn(&u8) -> bool) -> Option<Mantissa<'_>> {
    let int_len = text.iter().take_while(|c| is_digit(c)).count();
    let (int_digits, rest) = text.split_at(int_len);
    let (frac_digits, rest) = match rest.split_first() {
        Some((b'.', after)) => {
            let frac_len = after.iter().take_while(|c| is_digit(c)).count();
            after.split_at(frac_len)
        }
        _ => (EMPTY, rest),
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    Some(Mantissa {
        int_digits,
        frac_digits,
        rest,
    })
}

/// An exponent part (`e-12`, `p+3`: the marker is already consumed) that
/// must be the whole of `text`; saturates far beyond any meaningful value.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |acc, &d| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(d - b'0'))
            .min(1 << 40)
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// The exponent part after a mantissa: nothing, or `marker[+-]digits`.
fn exponent_part(rest: &[u8], markers: [u8; 2]) -> Option<i64> {
    match rest.split_first() {
        None => Some(0),
        Some((c, after)) if markers.contains(c) => parse_exponent(after),
        Some(_) => None,
    }
}

/// Significant digits with leading zeros stripped, as a number.
fn digits_value(digits: &[u8], radix: u32) -> BigUint {
    BigUint::parse_bytes(digits, radix).unwrap_or_default()
}

fn parse_decimal(negative: bool, text: &[u8]) -> Option<Rounded> {
    let mantissa = split_mantissa(text, u8::is_ascii_digit)?;
    let exp10 = exponent_part(mantissa.rest, [b'e', b'E'])?;
    // All digits as one integer, scaled by 10^exp10.
    let mut digits: Vec<u8> = mantissa
        .int_digits
        .iter()
        .chain(mantissa.frac_digits)
        .copied()
        .skip_while(|&d| d == b'0')
        .collect();
    let trailing_zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
    digits.truncate(digits.len() - trailing_zeros);
    if digits.is_empty() {
        return Some(Rounded::Value(Finite::zero(negative)));
    }
    let exp10 = exp10
        .saturating_sub(mantissa.frac_digits.len() as i64)
        .saturating_add(trailing_zeros as i64);
    // The value lies in [10^(count-1+exp10), 10^(count+exp10)). The largest
    // long double is about 1.19e4932, half the least subnormal about 1.8e-4951.
    let count = digits.len() as i64;
    if count - 1 + exp10 > 4933 {
        return Some(Rounded::Overflow);
    }
    if count + exp10 < -4952 {
        return Some(Rounded::Underflow);
    }
    let value = digits_value(&digits, 10);
    let power = |k: i64| BigUint::from(10u32).pow(u32::try_from(k).unwrap_or(0));
    if exp10 >= 0 {
        return Some(round(negative, &(value * power(exp10)), 0, false));
    }
    // value / 10^k: divide with enough quotient bits for an exact rounding bit.
    let divisor = power(-exp10);
    let shift = (divisor.bits() as i64 + PRECISION + GUARD_BITS - value.bits() as i64).max(0);
    let numerator = value << usize::try_from(shift).unwrap_or(0);
    let (quotient, remainder) = (&numerator / &divisor, &numerator % &divisor);
    Some(round(negative, &quotient, -shift, !remainder.is_zero()))
}

fn parse_hex(negative: bool, text: &[u8]) -> Option<Rounded> {
    let Some(mantissa) = split_mantissa(text, u8::is_ascii_hexdigit) else {
        // "0x" without hex digits: strtold reads just the "0".
        return None;
    };
    let exp2 = exponent_part(mantissa.rest, [b'p', b'P'])?;
    let digits: Vec<u8> = mantissa
        .int_digits
        .iter()
        .chain(mantissa.frac_digits)
        .copied()
        .skip_while(|&d| d == b'0')
        .collect();
    let value = digits_value(&digits, 16);
    if value.is_zero() {
        return Some(Rounded::Value(Finite::zero(negative)));
    }
    let exp2 = exp2.saturating_sub(4 * mantissa.frac_digits.len() as i64);
    // The value lies in [2^(top-1), 2^top).
    let top = exp2.saturating_add(value.bits() as i64);
    if top > 16384 {
        return Some(Rounded::Overflow);
    }
    if top < MIN_EXP - 1 {
        return Some(Rounded::Underflow);
    }
    let mut value = value;
    if top <= MIN_NORMAL_EXP && value.bits() > PRECISION as u64 {
        // glibc 2.36 (Debian 12, where Redis 7.0 was checked) reads 64 bits
        // and a rounding bit, then drops that rounding bit when it shifts a
        // subnormal into place: 0x1.0000000000000001p-16446 reads as 0, not
        // as the least subnormal. Decimal text never reaches this: a dyadic
        // subnormal takes over 11,000 digits, past the 5 KiB limit.
        value.set_bit(value.bits() - 1 - PRECISION as u64, false);
    }
    Some(round(negative, &value, exp2, false))
}

/// Index of the lowest set bit; `u64::MAX` for zero.
fn trailing_zeros(n: &BigUint) -> u64 {
    n.trailing_zeros().unwrap_or(u64::MAX)
}

/// Rounds `(n + f) * 2^exponent` half-to-even to a `long double`, where the
/// fraction `f` in [0, 1) is nonzero exactly when `sticky`. With `sticky`,
/// `n` must have at least `PRECISION + GUARD_BITS` bits.
fn round(negative: bool, n: &BigUint, exponent: i64, sticky: bool) -> Rounded {
    let bits = n.bits() as i64;
    if bits == 0 {
        return if sticky {
            Rounded::Underflow
        } else {
            Rounded::Value(Finite::zero(negative))
        };
    }
    let mut target = (bits + exponent - PRECISION).max(MIN_EXP);
    let shift = target - exponent;
    let mantissa = if shift <= 0 {
        // Exact: n fits the significand once shifted left.
        let shifted = n << usize::try_from(-shift).unwrap_or(0);
        shifted.to_u64().unwrap_or(u64::MAX)
    } else {
        let shift = shift.unsigned_abs();
        let kept = (n >> shift).to_u64().unwrap_or(u64::MAX);
        let half_bit = n.bit(shift - 1);
        let below_half = sticky || trailing_zeros(n) < shift - 1;
        if half_bit && (below_half || kept & 1 == 1) {
            match kept.checked_add(1) {
                Some(up) => up,
                None => {
                    // Carried into a 65th bit: 2^64 * 2^t is 2^63 * 2^(t+1).
                    target += 1;
                    1 << 63
                }
            }
        } else if kept == 0 && (half_bit || below_half) {
            return Rounded::Underflow;
        } else {
            kept
        }
    };
    if target > MAX_EXP {
        return Rounded::Overflow;
    }
    Rounded::Value(Finite {
        negative,
        mantissa,
        exponent: target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(text: &str) -> Option<String> {
        match parse(text.as_bytes())? {
            LongDouble::Finite(value) => Some(value.to_human()),
            LongDouble::Infinite { negative } => Some(if negative { "-inf" } else { "inf" }.into()),
        }
    }

    /// INCRBYFLOAT on a key holding `current`: Ok(text) or Err(error kind).
    fn incr(current: &str, increment: &str) -> Result<String, &'static str> {
        let a = parse(current.as_bytes()).ok_or("float")?;
        let b = parse(increment.as_bytes()).ok_or("float")?;
        a.finite_sum(b).map(|sum| sum.to_human()).ok_or("naninf")
    }

    /// (stored value, increment, reply) triples taken from Redis 7.0.15 on
    /// x86-64 Debian 12; `Err("float")` is "value is not a valid float",
    /// `Err("naninf")` is "increment would produce NaN or Infinity".
    #[test]
    fn matches_redis_replies() {
        let cases: &[(&str, &str, Result<&str, &str>)] = &[
            ("0", "0.1", Ok("0.1")),
            ("0.1", "0.2", Ok("0.3")),
            ("10.5", "0.1", Ok("10.6")),
            ("5.0e3", "2.0e2", Ok("5200")),
            ("9223372036854775807", "-0.5", Ok("9223372036854775806.5")),
            ("0", "1.5e-10", Ok("0.00000000015")),
            ("0", "-0.0", Ok("0")),
            ("0", "3.", Ok("3")),
            ("0", ".5", Ok("0.5")),
            ("0", "+1", Ok("1")),
            ("0", "1e", Err("float")),
            ("0", " 1", Err("float")),
            ("1 ", "1", Err("float")),
            ("0", "inf", Err("naninf")),
            ("0", "-infinity", Err("naninf")),
            ("0", "nan", Err("float")),
            ("123456.1", "123456.1", Ok("246912.20000000000000284")),
            (
                "-123456789012345678901234567890",
                "0.5",
                Ok("-123456789012345678899921813504"),
            ),
            ("18446744073709551616", "1", Ok("18446744073709551616")),
            ("18446744073709551616", "3", Ok("18446744073709551620")),
            ("0", "0x1p-18", Ok("0.00000381469726562")),
            ("0", "0x1.8p3", Ok("12")),
            ("0x10", "1", Ok("17")),
            ("0", "0x", Err("float")),
            ("1.18973149535723176502e4932", "1e4913", Err("naninf")),
            ("0", "1.18973149535723176508e4932", Err("float")),
            ("0", "1e-4951", Err("float")),
            ("0", "1.9e-4951", Ok("0")),
            ("0", "1e-5000", Err("float")),
            ("0", "0e99999999999999999999", Ok("0")),
            ("0", "1e99999999999999999999", Err("float")),
            ("0.1", "-0.1", Ok("0")),
            ("0", "-1e-20", Ok("0")),
            ("0", "0.000000000000000015", Ok("0.00000000000000002")),
            ("0", "0.000000000000000025", Ok("0.00000000000000002")),
            ("1e20", "0.1", Ok("100000000000000000000")),
            ("0", "1.0000000000000002e-5", Ok("0.00001")),
            ("0", "7E-3", Ok("0.007")),
            ("0", "abc", Err("float")),
            ("0", "1\x00", Err("float")),
            ("0", "0x1.0000000000000001p-16446", Err("float")),
            ("0", "0x1.000000000000001p-16446", Ok("0")),
            ("1e-17", "5e-18", Ok("0.00000000000000002")),
            (
                "0",
                "3.14159265358979323846264338327950288",
                Ok("3.14159265358979324"),
            ),
        ];
        for &(current, increment, expected) in cases {
            assert_eq!(
                incr(current, increment),
                expected.map(String::from),
                "{current:?} + {increment:?}"
            );
        }
    }

    /// Long results, checked by length and both ends (Redis 7.0.15).
    #[test]
    fn matches_redis_on_huge_values() {
        let cases = [
            (
                "1e308",
                "1e308",
                309,
                "1999999999999999999933717593116912913211",
                "0905456510092687857156096",
            ),
            (
                "0",
                "1e4000",
                4000,
                "9999999999999999999965463873099623784932",
                "9951206648276349901340672",
            ),
            (
                "0",
                "1.18973149535723176502e4932",
                4933,
                "1189731495357231765021263853030970205169",
                "6604419552086811989770240",
            ),
            (
                "0",
                "-1e4932",
                4934,
                "-100000000000000000000601894938796389132",
                "1086538418113791886622720",
            ),
        ];
        for (current, increment, len, head, tail) in cases {
            let Ok(text) = incr(current, increment) else {
                panic!("{current} + {increment} is finite");
            };
            assert_eq!(text.len(), len, "{increment}");
            assert!(text.starts_with(head), "{increment}");
            assert!(text.ends_with(tail), "{increment}");
        }
    }

    #[test]
    fn chained_additions_match_redis() {
        // Each step re-reads the stored text, as Redis does (Redis 7.0.15).
        let chain = |increment: &str, times: usize| {
            (0..times).try_fold("0".to_string(), |current, _| incr(&current, increment))
        };
        assert_eq!(
            chain("123456.1", 2).as_deref(),
            Ok("246912.20000000000000284")
        );
        assert_eq!(
            chain("123456.1", 50).as_deref(),
            Ok("6172804.99999999999727152")
        );
        assert_eq!(chain("0.1", 100).as_deref(), Ok("10"));
    }

    #[test]
    fn parses_the_strtold_grammar() {
        for valid in [
            "1",
            "+1",
            "-1",
            "1.",
            ".1",
            "1e5",
            "1E+5",
            "1e-5",
            "0x1",
            "0X1P-1",
            "0x.8",
            "0x1.p1",
            "INF",
            "-Infinity",
            "00",
            "0e999999999999999999999999",
        ] {
            assert!(parse(valid.as_bytes()).is_some(), "{valid:?}");
        }
        for invalid in [
            "", ".", "+", "-", "e5", ".e5", "1e", "1e+", "0x", "0x.", "0xp1", "0x1p", "1 ", " 1",
            "\t1", "1\0", "nan", "-nan(1)", "infin", "in", "1.5.5", "1e5e5", "--1", "0b1", "1_0",
        ] {
            assert!(parse(invalid.as_bytes()).is_none(), "{invalid:?}");
        }
        assert!(parse(&[b'0'; MAX_TEXT_LEN - 1]).is_some());
        assert!(parse(&[b'0'; MAX_TEXT_LEN]).is_none());
        assert!(parse(&[0xff, b'1']).is_none());
    }

    #[test]
    fn arbitrary_text_never_panics() {
        // A fixed pseudo-random sweep over the characters the grammar uses.
        const ALPHABET: &[u8] = b"0123456789.eEpPxX+-afinINF \0";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut previous = LongDouble::Finite(Finite::ZERO);
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let mut text: Vec<u8> = (0..len)
                .filter_map(|_| {
                    ALPHABET
                        .get((next() % ALPHABET.len() as u64) as usize)
                        .copied()
                })
                .collect();
            if next() % 4 == 0 {
                text.extend_from_slice(format!("e{}", next() as i64 % 40_000).as_bytes());
            }
            if let Some(value) = parse(&text) {
                if let Some(sum) = previous.finite_sum(value) {
                    let printed = sum.to_human();
                    assert!(parse(printed.as_bytes()).is_some(), "{printed}");
                    previous = LongDouble::Finite(sum);
                }
            }
        }
    }

    #[test]
    fn huge_exponents_cost_nothing() {
        // Rejected or zero from the digit count alone, before any power of ten.
        for text in [
            "1e999999999999999999",
            "1e-999999999999999999",
            "0x1p999999999999",
            "0x1p-999999999999",
            "-1e4934",
        ] {
            assert!(parse(text.as_bytes()).is_none(), "{text}");
        }
        assert_eq!(human("0.0e-999999999999").as_deref(), Some("0"));
        assert_eq!(human("-0x0p999999999999").as_deref(), Some("0"));
    }
}
