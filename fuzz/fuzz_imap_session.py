#!/usr/bin/env python3
"""atheris target: the IMAP session machine (refmail/imap/) on a real mail store.

The input is the client's byte stream, fed to a new session over a fresh copy of a small
mail store (users alice/bob, a few messages) in chunks chosen by the input's length, on a
service and from a peer chosen the same way (refmail_fuzz.atheris_target); every rule of
refmail_fuzz.drive is checked.  Seeds: RFC transcripts in the corpus directory.

    python fuzz/fuzz_imap_session.py -max_total_time=60 fuzz/corpus/imap_session

(see fuzz/README.md: run_all.sh keeps what the fuzzer adds out of the repository's corpus).
"""

import sys
from pathlib import Path

# Fuzz this checkout's refmail (and import the shared modules beside this file).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["refmail"]):
    import refmail_fuzz

TestOneInput = refmail_fuzz.atheris_target("imap")

if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
