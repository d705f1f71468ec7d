//! A JWKS document parsed into a key set, whose keys then select and verify. See `mcp_oauth2::fuzzing::jwks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth2::fuzzing::jwks(data));
