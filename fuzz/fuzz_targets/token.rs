//! A compact token validated against the fixed key set under two policies. See `mcp_oauth2::fuzzing::token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth2::fuzzing::token(data));
