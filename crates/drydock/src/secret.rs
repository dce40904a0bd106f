//! Generated credentials.

/// Whether reports may show secrets: `DRYDOCK_SHOW_SECRETS=1` (they are masked otherwise).
#[allow(dead_code)] // read by the services that have secrets; none may be compiled
pub(crate) fn shown() -> bool {
    std::env::var("DRYDOCK_SHOW_SECRETS").is_ok_and(|v| v == "1" || v == "true")
}

/// `value` with the password of a URL's user info masked (`scheme://user:<masked>@host/…`);
/// anything else as it is.
pub(crate) fn mask_userinfo(value: &str) -> String {
    let Some(scheme_end) = value.find("://").map(|i| i + 3) else {
        return value.to_owned();
    };
    let rest = &value[scheme_end..];
    let Some(at) = rest.find('@') else {
        return value.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:<masked>{}",
            &value[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => value.to_owned(),
    }
}

/// A fresh random password: 32 hex characters (122 bits from the OS generator, via UUID v4).
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding (22 characters).
///
/// The first character is always a letter: an id starting with `-` reads as an option to the
/// broker's scripts (`--cluster-id -Kx…`), and the broker exits.
#[cfg(feature = "kafka")]
pub(crate) fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = uuid::Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| {
            let index = ((value >> (i * 6)) & 63) as usize;
            // Letters are the first 52 of the alphabet.
            let index = if i == 0 { index % 52 } else { index };
            ALPHABET[index] as char
        })
        .collect()
}

/// A short random id for names (8 hex characters).
#[cfg(any(feature = "postgres", feature = "kafka", feature = "stub"))]
pub(crate) fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

#[cfg(test)]
mod masking {
    #[test]
    fn a_urls_password_is_masked_and_nothing_else() {
        let masked = super::mask_userinfo("postgres://drydock:s3cret@127.0.0.1:5432/db");
        assert_eq!(masked, "postgres://drydock:<masked>@127.0.0.1:5432/db");
        assert_eq!(
            super::mask_userinfo("redis://127.0.0.1:6379/3"),
            "redis://127.0.0.1:6379/3"
        );
        assert_eq!(super::mask_userinfo("prefix_"), "prefix_");
    }
}

#[cfg(all(test, feature = "kafka"))]
mod tests {
    #[test]
    fn cluster_ids_never_start_like_an_option() {
        for _ in 0..10_000 {
            let id = super::cluster_id();
            assert_eq!(id.len(), 22);
            assert!(id.starts_with(|c: char| c.is_ascii_alphabetic()), "{id}");
        }
    }
}
