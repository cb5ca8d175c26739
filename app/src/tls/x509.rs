//! The few fields of an X.509 certificate the gateway reports (validity, subject, serial), read
//! from its DER encoding. rustls validates certificates; this only describes the one it serves,
//! so a malformed encoding is an error, never a panic.

use std::fmt;

/// What the logs and metrics say about a served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// `notBefore`, seconds since the Unix epoch.
    pub not_before: i64,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// The subject's common name, or the whole subject's length when it has none.
    pub subject: String,
    /// The serial number in hex.
    pub serial: String,
}

/// The certificate's encoding is not one this reader understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(&'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed certificate: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;
/// 2.5.4.3, `commonName`.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element: its tag and content; `rest` is what follows it.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
}

fn element(input: &[u8]) -> Result<(Element<'_>, &[u8]), Malformed> {
    let (&tag, input) = input.split_first().ok_or(Malformed("truncated tag"))?;
    let (&first, input) = input.split_first().ok_or(Malformed("truncated length"))?;
    let (len, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return Err(Malformed("bad length"));
        }
        let (bytes, input) = input.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, input)
    };
    if input.len() < len {
        return Err(Malformed("truncated content"));
    }
    let (content, rest) = input.split_at(len);
    Ok((Element { tag, content }, rest))
}

fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(Element<'a>, &'a [u8]), Malformed> {
    let (e, rest) = element(input)?;
    if e.tag == tag {
        Ok((e, rest))
    } else {
        Err(Malformed(what))
    }
}

/// Reads the validity, subject and serial of a DER certificate.
pub fn describe(der: &[u8]) -> Result<Described, Malformed> {
    let (certificate, _) = expect(der, SEQUENCE, "not a SEQUENCE")?;
    let (tbs, _) = expect(certificate.content, SEQUENCE, "no TBSCertificate")?;
    let mut fields = tbs.content;
    let (first, rest) = element(fields)?;
    if first.tag == VERSION {
        fields = rest;
    }
    let (serial, fields) = expect(fields, INTEGER, "no serial number")?;
    let (_signature, fields) = expect(fields, SEQUENCE, "no signature algorithm")?;
    let (_issuer, fields) = expect(fields, SEQUENCE, "no issuer")?;
    let (validity, fields) = expect(fields, SEQUENCE, "no validity")?;
    let (subject, _) = expect(fields, SEQUENCE, "no subject")?;
    let (not_before, rest) = element(validity.content)?;
    let (not_after, _) = element(rest)?;
    Ok(Described {
        not_before: time(&not_before)?,
        not_after: time(&not_after)?,
        subject: common_name(subject.content)?
            .unwrap_or_else(|| format!("(no common name; {} bytes)", subject.content.len())),
        serial: serial.content.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// The value of the first `CN` attribute of a Name's RDN sequence.
fn common_name(mut rdns: &[u8]) -> Result<Option<String>, Malformed> {
    while !rdns.is_empty() {
        let (rdn, rest) = expect(rdns, SET, "bad name")?;
        rdns = rest;
        let mut attributes = rdn.content;
        while !attributes.is_empty() {
            let (attribute, rest) = expect(attributes, SEQUENCE, "bad name attribute")?;
            attributes = rest;
            let (oid, value) = expect(attribute.content, OID, "bad attribute type")?;
            if oid.content == COMMON_NAME {
                let (value, _) = element(value)?;
                return Ok(Some(String::from_utf8_lossy(value.content).into_owned()));
            }
        }
    }
    Ok(None)
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time(e: &Element<'_>) -> Result<i64, Malformed> {
    let text = std::str::from_utf8(e.content).map_err(|_| Malformed("bad time"))?;
    let digits = text.strip_suffix('Z').ok_or(Malformed("time not in UTC"))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed("bad time"));
    }
    let (year, rest) = match (e.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = number(&digits[..2])?;
            // RFC 5280 4.1.2.5.1: 50..99 are 19YY, 00..49 are 20YY.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (number(&digits[..4])?, &digits[4..]),
        _ => return Err(Malformed("bad time")),
    };
    let month = number(&rest[0..2])?;
    let day = number(&rest[2..4])?;
    let hour = number(&rest[4..6])?;
    let minute = number(&rest[6..8])?;
    let second = number(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(Malformed("bad time"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn number(digits: &str) -> Result<i64, Malformed> {
    digits.parse().map_err(|_| Malformed("bad time"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_counted_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 1), 20_788);
    }

    #[test]
    fn both_time_encodings_are_read() {
        let utc = Element {
            tag: UTC_TIME,
            content: b"491231235959Z",
        };
        assert_eq!(time(&utc), Ok(2_524_607_999));
        let generalized = Element {
            tag: GENERALIZED_TIME,
            content: b"20500101000000Z",
        };
        assert_eq!(time(&generalized), Ok(2_524_608_000));
        let local = Element {
            tag: UTC_TIME,
            content: b"491231235959+0100",
        };
        assert!(time(&local).is_err());
    }

    #[test]
    fn any_bytes_give_an_error_not_a_panic() {
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 0x30) as u8).collect();
            let _ = describe(&bytes);
        }
        assert!(describe(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
