"""torch_train_compare.py: PyTorch's side of the wall-clock training comparison.

Trains the same GPT-2 as `mswc train models/gpt.msw` (tools/bench_torch.py's
nn.Module, float32, GPT-2 initialisation) on the same byte-level corpus with
the same recipe: the tail --val-fraction of the bytes held out, random
windows of seq+1 bytes, AdamW (decay on rank-2 weights except embeddings),
global-norm clipping, linear warm-up then cosine to 10% of the rate (the
formula of docs/training.md). It stops after --steps or --minutes, whichever
comes first, then reports the held-out loss over every whole validation
batch, as `mswc eval` does. The loss curve goes to --csv.

    /usr/bin/python3 tools/torch_train_compare.py --data corpus.txt --steps 900 --threads 2
"""

import argparse
import csv
import math
import time

import torch
import torch.nn.functional as F

from bench_torch import GPT


def gpt2_init(model, layers):
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif "ln" in name:
            torch.nn.init.ones_(p)
        elif name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight"):
            torch.nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
        else:
            torch.nn.init.normal_(p, 0.0, 0.02)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, (step - args.warmup) / max(1, args.steps - 1 - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def held_out_loss(model, val, args):
    n = (len(val) - 1) // args.seq // args.batch
    total = 0.0
    for b in range(n):
        rows = [val[(b * args.batch + i) * args.seq:(b * args.batch + i) * args.seq + args.seq + 1]
                for i in range(args.batch)]
        w = torch.stack(rows).long()
        logits = model(w[:, :-1])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)).item()
    return total / max(1, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=1e9)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    data = torch.frombuffer(bytearray(open(args.data, "rb").read()), dtype=torch.uint8)
    nval = int(len(data) * args.val_fraction)
    train, val = data[:len(data) - nval], data[len(data) - nval:]

    model = GPT(256, args.ctx, args.d, args.heads, args.layers)
    gpt2_init(model, args.layers)
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    rest = [p for n, p in named if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    out = csv.writer(open(args.csv, "w")) if args.csv else None
    if out:
        out.writerow(["step", "loss", "elapsed_s"])
    t0 = time.perf_counter()
    step = 0
    while step < args.steps and time.perf_counter() - t0 < 60 * args.minutes:
        starts = torch.randint(0, len(train) - args.seq - 1, (args.batch,))
        w = torch.stack([train[s:s + args.seq + 1] for s in starts.tolist()]).long()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 256), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        if out:
            out.writerow([step, f"{loss.item():.6f}", f"{time.perf_counter() - t0:.2f}"])
        step += 1
    train_s = time.perf_counter() - t0
    model.eval()
    val_loss = held_out_loss(model, val, args)
    print(f"torch {torch.__version__}: {step} steps in {train_s:.0f} s "
          f"({train_s / max(1, step) * 1e3:.0f} ms/step, {step * args.batch * args.seq / train_s:.0f} tokens/s), "
          f"held-out loss {val_loss:.4f} nats/byte")


if __name__ == "__main__":
    main()
