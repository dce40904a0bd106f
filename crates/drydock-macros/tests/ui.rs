//! The attribute's errors, pinned: each file under `tests/ui` must fail to compile with the
//! message beside it.

#[test]
fn misuses_are_explained() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
