//! The size of what every held call keeps.

/// Every held call is one `Box<Call>`: the allocator rounds it up to its next size class
/// (mimalloc: …, 1,024, 1,280, 1,536 bytes), so a field that takes `Call` past 1,280
/// bytes takes a 256-byte larger block for every call. Box what an established call does
/// not need instead. (Per-call RSS is ruled more by the ramp's freed transaction pages
/// than by this block: BENCHMARKS.md, memory.)
#[test]
fn a_call_fits_the_1280_byte_class() {
    let n = std::mem::size_of::<crate::call::state::Call>();
    assert!(n <= 1280, "Call is {n} bytes");
}
