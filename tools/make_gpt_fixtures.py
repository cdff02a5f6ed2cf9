"""make_gpt_fixtures.py: regenerate tests/fixtures/gpt_small from the independent reference.

    /usr/bin/python3 tools/make_gpt_fixtures.py [--out tests/fixtures/gpt_small]

Deterministic: every random draw comes from numpy Generators with fixed
seeds, and the reference computes in float64, so running it again rewrites
byte-identical files (the README lists their SHA-256 to make that checkable).

The model is GPT-2 at a small size (vocab 256, ctx 64, d 64, 4 heads, 2
layers). Weights follow GPT-2's initialisation (normal 0.02; the residual
projections attn.c_proj and mlp.c_proj 0.02/sqrt(2*layers)), except that
biases and LayerNorm parameters are random too (bias ~ N(0, 0.02), LayerNorm
weight ~ 1 + N(0, 0.1), LayerNorm bias ~ N(0, 0.02)), so a kernel that drops
a bias or swaps gain and shift fails the test instead of passing by zeros.

Two cases share the weights:
    tokens.npy / targets.npy / logits.npy / loss.npy                 batch 2, seq 16
    tokens_full.npy / targets_full.npy / logits_full.npy / loss_full.npy   batch 1, seq 64 = ctx
tokens and targets are int32, drawn independently and uniformly in [0, 256);
logits are the float64 reference rounded to float32; loss is float32 [1].
"""

import argparse
import hashlib
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402

CFG = ref.Config(vocab=256, ctx=64, d=64, heads=4, layers=2)
WEIGHT_SEED = 20261121
CASES = [
    # (suffix, batch, seq, seed)
    ("", 2, 16, 1),
    ("_full", 1, 64, 2),
]


def make_weights(cfg, seed):
    """GPT-2-like initialisation with non-trivial biases and norms. Each
    parameter draws from its own stream (seed, index in sorted name order),
    so its values do not depend on how many other parameters there are."""
    shapes = ref.param_shapes(cfg)
    resid_std = 0.02 / math.sqrt(2 * cfg.layers)
    w = {}
    for i, name in enumerate(sorted(shapes)):
        g = np.random.default_rng([seed, i])
        shape = shapes[name]
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            v = 1.0 + 0.1 * g.standard_normal(shape)
        elif name.endswith(".bias"):
            v = 0.02 * g.standard_normal(shape)
        elif name.endswith(("attn.c_proj.weight", "mlp.c_proj.weight")):
            v = resid_std * g.standard_normal(shape)
        else:  # wte, wpe, c_attn, c_fc
            v = 0.02 * g.standard_normal(shape)
        w[name] = v.astype(np.float32)
    return w


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


README = """# gpt_small: numerics fixtures for GPT-2

Made by the independent PyTorch reference `tools/gpt_reference.py` (which
does not share code with mswc and does not use `transformers`). Regenerate
with

    /usr/bin/python3 tools/make_gpt_fixtures.py

from the repository root; the generator is deterministic and rewrites
byte-identical files (compare the SHA-256 below).

- Model: `models/gpt.msw` = GPT-2 with {cfg_text}
  (`-D vocab={vocab} -D ctx={ctx} -D d={d} -D heads={heads} -D layers={layers}`).
- Weights `weights.safetensors`: Hugging Face GPT-2 names and layouts, F32.
  GPT-2 init (normal 0.02, residual projections 0.02/sqrt(2*layers)), with
  random biases N(0, 0.02), LayerNorm weights 1 + N(0, 0.1) and LayerNorm
  biases N(0, 0.02) so every parameter matters. Seed {wseed}.
- Reference computed in float64 from the float32 weights; `logits*.npy` are
  rounded to float32, `loss*.npy` is float32 of shape [1] (mean cross-entropy
  over all positions, no shift: `targets` is already aligned with `logits`).
- Made with torch {torch_version}, numpy {numpy_version}.

| case | tokens / targets (int32) | logits (float32) | loss (float64 reference) |
|---|---|---|---|
{cases}

The C test `tests/e2e/test_gpt_fixture.c` compiles `models/gpt.msw` at this
size, loads these weights and checks logits (normwise relative error < 1e-4)
and loss (relative error < 1e-4). See `docs/testing.md`.

SHA-256:

```
{hashes}
```
"""


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "gpt_small"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = os.path.normpath(a.out)
    os.makedirs(out, exist_ok=True)

    wn = make_weights(CFG, WEIGHT_SEED)
    wpath = os.path.join(out, "weights.safetensors")
    safetensors_io.save(wpath, wn, {"format": "pt"})
    # Read back through the strict reader, so the reference runs on exactly
    # the bytes the C test will load.
    w, cfg = ref.load_weights(wpath, heads=CFG.heads)
    assert repr(cfg) == repr(CFG), (cfg, CFG)

    files = ["weights.safetensors"]
    rows = []
    for suffix, batch, seq, seed in CASES:
        g = np.random.default_rng(seed)
        tokens = g.integers(0, CFG.vocab, size=(batch, seq)).astype(np.int32)
        targets = g.integers(0, CFG.vocab, size=(batch, seq)).astype(np.int32)
        logits = ref.forward(w, cfg, tokens)
        loss = ref.loss(logits, targets)
        arrays = {
            "tokens": tokens,
            "targets": targets,
            "logits": logits.numpy().astype(np.float32),
            "loss": np.array([float(loss)], dtype=np.float32),
        }
        for k, v in arrays.items():
            np.save(os.path.join(out, k + suffix + ".npy"), v)
            files.append(k + suffix + ".npy")
        rows.append("| `*%s.npy` | [%d, %d] | [%d, %d, %d] | %.12f |"
                    % (suffix, batch, seq, batch, seq, CFG.vocab, float(loss)))
        print("case%s: batch %d seq %d loss %.9f |logits| max %.4f"
              % (suffix or " (default)", batch, seq, float(loss), float(logits.abs().max())))

    hashes = "\n".join("%s  %s" % (sha256(os.path.join(out, f)), f) for f in files)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(README.format(
            cfg_text="vocab %d, ctx %d, d %d, heads %d, layers %d"
                     % (CFG.vocab, CFG.ctx, CFG.d, CFG.heads, CFG.layers),
            vocab=CFG.vocab, ctx=CFG.ctx, d=CFG.d, heads=CFG.heads, layers=CFG.layers,
            wseed=WEIGHT_SEED, torch_version=torch.__version__, numpy_version=np.__version__,
            cases="\n".join(rows), hashes=hashes))
    total = sum(os.path.getsize(os.path.join(out, f)) for f in files + ["README.md"])
    print("wrote %d files, %d bytes, to %s" % (len(files) + 1, total, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
