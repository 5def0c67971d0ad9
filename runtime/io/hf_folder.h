/* hf_folder.h: the files of a Hugging Face model folder besides its
 * weights (config.json, the tokenizer's, generation_config.json), which a
 * saved model folder carries over from the folder the model came from, so
 * that transformers loads it as it loaded the original. */
#ifndef LT_HF_FOLDER_H
#define LT_HF_FOLDER_H

#include "err.h"

/* Copies each of those files that src holds into dst (which exists), each
 * through a temporary file and a rename; *copied (may be NULL) counts them.
 * src == dst copies nothing. A file that cannot be read or written is an
 * error naming it; dst's other files are left alone. */
int hf_copy_side_files(const char *src, const char *dst, int *copied, lt_error *err);

#endif
