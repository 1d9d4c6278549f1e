//! Certificate serial numbers in one canonical form.
//!
//! Tools print a serial in many spellings: `openssl x509 -serial` as
//! upper-case hex (`3A1F…`), `openssl x509 -text` with colons (`3a:1f:…`),
//! DER keeps a leading `00` octet when the top bit is set, some tools drop a
//! leading zero digit. Revocation must hold whichever spelling an operator
//! pastes, so every entry point (admin API and CLI, TLS verifier, live-session
//! lookup, HTTPS, store) turns a serial into a [`Serial`] first and compares
//! only those: lower-case hex, whole octets, no leading zero octets.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 5280 §4.1.2.2: a serial is at most 20 octets.
const MAX_OCTETS: usize = 20;

/// A certificate serial in canonical form (lower-case hex of the integer's
/// octets, no leading zero octets; zero is `00`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

/// Why a text is not a serial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid certificate serial {text:?}: {why}")]
pub struct SerialError {
    /// The text as given.
    pub text: String,
    /// The rule it breaks.
    pub why: &'static str,
}

impl Serial {
    /// Parses a serial as people and tools write it: hex in either case,
    /// optionally `0x`-prefixed, octets optionally separated by `:` (or
    /// spaces), leading zeros allowed.
    pub fn parse(text: &str) -> Result<Serial, SerialError> {
        let err = |why| SerialError {
            text: text.to_owned(),
            why,
        };
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        let separated = body.contains([':', ' ']);
        let mut digits = String::with_capacity(body.len() + 1);
        if separated {
            // Each group is one octet ("3a:1f" or "3a 1f"); a single-digit group is padded.
            for group in body.split([':', ' ']) {
                if group.is_empty() || group.len() > 2 {
                    return Err(err("octets separated by ':' must be one or two hex digits"));
                }
                if group.len() == 1 {
                    digits.push('0');
                }
                digits.push_str(group);
            }
        } else {
            if body.len() % 2 == 1 {
                digits.push('0');
            }
            digits.push_str(body);
        }
        if digits.is_empty() {
            return Err(err("it is empty"));
        }
        let octets = hex::decode(&digits).map_err(|_| err("use hexadecimal digits 0-9 a-f"))?;
        Serial::from_octets(&octets).map_err(|_| err("longer than 20 octets (RFC 5280)"))
    }

    /// A serial from the content octets of its DER INTEGER (as x509 parsers'
    /// `raw_serial` give them, sign octet included).
    pub fn from_octets(octets: &[u8]) -> Result<Serial, SerialError> {
        let first = octets.iter().position(|&b| b != 0);
        let significant = first.map_or(&[0u8][..], |i| &octets[i..]);
        if significant.len() > MAX_OCTETS {
            return Err(SerialError {
                text: hex::encode(octets),
                why: "longer than 20 octets (RFC 5280)",
            });
        }
        Ok(Serial(hex::encode(significant)))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Serial {
    type Err = SerialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Serial::parse(s)
    }
}

impl TryFrom<String> for Serial {
    type Error = SerialError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Serial::parse(&s)
    }
}

impl From<Serial> for String {
    fn from(s: Serial) -> String {
        s.0
    }
}

impl PartialEq<str> for Serial {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Serial {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::ops::Deref for Serial {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_serial_is_the_same_serial() {
        let canonical = Serial::parse("3a1f0b").unwrap();
        for spelling in [
            "3a1f0b",
            "3A1F0B",
            "0x3a1f0b",
            "0X3A1F0B",
            "003a1f0b",
            "00003A1F0B",
            "3a:1f:0b",
            "3A:1F:0B",
            "00:3a:1f:0b",
            " 3a1f0b\n",
            "3a 1f 0b",
        ] {
            assert_eq!(Serial::parse(spelling).unwrap(), canonical, "{spelling:?}");
        }
        assert_eq!(canonical.as_str(), "3a1f0b");
    }

    #[test]
    fn odd_digit_counts_and_single_digit_octets_are_padded() {
        assert_eq!(Serial::parse("a1f0b").unwrap().as_str(), "0a1f0b");
        assert_eq!(Serial::parse("a:1f:b").unwrap().as_str(), "0a1f0b");
        assert_eq!(Serial::parse("0").unwrap().as_str(), "00");
        assert_eq!(Serial::parse("00:00").unwrap().as_str(), "00");
    }

    #[test]
    fn der_sign_octet_is_not_part_of_the_serial() {
        // A serial whose top bit is set carries a 00 sign octet in DER.
        let der = Serial::from_octets(&[0x00, 0x85, 0x01]).unwrap();
        assert_eq!(der, Serial::parse("8501").unwrap());
        assert_eq!(der, Serial::parse("85:01").unwrap());
    }

    #[test]
    fn non_serials_are_refused_with_the_reason() {
        for bad in ["", "0x", "xyz", "3a::1f", "3a1:f0b", "3a1f0g", "12-34"] {
            let e = Serial::parse(bad).unwrap_err();
            assert_eq!(e.text, bad);
        }
        let long = "01".repeat(21);
        assert!(Serial::parse(&long).unwrap_err().why.contains("20 octets"));
        assert!(Serial::parse(&format!("00{}", "01".repeat(20))).is_ok());
    }

    #[test]
    fn serde_reads_any_spelling_and_writes_the_canonical_one() {
        let s: Serial = serde_json::from_str("\"00:AB\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ab\"");
        assert!(serde_json::from_str::<Serial>("\"zz\"").is_err());
    }
}
