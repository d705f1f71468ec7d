//! An `Authorization` header value read as RFC 6750 has it. See `mcp_oauth2::fuzzing::authorization`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth2::fuzzing::authorization(data));
