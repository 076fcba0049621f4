//! Which algorithms and digests we validate: RFC 8624 §3.1 and §3.3, validation column.
//!
//! | number | algorithm | RFC 8624 (validate) | here |
//! |---|---|---|---|
//! | 1 | RSAMD5 | MUST NOT | unsupported → insecure |
//! | 3 | DSA | MUST NOT | unsupported → insecure |
//! | 5, 7 | RSASHA1, RSASHA1-NSEC3-SHA1 | MUST | validated |
//! | 8, 10 | RSASHA256, RSASHA512 | MUST | validated (1024 to 8192-bit moduli, ring's range) |
//! | 13 | ECDSAP256SHA256 | MUST | validated |
//! | 14 | ECDSAP384SHA384 | RECOMMENDED | validated |
//! | 15 | ED25519 | RECOMMENDED | validated |
//! | 16 | ED448 | RECOMMENDED | unsupported → insecure: neither hickory backend has it |
//! | other | unknown | - | unsupported → insecure |
//!
//! DS digests (§3.3): 1 SHA-1, 2 SHA-256, 4 SHA-384 are computed; 3 (GOST) and unknown
//! ones are unsupported, so a zone whose DS records all use them is insecure.

use hickory_proto::dnssec::{Algorithm, DigestType};

/// Whether we verify signatures of this algorithm (the table above).
pub fn algorithm_supported(alg: Algorithm) -> bool {
    // hickory's list under `dnssec-ring` is exactly RFC 8624's validate set minus Ed448.
    alg.is_supported()
}

/// Whether we compute DS digests of this type.
pub fn digest_supported(digest: DigestType) -> bool {
    digest_len(digest).is_some()
}

/// The length a digest of this type has (RFC 4034 §5.1.4, RFC 4509, RFC 6605): a DS whose
/// digest is another length never matches a key.
pub fn digest_len(digest: DigestType) -> Option<usize> {
    match digest {
        DigestType::SHA1 => Some(20),
        DigestType::SHA256 => Some(32),
        DigestType::SHA384 => Some(48),
        _ => None,
    }
}

/// The mnemonic or number of an algorithm, as anchor files and `trace` show it.
pub fn algorithm_number(alg: Algorithm) -> u8 {
    u8::from(alg)
}

/// An algorithm from its RFC 4034 Appendix A.1 mnemonic (as Unbound and BIND accept in
/// anchor files, any case) or its number.
pub fn parse_algorithm(text: &str) -> Option<Algorithm> {
    let number = match text.to_ascii_uppercase().as_str() {
        "RSAMD5" => 1,
        "DH" => 2,
        "DSA" => 3,
        "RSASHA1" => 5,
        "DSA-NSEC3-SHA1" => 6,
        "RSASHA1-NSEC3-SHA1" | "NSEC3RSASHA1" => 7,
        "RSASHA256" => 8,
        "RSASHA512" => 10,
        "ECC-GOST" => 12,
        "ECDSAP256SHA256" => 13,
        "ECDSAP384SHA384" => 14,
        "ED25519" => 15,
        "ED448" => 16,
        "INDIRECT" => 252,
        "PRIVATEDNS" => 253,
        "PRIVATEOID" => 254,
        other => other.parse().ok()?,
    };
    Some(Algorithm::from_u8(number))
}

/// A digest type from its number or mnemonic (`SHA-1`, `SHA-256`, `SHA-384`).
pub fn parse_digest(text: &str) -> Option<DigestType> {
    let number = match text.to_ascii_uppercase().as_str() {
        "SHA-1" | "SHA1" => 1,
        "SHA-256" | "SHA256" => 2,
        "GOST" => 3,
        "SHA-384" | "SHA384" => 4,
        other => other.parse().ok()?,
    };
    Some(DigestType::from(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8624_validation_column() {
        for n in [5, 7, 8, 10, 13, 14, 15] {
            assert!(algorithm_supported(Algorithm::from_u8(n)), "{n}");
        }
        for n in [1, 3, 6, 12, 16, 17, 253] {
            assert!(!algorithm_supported(Algorithm::from_u8(n)), "{n}");
        }
        for n in [1, 2, 4] {
            assert!(digest_supported(DigestType::from(n)), "{n}");
        }
        for n in [0, 3, 5] {
            assert!(!digest_supported(DigestType::from(n)), "{n}");
        }
    }

    #[test]
    fn mnemonics_parse_in_any_case() {
        assert_eq!(parse_algorithm("rsasha256"), Some(Algorithm::RSASHA256));
        assert_eq!(
            parse_algorithm("ECDSAP256SHA256"),
            Some(Algorithm::ECDSAP256SHA256)
        );
        assert_eq!(parse_algorithm("16"), Some(Algorithm::Unknown(16)));
        assert_eq!(algorithm_number(parse_algorithm("ED448").unwrap()), 16);
        assert_eq!(parse_algorithm("RSA"), None);
        assert_eq!(parse_digest("SHA-256"), Some(DigestType::SHA256));
        assert_eq!(parse_digest("4"), Some(DigestType::SHA384));
    }
}
