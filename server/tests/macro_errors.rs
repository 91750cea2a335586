//! `#[service]` turns a wrong signature into a compile error that says what is wrong: each case
//! in `tests/ui/` is a program that must fail to compile with the message beside it.

#[test]
fn wrong_signatures_are_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
