#!/usr/bin/env python3
"""Turn text or instruction data into an llm.c token file (.bin) and, for
instruction data, a loss mask beside it (.bin.mask), for `lisa train --data`.

    python3 scripts/make-data.py input.txt [more.txt ...] -o out.bin
    python3 scripts/make-data.py in.txt -o out.bin --tokenizer path/to/model-folder
    python3 scripts/make-data.py tasks.jsonl -o out.bin --tokenizer DIR --format alpaca
    python3 scripts/make-data.py chats.jsonl -o out.bin --tokenizer DIR --format chat

Tokenizers:
  bytes (default)  every byte of the file is one token: ids 0..255, vocabulary
                   256. Needs only the Python standard library.
  gpt2             GPT-2's BPE through tiktoken (pip install tiktoken; its first
                   use fetches the BPE tables unless they are cached). Each
                   file starts with <|endoftext|> (50256), as in llm.c.
  DIR or FILE      a Hugging Face tokenizer: a folder holding tokenizer.json
                   (and tokenizer_config.json, for the EOS token and the chat
                   template), or a tokenizer.json itself; read offline by the
                   `tokenizers` library (pip install tokenizers).

Formats (a Hugging Face tokenizer only for alpaca and chat):
  text    each input file is one document
  alpaca  JSON lines {"instruction", "input" (optional), "output"}: the prompt
          is the user turn, the output the assistant's
  chat    JSON lines {"messages": [{"role", "content"}, ...]}
Instruction records are rendered with the chat template of
tokenizer_config.json where it has one (as transformers' apply_chat_template
renders it, through jinja2), else with --chat-template NAME (chatml, alpaca)
or FILE (a jinja2 template). Only the assistant's tokens count in the loss.

Documents are separated by the tokenizer's EOS (appended where a document
does not already end with it; it counts in the loss: the model learns to
stop), and the token after an EOS never counts. With a Hugging Face
tokenizer the mask is written beside the tokens: out.bin.mask.

Formats on disk (docs/data.md, runtime/io/data.h): the token file is 256
little-endian int32 (magic 20240520, version, token count), then the ids:
version 1 stores uint16, version 2 uint32 (only when an id is >= 65536). The
mask is 256 int32 (magic 20240801, version 1, token count), then one uint8 per
token: 1 where predicting that token counts in the loss. Files are written to
a temporary file and renamed, so an interrupted run never leaves half a file.
"""
import argparse
import array
import json
import os
import struct
import sys
import tempfile

MAGIC = 20240520
MASK_MAGIC = 20240801
GPT2_EOT = 50256

# Built-in chat templates, for tokenizers whose config has none.
TEMPLATES = {
    "chatml": ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
               "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    # Stanford Alpaca's prompt, one turn: user, then assistant
    "alpaca": ("{% for message in messages %}{% if message['role'] == 'system' %}"
               "{{ message['content'] + '\n\n' }}"
               "{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] "
               "+ '\n\n' }}{% else %}{{ '### Response:\n' + message['content'] }}{% endif %}"
               "{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"),
}


def fail(msg):
    sys.exit(f"make-data.py: {msg}")


def tokenize_bytes(paths):
    ids = array.array("I")
    for path in paths:
        with open(path, "rb") as f:
            ids.extend(f.read())
    return ids, None, 256


def tokenize_gpt2(paths):
    try:
        import tiktoken
    except ImportError:
        fail("--tokenizer gpt2 needs tiktoken (pip install tiktoken); --tokenizer bytes needs nothing")
    try:
        enc = tiktoken.get_encoding("gpt2")
    except Exception as e:  # no network and no cached BPE tables
        fail(f"cannot load tiktoken's gpt2 encoding: {e}")
    ids = array.array("I")
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        ids.append(GPT2_EOT)
        ids.extend(enc.encode_ordinary(text))
    return ids, None, enc.n_vocab


# ---- Hugging Face tokenizers -------------------------------------------------

def token_text(value):
    """tokenizer_config.json writes a token as a string or {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


class HFTokenizer:
    def __init__(self, where):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            fail("a Hugging Face tokenizer needs the tokenizers library (pip install tokenizers)")
        path = os.path.join(where, "tokenizer.json") if os.path.isdir(where) else where
        if not os.path.isfile(path):
            fail(f"{path}: no such file (--tokenizer takes a folder holding tokenizer.json, "
                 "or the file)")
        try:
            self.tok = Tokenizer.from_file(path)
        except Exception as e:
            fail(f"{path}: not a tokenizer.json the tokenizers library reads: {e}")
        self.path = path
        config_path = os.path.join(os.path.dirname(path), "tokenizer_config.json")
        self.config = {}
        if os.path.isfile(config_path):
            try:
                with open(config_path, encoding="utf-8") as f:
                    self.config = json.load(f)
            except ValueError as e:
                fail(f"{config_path}: {e}")
        self.eos = self.find_eos()
        self.bos = token_text(self.config.get("bos_token"))

    def find_eos(self):
        eos = token_text(self.config.get("eos_token"))
        candidates = [eos] if eos else ["<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"]
        for c in candidates:
            if c and self.tok.token_to_id(c) is not None:
                return c
        fail(f"{self.path}: no EOS token (tokenizer_config.json's eos_token, or one of "
             f"{', '.join(candidates)})")

    @property
    def eos_id(self):
        return self.tok.token_to_id(self.eos)

    def render(self, template, messages, add_generation_prompt=False):
        """As transformers' apply_chat_template renders: jinja2, sandboxed,
        trim_blocks and lstrip_blocks, raise_exception available."""
        try:
            import jinja2
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            fail("chat templates need jinja2 (pip install jinja2)")

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
        return env.from_string(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=self.bos or "", eos_token=self.eos)

    def encode_spans(self, text, spans):
        """ids of text (no special tokens added: the template has them) and a
        mask: 1 for tokens starting inside one of the character spans."""
        enc = self.tok.encode(text, add_special_tokens=False)
        mask = [int(any(a <= start < b for a, b in spans)) for start, _ in enc.offsets]
        return enc.ids, mask


def chat_template(tok, choice):
    if choice in TEMPLATES:
        return TEMPLATES[choice]
    if choice:
        try:
            with open(choice, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            fail(f"--chat-template {choice}: not a built-in ({', '.join(TEMPLATES)}) and "
                 f"cannot be read: {e.strerror}")
    template = tok.config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if not template:
        fail(f"{tok.path}: tokenizer_config.json has no chat_template; give --chat-template "
             f"NAME ({', '.join(TEMPLATES)}) or FILE")
    return template


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except ValueError as e:
                fail(f"{path}:{n}: not JSON: {e}")


def alpaca_messages(path, n, rec):
    for key in ("instruction", "output"):
        if not isinstance(rec.get(key), str):
            fail(f"{path}:{n}: an alpaca record needs a string \"{key}\"")
    prompt = rec["instruction"]
    if rec.get("input"):
        prompt += "\n\n" + rec["input"]
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": rec["output"]}]


def chat_messages(path, n, rec):
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        fail(f"{path}:{n}: a chat record needs a non-empty \"messages\" list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or \
                not isinstance(m.get("content"), str):
            fail(f"{path}:{n}: messages[{i}] needs string \"role\" and \"content\"")
    if not any(m["role"] == "assistant" for m in msgs):
        fail(f"{path}:{n}: no assistant message: nothing would count in the loss")
    return msgs


def conversation(tok, template, msgs, path, n):
    """The rendered text and the character spans of the assistant's turns:
    the text each assistant message adds after the prompt before it."""
    spans = []
    try:
        for k, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            prompt = tok.render(template, msgs[:k], add_generation_prompt=True)
            upto = tok.render(template, msgs[:k + 1])
            if not upto.startswith(prompt):
                fail(f"{path}:{n}: the template renders message {k} in a way the prompt "
                     "before it is not a prefix of; cannot tell the response apart")
            spans.append((len(prompt), len(upto)))
        text = tok.render(template, msgs)
    except Exception as e:  # a template error names the record
        if isinstance(e, SystemExit):
            raise
        fail(f"{path}:{n}: chat template: {e}")
    return text, spans


def tokenize_hf(paths, tok, fmt, template_choice):
    ids, mask = array.array("I"), bytearray()
    eos = tok.eos_id

    def add(doc_ids, doc_mask):
        if not doc_ids or doc_ids[-1] != eos:
            doc_ids, doc_mask = doc_ids + [eos], doc_mask + [1]
        if ids and ids[-1] == eos:  # the token after an EOS never counts
            doc_mask = [0] + doc_mask[1:]
        ids.extend(doc_ids)
        mask.extend(doc_mask)

    if fmt == "text":
        for path in paths:
            with open(path, encoding="utf-8") as f:
                doc = tok.tok.encode(f.read()).ids
            add(doc, [1] * len(doc))
    else:
        template = chat_template(tok, template_choice)
        for path in paths:
            for n, rec in read_jsonl(path):
                msgs = (alpaca_messages if fmt == "alpaca" else chat_messages)(path, n, rec)
                text, spans = conversation(tok, template, msgs, path, n)
                doc, doc_mask = tok.encode_spans(text, spans)
                add(doc, doc_mask)
    if mask:
        mask[0] = 0  # the first token is never a target
    return ids, mask, tok.tok.get_vocab_size()


# ---- writing ---------------------------------------------------------------------

def encode_ids(ids):
    """(version, little-endian id bytes) for the smallest id width."""
    version, code = (1, "H") if max(ids, default=0) < 65536 else (2, "I")
    packed = array.array(code, ids)
    if packed.itemsize != (2 if version == 1 else 4):
        fail("unexpected C integer sizes on this platform")
    if sys.byteorder != "little":
        packed.byteswap()
    return version, packed.tobytes()


def write_atomic(path, header, body):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
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


def write_bin(path, ids):
    if len(ids) > 2**31 - 1:
        fail(f"{len(ids)} tokens do not fit the int32 count")
    version, body = encode_ids(ids)
    write_atomic(path, struct.pack("<256i", MAGIC, version, len(ids), *([0] * 253)), body)
    return version


def write_mask(path, mask):
    write_atomic(path, struct.pack("<256i", MASK_MAGIC, 1, len(mask), *([0] * 253)), bytes(mask))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="text files (concatenated) or JSON lines")
    ap.add_argument("-o", "--output", required=True, help="the .bin to write")
    ap.add_argument("--tokenizer", default="bytes",
                    help="bytes, gpt2, or a Hugging Face tokenizer folder or tokenizer.json")
    ap.add_argument("--format", choices=["text", "alpaca", "chat"], default="text")
    ap.add_argument("--chat-template", metavar="NAME_OR_FILE",
                    help=f"when tokenizer_config.json has none: {', '.join(TEMPLATES)}, or a file")
    args = ap.parse_args()
    builtin = args.tokenizer in ("bytes", "gpt2")
    if builtin and args.format != "text":
        fail(f"--format {args.format} needs a Hugging Face tokenizer (--tokenizer DIR)")
    try:
        if builtin:
            tokenize = tokenize_bytes if args.tokenizer == "bytes" else tokenize_gpt2
            ids, mask, vocab = tokenize(args.inputs)
        else:
            ids, mask, vocab = tokenize_hf(args.inputs, HFTokenizer(args.tokenizer), args.format,
                                           args.chat_template)
    except OSError as e:
        fail(f"{e.filename}: {e.strerror}")
    except UnicodeDecodeError as e:
        fail(f"an input is not UTF-8 text: {e}")
    if mask is not None and not any(mask):
        fail("no token counts in the loss (empty input?)")
    version = write_bin(args.output, ids)
    counted = ""
    if mask is not None:
        write_mask(args.output + ".mask", mask)
        counted = f", {sum(mask)} counted in the loss ({args.output}.mask)"
    print(f"{args.output}: {len(ids)} tokens, version {version}, tokenizer {args.tokenizer} "
          f"(vocabulary {vocab}){counted}")


if __name__ == "__main__":
    main()
