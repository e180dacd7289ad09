//! Stack files (`stacks/<id>/stack.yaml`): `hafen_core::catalogue::load::parse_stack`, the
//! function the catalogue and the property test `load::tests::fuzz` call. Any text must end in
//! a definition or in a non-empty list of problems, never in a panic.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(src) = std::str::from_utf8(data) else { return };
        if let Err(issues) = hafen_core::catalogue::load::parse_stack("fuzz/stack.yaml", src, None) {
            assert!(!issues.is_empty(), "parse_stack failed with no issue");
        }
        // With the directory's name as the catalogue passes it.
        let _ = hafen_core::catalogue::load::parse_stack("fuzz/stack.yaml", src, Some("fuzz"));
    });
}
