"""llm.c token files (the format `lisa train --data` reads), for the Python peers.

Header: 256 int32 (magic 20240520, version 1 = uint16 ids / 2 = uint32 ids,
token count), then the ids. Bad files end the script with a message naming
the file, as the C reader does.
"""

import sys

LLMC_MAGIC = 20240520
LLMC_HEADER_INTS = 256


def load_llmc_tokens(path, vocab):
    """The file's token ids as an int64 numpy array, each below vocab."""
    import numpy as np
    header = np.fromfile(path, dtype=np.int32, count=LLMC_HEADER_INTS)
    if len(header) < LLMC_HEADER_INTS or header[0] != LLMC_MAGIC:
        sys.exit(f"{path}: not an llm.c token file (bad header magic)")
    dtypes = {1: np.uint16, 2: np.uint32}
    if header[1] not in dtypes:
        sys.exit(f"{path}: unknown llm.c token file version {header[1]}")
    count = int(header[2])
    tokens = np.fromfile(path, dtype=dtypes[header[1]], count=count,
                         offset=LLMC_HEADER_INTS * 4)
    if len(tokens) != count:
        sys.exit(f"{path}: header says {count} tokens, file has {len(tokens)}")
    if count and tokens.max() >= vocab:
        sys.exit(f"{path}: token id {tokens.max()} outside vocab {vocab}")
    return tokens.astype(np.int64)
