"""bench_torch.py: the PyTorch side of mswc's training and generation benchmarks.

Times, on this machine and with the given thread count, what `mswc bench`
times for mswc: one training step of GPT-2 (forward, backward, gradient
clipping, AdamW) and generation with a KV cache (tokens/s), in float32, the
way a PyTorch user would write it (nn.Module, torch.optim.AdamW). It is a
peer for comparison, not a reference for numerics (gpt_reference.py is).

    /usr/bin/python3 tools/bench_torch.py --d 256 --layers 4 --threads 1
prints one line per measurement:  torch train_step_ms=...  forward_ms=...  gen_tokens_per_s=...
(forward_ms: the inference forward of a whole batch, no gradients).

With --decode it times what `mswc bench decode` times instead, and prints
    torch VERSION decode_ms=A,B,C prefill_tokens_per_s=X
decode_ms: batch-1 greedy decode, ms per token over --gen-tokens tokens
after a prompt of P + 2 * gen_tokens * w tokens, for windows w = 0 ..
--windows - 1 (P = --prompt; the prompt is one forward); prefill: one
forward over --prefill tokens. Best of --repeat.
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def attend(self, x, cache, pos):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            cache[0][:, :, pos:pos + t] = k
            cache[1][:, :, pos:pos + t] = v
            k, v = cache[0][:, :, :pos + t], cache[1][:, :, :pos + t]
        s = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(hd))
        s_len = k.shape[2]
        mask = torch.ones(t, s_len, dtype=torch.bool).tril(diagonal=s_len - t)
        s = s.masked_fill(~mask, float("-inf"))
        y = F.softmax(s, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x, cache=None, pos=0):
        x = x + self.attend(self.ln_1(x), cache, pos)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, d, heads, layers):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, tokens, caches=None, pos=0):
        t = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(pos, pos + t))
        for i, block in enumerate(self.h):
            x = block(x, caches[i] if caches else None, pos)
        return self.ln_f(x) @ self.wte.weight.t()


def best_of(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_train(model, args):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq))

    def step():
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, args.vocab), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return best_of(step, args.repeat)


@torch.no_grad()
def bench_forward(model, args):
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq))
    return best_of(lambda: model(tokens), args.repeat)


@torch.no_grad()
def bench_generate(model, args):
    hd = args.d // args.heads
    n = min(args.gen_tokens, args.ctx)

    def generate():
        caches = [(torch.zeros(1, args.heads, args.ctx, hd), torch.zeros(1, args.heads, args.ctx, hd))
                  for _ in range(args.layers)]
        tok = torch.zeros(1, 1, dtype=torch.long)
        for pos in range(n):
            logits = model(tok, caches, pos)
            tok = logits[:, -1].argmax(-1, keepdim=True)

    return n / best_of(generate, max(1, args.repeat // 2))


@torch.no_grad()
def bench_decode(model, args):
    hd = args.d // args.heads
    n = args.gen_tokens
    text = torch.randint(0, args.vocab, (1, args.ctx))

    def fresh():
        return [(torch.zeros(1, args.heads, args.ctx, hd), torch.zeros(1, args.heads, args.ctx, hd))
                for _ in range(args.layers)]

    def window(p):
        caches = fresh()
        tok = model(text[:, :p], caches, 0)[:, -1].argmax(-1, keepdim=True)
        t0 = time.perf_counter()
        for pos in range(p, p + n):
            tok = model(tok, caches, pos)[:, -1].argmax(-1, keepdim=True)
        return (time.perf_counter() - t0) / n

    window(args.prompt)  # warm-up
    ms = []
    for w in range(args.windows):
        p = args.prompt + 2 * n * w
        ms.append(1e3 * min(window(p) for _ in range(args.repeat)))
    caches = fresh()
    t = best_of(lambda: model(text[:, :args.prefill], caches, 0), max(3, args.repeat))
    return ms, args.prefill / t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--decode", action="store_true", help="time decode and prefill only")
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--prefill", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = GPT(args.vocab, args.ctx, args.d, args.heads, args.layers)
    nparam = sum(p.numel() for p in model.parameters())
    if args.decode:
        model.eval()
        ms, prefill = bench_decode(model, args)
        print(f"torch {torch.__version__} decode_ms={','.join(f'{x:.3f}' for x in ms)} "
              f"prefill_tokens_per_s={prefill:.1f}")
        return
    step = bench_train(model, args)
    model.eval()
    fwd = bench_forward(model, args)
    gen = bench_generate(model, args)
    print(f"torch {torch.__version__} d={args.d} layers={args.layers} params={nparam / 1e6:.2f}M "
          f"threads={args.threads} batch={args.batch} seq={args.seq} "
          f"train_step_ms={1e3 * step:.1f} forward_ms={1e3 * fwd:.1f} gen_tokens_per_s={gen:.1f}")


if __name__ == "__main__":
    main()
