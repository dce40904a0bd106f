//! Locking drydock's own mutexes.

/// Locks `mutex`, poisoned or not. drydock's mutexes guard plain values (lists of names,
/// handles, maps of numbers) that no half-done update leaves inconsistent, so a panic in
/// another holder is no reason to fail here too.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
