-- tuning.lua: the tunable parameters of the kernels the generator launches,
-- their search space and their defaults. Keyed by the template's kernel
-- name (the generated element-wise kernel is "elementwise"); each parameter
-- is {default = x, space = {...}}, mirroring the `// tunables:` comment of
-- the template (docs/codegen.md, "Tuning"). Embedded into the binary; a file
-- given with `lisa gen --tune FILE` overrides entries of this one.
return {
  -- codegen/gen/gen_elementwise.c: grid-stride, any block size works
  elementwise = {
    THREADS = {default = 256, space = {64, 128, 256, 512, 1024}},
  },
  -- templates/elementwise.cuh
  bias_grad = {
    THREADS = {default = 128, space = {64, 128, 256}},
  },
  -- templates/cross_entropy.cuh
  cross_entropy_fused = {
    THREADS = {default = 1024, space = {256, 512, 1024}},
  },
  cross_entropy_mean = {
    THREADS = {default = 256, space = {128, 256, 512, 1024}},
  },
  -- templates/attention_decode.cuh (lisa sample's paths)
  kv_cache_append = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  attention_decode = {
    THREADS = {default = 128, space = {64, 128, 256}},
  },
  -- templates/attention.cuh: BQ (BKV) rows per block; BQ % (THREADS / 8) == 0
  attention_forward = {
    BQ = {default = 32, space = {16, 32, 64, 128}},
    THREADS = {default = 128, space = {64, 128, 256}},
  },
  -- templates/attention_mma.cuh: USE = 0 keeps attention.cuh's SIMT kernel
  attention_forward_mma = {
    USE = {default = 1, space = {0, 1}},
    WARPS = {default = 4, space = {2, 4, 8}},
    BK = {default = 64, space = {32, 64}},
  },
  attention_backward_dq_mma = {
    USE = {default = 1, space = {0, 1}},
    WARPS = {default = 4, space = {2, 4, 8}},
    BK = {default = 64, space = {32, 64}},
  },
  attention_backward_dkdv_mma = {
    USE = {default = 1, space = {0, 1}},
    WARPS = {default = 4, space = {2, 4, 8}},
    BQ = {default = 64, space = {16, 32, 64}},
  },
  attention_backward_dq = {
    BQ = {default = 32, space = {16, 32, 64, 128}},
    THREADS = {default = 128, space = {64, 128, 256}},
  },
  attention_backward_dkdv = {
    BKV = {default = 32, space = {16, 32, 64, 128}},
    THREADS = {default = 128, space = {64, 128, 256}},
  },
  -- templates/norm.cuh
  norm_backward_w_finish = {
    THREADS = {default = 256, space = {64, 128, 256, 512}},
  },
  -- templates/embedding.cuh
  embedding_forward = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  pos_embedding_forward = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  embedding_pos_forward = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  embedding_backward = {
    THREADS = {default = 256, space = {128, 256, 512, 1024}},
  },
  pos_embedding_backward = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  -- templates/adamw.cuh: the optimizer path (codegen/gen/gen_optim.c)
  global_norm = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  adamw_multi = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  adamw_multi_bf16 = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
  -- templates/copy.cuh: the optimizer's widening copy
  copy2d = {
    THREADS = {default = 256, space = {128, 256, 512}},
  },
}
