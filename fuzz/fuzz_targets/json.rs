//! The strict JSON object parser, against serde_json. See `mcp_oauth2::fuzzing::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth2::fuzzing::json(data));
