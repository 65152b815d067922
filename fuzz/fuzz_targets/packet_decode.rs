//! libFuzzer entry for `utp_proto_fuzz::packet_decode` (the property is documented there)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| utp_proto_fuzz::packet_decode::run(data));
