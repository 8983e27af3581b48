#!/usr/bin/env python3
"""atheris target: the parsing core's message and mbox functions: header_end, parse_headers,
mbox_quote, mbox_unquote, mbox_scan, to_crlf, crlf_size.

Each function runs in the pure twin (instrumented: its coverage guides the fuzzer) and in
the compiled core when built; parse_contracts checks the documented exceptions, that the
twins agree and the result's contract.  The input is the bytes argument; the small integer
arguments come from its last byte (parse_contracts.check_message_input).

    python fuzz/fuzz_parse_message.py -max_total_time=60 fuzz/corpus/parse_message

(see fuzz/README.md: run_all.sh keeps what the fuzzer adds out of the repository's corpus).
"""

import sys
from pathlib import Path

# Fuzz this checkout's refmail (and import the shared modules beside this file).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["refmail"]):
    import parse_contracts

TestOneInput = parse_contracts.check_message_input

if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
