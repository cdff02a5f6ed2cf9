"""torch_train_reference.py: train the independent PyTorch GPT-2 as `mswc train` does.

    /usr/bin/python3 tools/torch_train_reference.py [--out tests/fixtures/gpt_train]

The yardstick for mswc's trainer (tests/e2e/test_train_fixture.c). It starts
from tests/fixtures/gpt_small/weights.safetensors (GPT-2, vocab 256, ctx 64,
d 64, 4 heads, 2 layers), reads the byte tokens of a small deterministic text,
and trains with nothing of mswc's but the written specification
(docs/training.md):

  data       tokens = the file's bytes; nval = floor(ntok * val_fraction) tokens
             at the end validate, the rest trains. Sequential order: row r of
             step s (0-based) is the window starting at ((s * batch + r) mod W) * seq,
             W = (ntrain - 1) // seq; tokens = window[0:seq], targets = window[1:seq+1].
  model      tools/gpt_reference.py (forward, mean cross-entropy).
  schedule   lr(s) = lr * (s + 1) / warmup                      for s < warmup
                   = lr * (0.1 + 0.9 * 0.5 * (1 + cos(pi * p)))  cosine, after warm-up,
                     p = min(1, (s - warmup) / max(1, steps - 1 - warmup))
                   = lr                                         constant, after warm-up
  clipping   torch.nn.utils.clip_grad_norm_(params, clip) (total L2 norm over every
             gradient, scaled by clip / (norm + 1e-6) when that is below 1); the norm
             before clipping is what grad_norms.npy holds.
  optimiser  torch.optim.AdamW (PyTorch's own; decoupled decay p *= 1 - lr * wd, then
             Adam with bias corrections 1 - beta^t) with two param groups: weight decay
             on rank-2 weights that are not embedding tables (every c_attn, c_proj and
             c_fc weight), none on wte, wpe, biases and LayerNorm parameters.

Precision: float64 by default. mswc trains in float32; a float64 reference
is the exact trajectory (to ~1e-15), so the difference the test measures is
mswc's own float32 rounding and nothing else, and the tolerances (loss 1e-5
relative, weights 1e-5) bound mswc alone. A float32 PyTorch run would add its
own rounding of the same size on the other side. `--compare-f32` runs both and
prints how far float32 PyTorch drifts from float64 over the same steps, which
is the scale of error to expect from any float32 implementation.

Writes into --out:
  text.txt                 the training text (generated, deterministic, ~3 KB)
  losses.npy               float32 [steps]: the loss of each step, before its update
  grad_norms.npy           float32 [steps]: the global gradient norm, before clipping
  lrs.npy                  float64 [steps]: the learning rate of each step
  grads_step1.safetensors  float32: every gradient of step 1 (before clipping)
  final.safetensors        float32: the weights after the last step
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORDS = (
    "the cell protein gene tumor growth factor receptor signal pathway kinase expression "
    "apoptosis mutation cancer patients cells levels activity response binding inhibitor "
    "increased decreased induced mediated associated regulation analysis results suggest "
    "that this study we of in and to with by for from was were is are as on at an a"
).split()


def make_text(nbytes=3000, seed=7):
    """Deterministic sentence-like text: words from a fixed list, numpy's PCG64."""
    g = np.random.default_rng(seed)
    out = []
    size = 0
    while size < nbytes:
        n = int(g.integers(6, 16))
        words = [WORDS[int(i)] for i in g.integers(0, len(WORDS), n)]
        s = " ".join(words).capitalize() + ".\n" if g.random() < 0.3 else " ".join(words).capitalize() + ". "
        out.append(s)
        size += len(s)
    return "".join(out)[:nbytes].encode("ascii")


def split(tokens, val_fraction):
    nval = int(math.floor(float(len(tokens)) * val_fraction))
    return len(tokens) - nval


def sequential_batch(tokens, ntrain, step, batch, seq):
    w = (ntrain - 1) // seq
    rows = []
    for r in range(batch):
        at = ((step * batch + r) % w) * seq
        rows.append(tokens[at : at + seq + 1])
    win = np.array(rows, dtype=np.int64)
    return win[:, :seq], win[:, 1:]


def lr_at(a, step):
    if step < a.warmup:
        return a.lr * float(step + 1) / float(a.warmup)
    if a.schedule == "constant":
        return a.lr
    span = a.steps - 1 - a.warmup
    p = float(step - a.warmup) / float(span if span > 1 else 1)
    p = min(p, 1.0)
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def decays(name, shape):
    return len(shape) >= 2 and name not in ("wte.weight", "wpe.weight")


def train(a, weights, cfg, tokens, dtype):
    params = {k: v.to(dtype).clone().requires_grad_(True) for k, v in weights.items()}
    names = sorted(params)
    groups = [
        {"params": [params[k] for k in names if decays(k, params[k].shape)], "weight_decay": a.weight_decay},
        {"params": [params[k] for k in names if not decays(k, params[k].shape)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    ntrain = split(tokens, a.val_fraction)
    losses, norms, lrs, grads1 = [], [], [], None
    for s in range(a.steps):
        x, y = sequential_batch(tokens, ntrain, s, a.batch, a.seq)
        opt.zero_grad(set_to_none=True)
        loss = ref.loss(ref.forward(params, cfg, x), y) if dtype == torch.float64 else \
            _loss_in(params, cfg, x, y, dtype)
        loss.backward()
        if s == 0:
            grads1 = {k: params[k].grad.detach().to(torch.float64).numpy().astype(np.float32) for k in names}
        plist = [params[k] for k in names]
        if a.clip > 0:
            gn = torch.nn.utils.clip_grad_norm_(plist, a.clip)
        else:
            gn = torch.norm(torch.stack([torch.norm(p.grad.detach(), 2) for p in plist]), 2)
        lr = lr_at(a, s)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(float(loss))
        norms.append(float(gn))
        lrs.append(lr)
    final = {k: params[k].detach().to(torch.float64).numpy().astype(np.float32) for k in names}
    return losses, norms, lrs, grads1, final


def _loss_in(params, cfg, x, y, dtype):
    """The same model in another dtype: gpt_reference computes in whatever
    dtype its weights have, except that its loss() casts to float64."""
    logits = ref.forward(params, cfg, x)
    t = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), t.reshape(-1))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=os.path.join(ROOT, "tests/fixtures/gpt_small/weights.safetensors"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/gpt_train"))
    ap.add_argument("--text", help="train on this file instead of generating text.txt")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--clip", type=float, default=2.5)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--compare-f32", action="store_true", help="also train in float32 and print the drift")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    os.makedirs(a.out, exist_ok=True)
    if a.text:
        with open(a.text, "rb") as f:
            text = f.read()
    else:
        text = make_text()
        with open(os.path.join(a.out, "text.txt"), "wb") as f:
            f.write(text)
    tokens = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    weights, cfg = ref.load_weights(a.weights, a.heads)

    losses, norms, lrs, grads1, final = train(a, weights, cfg, tokens, torch.float64)
    np.save(os.path.join(a.out, "losses.npy"), np.array(losses, dtype=np.float32))
    np.save(os.path.join(a.out, "grad_norms.npy"), np.array(norms, dtype=np.float32))
    np.save(os.path.join(a.out, "lrs.npy"), np.array(lrs, dtype=np.float64))
    safetensors_io.save(os.path.join(a.out, "grads_step1.safetensors"), grads1)
    safetensors_io.save(os.path.join(a.out, "final.safetensors"), final, {"format": "pt"})
    print("%r, %d tokens (%d train), batch %d x seq %d, %d steps" % (
        cfg, len(tokens), split(tokens, a.val_fraction), a.batch, a.seq, a.steps))
    for s in range(a.steps):
        print("step %2d  lr %.6e  loss %.9f  grad_norm %.6f" % (s + 1, lrs[s], losses[s], norms[s]))

    if a.compare_f32:
        l32, n32, _, g32, f32 = train(a, weights, cfg, tokens, torch.float32)
        lrel = max(abs(x - y) / abs(y) for x, y in zip(l32, losses))
        wabs = max(float(np.abs(f32[k] - final[k]).max()) for k in final)
        grel = max(float(np.linalg.norm(g32[k] - grads1[k]) / max(np.linalg.norm(grads1[k]), 1e-30)) for k in grads1)
        print("float32 torch vs float64: losses max rel %.3e, step-1 grads max normwise rel %.3e, "
              "final weights max abs %.3e" % (lrel, grel, wabs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
