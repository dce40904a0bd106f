//! Generated credentials.

/// A fresh random password: 32 hex characters (122 bits from the OS generator, via UUID v4).
pub(crate) fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding (22 characters).
pub(crate) fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = uuid::Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((value >> (i * 6)) & 63) as usize] as char)
        .collect()
}

/// A short random id for names (8 hex characters).
pub(crate) fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}
