//! A `DPoP` header value checked as RFC 9449 section 4.3 has it. See `mcp_oauth2::fuzzing::dpop`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth2::fuzzing::dpop(data));
