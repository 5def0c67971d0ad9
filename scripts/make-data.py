#!/usr/bin/env python3
"""Turn text files into an llm.c token file (.bin) for `lisa train --data`.

    python3 scripts/make-data.py input.txt [more.txt ...] -o out.bin
    python3 scripts/make-data.py input.txt -o out.bin --tokenizer gpt2

Tokenizers:
  bytes (default)  every byte of the file is one token: ids 0..255, vocabulary
                   256. Needs only the Python standard library.
  gpt2             GPT-2's BPE through tiktoken (pip install tiktoken; its first
                   use fetches the BPE tables unless they are cached). Each
                   file starts with <|endoftext|> (50256), as in llm.c.

Format (runtime/io/data.h): 256 little-endian int32 (magic 20240520, version,
token count), then the ids: version 1 stores uint16, version 2 uint32 (used
only when an id is >= 65536). The output is written to a temporary file and
renamed, so an interrupted run never leaves a half-written .bin.
"""
import argparse
import array
import os
import struct
import sys
import tempfile

MAGIC = 20240520
GPT2_EOT = 50256


def tokenize_bytes(paths):
    ids = array.array("I")
    for path in paths:
        with open(path, "rb") as f:
            ids.extend(f.read())
    return ids, 256


def tokenize_gpt2(paths):
    try:
        import tiktoken
    except ImportError:
        sys.exit("make-data.py: --tokenizer gpt2 needs tiktoken "
                 "(pip install tiktoken); --tokenizer bytes needs nothing")
    try:
        enc = tiktoken.get_encoding("gpt2")
    except Exception as e:  # no network and no cached BPE tables
        sys.exit(f"make-data.py: cannot load tiktoken's gpt2 encoding: {e}")
    ids = array.array("I")
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        ids.append(GPT2_EOT)
        ids.extend(enc.encode_ordinary(text))
    return ids, enc.n_vocab


def encode_ids(ids):
    """(version, little-endian id bytes) for the smallest id width."""
    version, code = (1, "H") if max(ids, default=0) < 65536 else (2, "I")
    packed = array.array(code, ids)
    if packed.itemsize != (2 if version == 1 else 4):
        sys.exit("make-data.py: unexpected C integer sizes on this platform")
    if sys.byteorder != "little":
        packed.byteswap()
    return version, packed.tobytes()


def write_bin(path, ids):
    if len(ids) > 2**31 - 1:
        sys.exit(f"make-data.py: {len(ids)} tokens do not fit the int32 count")
    version, body = encode_ids(ids)
    header = struct.pack("<256i", MAGIC, version, len(ids), *([0] * 253))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return version


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="text files, concatenated")
    ap.add_argument("-o", "--output", required=True, help="the .bin to write")
    ap.add_argument("--tokenizer", choices=["bytes", "gpt2"], default="bytes")
    args = ap.parse_args()
    tokenize = tokenize_bytes if args.tokenizer == "bytes" else tokenize_gpt2
    try:
        ids, vocab = tokenize(args.inputs)
    except OSError as e:
        sys.exit(f"make-data.py: {e.filename}: {e.strerror}")
    version = write_bin(args.output, ids)
    print(f"{args.output}: {len(ids)} tokens, version {version}, "
          f"tokenizer {args.tokenizer} (vocabulary {vocab})")


if __name__ == "__main__":
    main()
