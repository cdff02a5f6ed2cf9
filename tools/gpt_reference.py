"""gpt_reference.py: an independent GPT-2 in plain PyTorch, the yardstick for mswc's numerics.

Written from the GPT-2 definition (Radford et al. 2019, and the layout of
Hugging Face's GPT-2 checkpoints), not from mswc's sources and without the
`transformers` package, so that a shared misunderstanding cannot hide a bug.

The model:
    h      = wte[tokens] + wpe[0..seq)
    per block i (pre-LayerNorm):
      h   += c_proj(attention(ln_1(h)))      causal, heads = contiguous hd-sized column chunks
      h   += mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(h))))
    logits = ln_f(h) @ wte^T                 the LM head is tied to the token embedding
    loss   = mean over (batch, seq) of cross-entropy(logits, targets)
Linears are HF "Conv1D": y = x @ W + b with W stored [in, out]; c_attn's
output columns are q | k | v, each d wide. LayerNorm uses the biased variance
and eps = 1e-5 inside the square root. GELU is the tanh approximation.

Everything is computed in float64 from the float32 weights, so the reference
is accurate to ~1e-15 and the tolerance of a test measures mswc's float32
kernels alone.

Use as a module (load_weights, config_from_weights, forward, loss) or run
`/usr/bin/python3 tools/gpt_reference.py --selftest` for the sanity checks
that this file is itself right (naive loop attention, an incremental
token-by-token forward in numpy, softmax rows, causality, uniform loss).
"""

import math
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

LN_EPS = 1e-5


class Config:
    def __init__(self, vocab=256, ctx=256, d=256, heads=4, layers=4):
        if d % heads:
            raise ValueError("d=%d is not a multiple of heads=%d" % (d, heads))
        self.vocab, self.ctx, self.d, self.heads, self.layers = vocab, ctx, d, heads, layers

    def __repr__(self):
        return "Config(vocab=%d, ctx=%d, d=%d, heads=%d, layers=%d)" % (
            self.vocab, self.ctx, self.d, self.heads, self.layers)


def param_shapes(cfg):
    """Every parameter of the model, name -> shape, in the HF GPT-2 layout."""
    d, s = cfg.d, {}
    s["wte.weight"] = (cfg.vocab, d)
    s["wpe.weight"] = (cfg.ctx, d)
    for i in range(cfg.layers):
        p = "h.%d." % i
        s[p + "ln_1.weight"] = (d,)
        s[p + "ln_1.bias"] = (d,)
        s[p + "attn.c_attn.weight"] = (d, 3 * d)
        s[p + "attn.c_attn.bias"] = (3 * d,)
        s[p + "attn.c_proj.weight"] = (d, d)
        s[p + "attn.c_proj.bias"] = (d,)
        s[p + "ln_2.weight"] = (d,)
        s[p + "ln_2.bias"] = (d,)
        s[p + "mlp.c_fc.weight"] = (d, 4 * d)
        s[p + "mlp.c_fc.bias"] = (4 * d,)
        s[p + "mlp.c_proj.weight"] = (4 * d, d)
        s[p + "mlp.c_proj.bias"] = (d,)
    s["ln_f.weight"] = (d,)
    s["ln_f.bias"] = (d,)
    return s


def config_from_weights(w, heads=4):
    """Infer the hyperparameters from the tensors' shapes and names."""
    if "wte.weight" not in w or "wpe.weight" not in w:
        raise ValueError("weights lack wte.weight or wpe.weight")
    vocab, d = w["wte.weight"].shape
    ctx = w["wpe.weight"].shape[0]
    idx = {int(m.group(1)) for m in (re.match(r"h\.(\d+)\.", k) for k in w) if m}
    layers = max(idx) + 1 if idx else 0
    if idx != set(range(layers)):
        raise ValueError("block indices %s are not 0..%d" % (sorted(idx), layers - 1))
    return Config(vocab=vocab, ctx=ctx, d=d, heads=heads, layers=layers)


def check_weights(w, cfg):
    """Every parameter present with the right shape and dtype F32, nothing extra."""
    want = param_shapes(cfg)
    missing = sorted(set(want) - set(w))
    extra = sorted(set(w) - set(want))
    if missing or extra:
        raise ValueError("weights do not match %r: missing %s, unexpected %s" % (cfg, missing, extra))
    for k, shape in want.items():
        if tuple(w[k].shape) != shape:
            raise ValueError("%s: shape %s, expected %s" % (k, tuple(w[k].shape), shape))
        if w[k].dtype != np.float32:
            raise ValueError("%s: dtype %s, expected float32" % (k, w[k].dtype))


def load_weights(path, heads=4):
    """(weights as float64 torch tensors, Config) from a safetensors file."""
    arrays, _ = safetensors_io.load(path)
    cfg = config_from_weights(arrays, heads)
    check_weights(arrays, cfg)
    return {k: torch.from_numpy(v.astype(np.float64)) for k, v in arrays.items()}, cfg


# ---- the model ----

def layernorm(x, weight, bias, eps=LN_EPS):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)   # biased, as in GPT-2
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def conv1d(x, weight, bias):
    """HF Conv1D: weight is [in, out]."""
    return x @ weight + bias


def attention(x, w, p, cfg):
    B, T, d = x.shape
    H, hd = cfg.heads, d // cfg.heads
    qkv = conv1d(x, w[p + "c_attn.weight"], w[p + "c_attn.bias"])      # [B,T,3d]
    q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]

    def heads(t):  # [B,T,d] -> [B,H,T,hd]; head j owns columns j*hd .. (j+1)*hd
        return t.reshape(B, T, H, hd).permute(0, 2, 1, 3)

    q, k, v = heads(q), heads(k), heads(v)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)                       # [B,H,T,T]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    s = s.masked_fill(future, float("-inf"))
    s = s - s.max(dim=-1, keepdim=True).values
    e = torch.exp(s)
    a = e / e.sum(dim=-1, keepdim=True)
    y = (a @ v).permute(0, 2, 1, 3).reshape(B, T, d)
    return conv1d(y, w[p + "c_proj.weight"], w[p + "c_proj.bias"])


def mlp(x, w, p):
    hmid = gelu_tanh(conv1d(x, w[p + "c_fc.weight"], w[p + "c_fc.bias"]))
    return conv1d(hmid, w[p + "c_proj.weight"], w[p + "c_proj.bias"])


def forward(w, cfg, tokens):
    """Logits [B,T,vocab] in float64 for int tokens [B,T] (numpy or torch)."""
    tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.int64)
    if tokens.dim() != 2:
        raise ValueError("tokens must be [batch, seq], got %s" % (tuple(tokens.shape),))
    B, T = tokens.shape
    if T > cfg.ctx:
        raise ValueError("seq %d exceeds ctx %d" % (T, cfg.ctx))
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= cfg.vocab):
        raise ValueError("token out of [0, %d)" % cfg.vocab)
    h = w["wte.weight"][tokens] + w["wpe.weight"][:T]
    for i in range(cfg.layers):
        p = "h.%d." % i
        h = h + attention(layernorm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"]), w, p + "attn.", cfg)
        h = h + mlp(layernorm(h, w[p + "ln_2.weight"], w[p + "ln_2.bias"]), w, p + "mlp.")
    h = layernorm(h, w["ln_f.weight"], w["ln_f.bias"])
    return h @ w["wte.weight"].T


def loss(logits, targets):
    """Mean cross-entropy over every (batch, seq) position, float64."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    m = logits.max(dim=-1, keepdim=True).values
    lse = (m + torch.log(torch.exp(logits - m).sum(dim=-1, keepdim=True))).squeeze(-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (lse - picked).mean()


# ---- self-test: is this file right? ----

def _random_weights(cfg, seed):
    g = np.random.default_rng(seed)
    w = {}
    for k, shape in param_shapes(cfg).items():
        base = 1.0 if k.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0
        w[k] = (base + 0.2 * g.standard_normal(shape)).astype(np.float32)
    return w


def _incremental_numpy(wn, cfg, toks):
    """A second, structurally different GPT-2: numpy, one token at a time with
    a key/value cache, explicit loops over heads and cached positions. It
    shares no code with forward()."""
    d, H = cfg.d, cfg.heads
    hd = d // H
    wn = {k: v.astype(np.float64) for k, v in wn.items()}

    def ln(x, g, b):
        mu = sum(x) / len(x)
        var = sum((xi - mu) ** 2 for xi in x) / len(x)
        return (x - mu) / math.sqrt(var + LN_EPS) * g + b

    cache = [([], []) for _ in range(cfg.layers)]
    out = []
    for t, tok in enumerate(toks):
        h = wn["wte.weight"][tok] + wn["wpe.weight"][t]
        for i in range(cfg.layers):
            p = "h.%d." % i
            a = ln(h, wn[p + "ln_1.weight"], wn[p + "ln_1.bias"])
            qkv = a @ wn[p + "attn.c_attn.weight"] + wn[p + "attn.c_attn.bias"]
            q, k, v = qkv[:d], qkv[d : 2 * d], qkv[2 * d :]
            cache[i][0].append(k)
            cache[i][1].append(v)
            y = np.zeros(d)
            for j in range(H):
                cols = slice(j * hd, (j + 1) * hd)
                scores = [float(np.dot(q[cols], kk[cols])) / math.sqrt(hd) for kk in cache[i][0]]
                mx = max(scores)
                ex = [math.exp(s - mx) for s in scores]
                z = sum(ex)
                for e, vv in zip(ex, cache[i][1]):
                    y[cols] += e / z * vv[cols]
            h = h + y @ wn[p + "attn.c_proj.weight"] + wn[p + "attn.c_proj.bias"]
            m = ln(h, wn[p + "ln_2.weight"], wn[p + "ln_2.bias"])
            u = m @ wn[p + "mlp.c_fc.weight"] + wn[p + "mlp.c_fc.bias"]
            u = np.array([0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))) for x in u])
            h = h + u @ wn[p + "mlp.c_proj.weight"] + wn[p + "mlp.c_proj.bias"]
        f = ln(h, wn["ln_f.weight"], wn["ln_f.bias"])
        out.append(wn["wte.weight"] @ f)
    return np.stack(out)


def selftest():
    torch.manual_seed(0)
    failures = []

    def check(ok, what):
        print("%-62s %s" % (what, "ok" if ok else "FAIL"))
        if not ok:
            failures.append(what)

    cfg = Config(vocab=37, ctx=12, d=24, heads=3, layers=2)
    wn = _random_weights(cfg, 1)
    w = {k: torch.from_numpy(v.astype(np.float64)) for k, v in wn.items()}
    rng = np.random.default_rng(2)
    toks = rng.integers(0, cfg.vocab, size=(2, 9)).astype(np.int32)

    # 1. One head of attention against a naive triple loop.
    x = torch.randn(1, 5, cfg.d, dtype=torch.float64)
    B, T, d, hd = 1, 5, cfg.d, cfg.d // cfg.heads
    p = "h.0.attn."
    got = attention(x, w, p, cfg)
    qkv = (x[0] @ w[p + "c_attn.weight"] + w[p + "c_attn.bias"]).numpy()
    y = np.zeros((T, d))
    for j in range(cfg.heads):
        for t in range(T):
            sc = [sum(qkv[t, j * hd + c] * qkv[s, d + j * hd + c] for c in range(hd)) / math.sqrt(hd)
                  for s in range(t + 1)]
            mx = max(sc)
            ex = [math.exp(v - mx) for v in sc]
            for s in range(t + 1):
                for c in range(hd):
                    y[t, j * hd + c] += ex[s] / sum(ex) * qkv[s, 2 * d + j * hd + c]
    want = y @ w[p + "c_proj.weight"].numpy() + w[p + "c_proj.bias"].numpy()
    check(np.abs(got[0].numpy() - want).max() < 1e-12, "attention == naive loops (all heads)")

    # 2. Building blocks against torch's own.
    z = torch.randn(4, 7, cfg.d, dtype=torch.float64)
    g, b = w["h.0.ln_1.weight"], w["h.0.ln_1.bias"]
    check(torch.allclose(layernorm(z, g, b), torch.nn.functional.layer_norm(z, (cfg.d,), g, b, LN_EPS),
                         rtol=0, atol=1e-12), "layernorm == torch.nn.functional.layer_norm")
    check(torch.allclose(gelu_tanh(z), torch.nn.functional.gelu(z, approximate="tanh"), rtol=0, atol=1e-12),
          "gelu_tanh == F.gelu(approximate='tanh')")
    lg = torch.randn(3, 5, 11, dtype=torch.float64)
    tg = torch.randint(0, 11, (3, 5))
    check(abs(float(loss(lg, tg)) - float(torch.nn.functional.cross_entropy(lg.reshape(-1, 11), tg.reshape(-1))))
          < 1e-12, "loss == F.cross_entropy (mean)")

    # 3. Softmax rows sum to 1 and put no weight on the future.
    s = torch.randn(2, 3, 6, 6, dtype=torch.float64).masked_fill(
        torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), float("-inf"))
    a = torch.softmax(s, dim=-1)
    check(torch.allclose(a.sum(-1), torch.ones(2, 3, 6, dtype=torch.float64)) and
          float(a.masked_select(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)).abs().max()) == 0.0,
          "masked softmax rows sum to 1, future weight 0")

    # 4. Uniform logits: loss is log(vocab).
    check(abs(float(loss(torch.zeros(2, 3, 256, dtype=torch.float64), torch.randint(0, 256, (2, 3))))
              - math.log(256)) < 1e-14, "loss of uniform logits == log(256)")

    # 5. The whole model against the incremental numpy implementation.
    lf = forward(w, cfg, toks).numpy()
    li = np.stack([_incremental_numpy(wn, cfg, row) for row in toks])
    err = np.abs(lf - li).max()
    check(err < 1e-10, "forward == incremental numpy KV-cache model (max %.1e)" % err)

    # 6. Causality: changing the last token changes no earlier position.
    t2 = toks.copy()
    t2[:, -1] = (t2[:, -1] + 1) % cfg.vocab
    l2 = forward(w, cfg, t2).numpy()
    check(np.array_equal(lf[:, :-1], l2[:, :-1]) and not np.array_equal(lf[:, -1], l2[:, -1]),
          "causal: last token affects only the last position")

    # 7. Batch rows are independent.
    check(np.abs(forward(w, cfg, toks[1:]).numpy()[0] - lf[1]).max() < 1e-12, "batch rows independent")

    # 8. Tied head: logits are exactly ln_f(h) @ wte^T (replace wte -> logits change).
    w2 = dict(w)
    w2["wte.weight"] = w["wte.weight"] * 2
    check(not np.allclose(forward(w2, cfg, toks).numpy(), lf), "LM head reads wte (tied)")

    # 9. safetensors round trip and strictness.
    blob = safetensors_io.dumps(wn, {"k": "v"})
    back, meta = safetensors_io.loads(blob)
    check(meta == {"k": "v"} and list(back) == sorted(wn) and all(np.array_equal(back[k], wn[k]) for k in wn)
          and (int.from_bytes(blob[:8], "little") % 8 == 0), "safetensors round trip, sorted, padded to 8")
    bad = 0
    for mutilated in (blob[:-1], blob + b"\0", blob[:4]):
        try:
            safetensors_io.loads(mutilated)
        except safetensors_io.SafetensorsError:
            bad += 1
    check(bad == 3, "safetensors rejects truncated / trailing bytes")

    print("%d checks failed" % len(failures))
    return 1 if failures else 0


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true", help="run the sanity checks of this reference")
    ap.add_argument("--weights", help="safetensors file with HF GPT-2 names")
    ap.add_argument("--tokens", help=".npy of int tokens [batch, seq]")
    ap.add_argument("--targets", help=".npy of int targets [batch, seq] (prints the loss)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--out", help="write logits (float32) to this .npy")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.selftest:
        return selftest()
    if not a.weights or not a.tokens:
        ap.error("--weights and --tokens are required (or --selftest)")
    w, cfg = load_weights(a.weights, a.heads)
    logits = forward(w, cfg, np.load(a.tokens))
    print("%r logits %s" % (cfg, tuple(logits.shape)))
    if a.targets:
        print("loss %.9f" % float(loss(logits, np.load(a.targets))))
    if a.out:
        np.save(a.out, logits.numpy().astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
