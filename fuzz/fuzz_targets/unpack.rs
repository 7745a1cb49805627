//! Layer tar unpack: any bytes, in every whiteout mode, must leave
//! everything beside the destination unchanged and stay within the limits
//! (`rbuild_cache::testing::unpack_stays_contained`); a panic is a finding.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rbuild_cache::testing::unpack_stays_contained(data);
});
