//! Strict base64url decoding and encoding. See `mcp_oauth2::fuzzing::base64url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth2::fuzzing::base64url(data));
