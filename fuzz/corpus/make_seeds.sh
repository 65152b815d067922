#!/bin/sh
# Regenerate the hand-written seeds of corpus/packet_decode/ (the same bytes as the known-answer
# tests in crates/utp-proto/src/packet/tests.rs). Run from anywhere: sh fuzz/corpus/make_seeds.sh
set -eu
cd "$(dirname "$0")/packet_decode"
# SYN, v1, no extension, conn_id 0x1234, ts 1_000_000, diff 0, wnd 1 MiB, seq 0xa1b2, ack 0
printf '\101\000\022\064\000\017\102\100\000\000\000\000\000\020\000\000\241\262\000\000' > syn.bin
# STATE, v1, SACK first, conn_id 0x1235, ts 0xdeadbeef, diff 10000, wnd 64000, seq 1, ack 65534,
# then the SACK: next none, len 4, bits 0 and 1
printf '\041\001\022\065\336\255\276\357\000\000\047\020\000\000\372\000\000\001\377\376\000\004\003\000\000\000' > state_sack.bin
# DATA, v1, no extension, conn_id 0x1235, ts 9, diff 8, wnd 4096, seq 2, ack 7, payload "hello, uTP"
printf '\001\000\022\065\000\000\000\011\000\000\000\010\000\000\020\000\000\002\000\007hello, uTP' > data.bin
# DATA with an unknown extension 77 (3 bytes) before an 8-byte SACK, then payload "xy"
printf '\001\115\022\065\000\000\000\011\000\000\000\010\000\000\020\000\000\002\000\007\001\003abc\000\010\377\000\000\000\000\000\000\200xy' > unknown_ext_sack.bin
# FIN and RESET, header only
printf '\021\000\022\065\000\000\000\011\000\000\000\010\000\000\020\000\000\003\000\007' > fin.bin
printf '\061\000\022\064\000\000\000\011\000\000\000\000\000\000\000\000\000\003\241\262' > reset.bin
