//! Generated credentials.

/// A fresh random password: 32 hex characters (122 bits from the OS generator, via UUID v4).
pub(crate) fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
