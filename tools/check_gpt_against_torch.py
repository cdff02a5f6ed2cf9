"""check_gpt_against_torch.py: cross-check an `mswc run` of models/gpt.msw against PyTorch.

    mswc init models/gpt.msw -o w.safetensors --seed 1
    /usr/bin/python3 -c "import numpy as np; np.save('t.npy', np.random.default_rng(0).integers(0, 256, (2, 32), dtype=np.int32))"
    mswc run models/gpt.msw --weights w.safetensors --input tokens=t.npy --out out.safetensors
    /usr/bin/python3 tools/check_gpt_against_torch.py --weights w.safetensors --tokens t.npy --out out.safetensors

Recomputes the logits with the independent reference (tools/gpt_reference.py,
float64) from the same weights and tokens, and compares them with the tensor
"logits" in mswc's output file. Hyperparameters come from the weights: vocab
and d from wte, ctx from wpe, layers from the h.N names; heads cannot be
seen in the shapes and is --heads (default 4, the model's default). If
--targets is given (and was given to `mswc run` as --input targets=...), the
loss in the output file is compared too.

Prints the max abs and normwise relative differences; exits 0 if the
relative error of the logits (and loss) is below --tol (1e-4), 1 if not,
2 on bad input.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="weights (mswc init output), HF GPT-2 names")
    ap.add_argument("--tokens", required=True, help="int tokens [batch, seq] .npy given to mswc run")
    ap.add_argument("--out", required=True, help="mswc run --out file (safetensors with 'logits')")
    ap.add_argument("--targets", help="int targets .npy given to mswc run: compare the loss too")
    ap.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max normwise relative error (1e-4)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)

    try:
        w, cfg = ref.load_weights(a.weights, a.heads)
        tokens = np.load(a.tokens)
        outs, _ = safetensors_io.load(a.out)
        if "logits" not in outs:
            raise ValueError("%s has no tensor 'logits' (has %s)" % (a.out, sorted(outs)))
        got = outs["logits"].astype(np.float64)
        want = ref.forward(w, cfg, tokens).numpy()
        if got.shape != want.shape:
            raise ValueError("logits shape %s from mswc, %s from the reference"
                             % (got.shape, want.shape))
    except (OSError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2

    print("%r, tokens %s" % (cfg, tuple(tokens.shape)))
    diff = got - want
    rel = float(np.linalg.norm(diff) / np.linalg.norm(want))
    mx = float(np.abs(diff).max()) if diff.size else 0.0
    worst = np.unravel_index(np.abs(diff).argmax(), diff.shape) if diff.size else ()
    print("logits: max abs diff %.3e at %s (mswc %.6f, torch %.6f), normwise rel %.3e, max |logit| %.3f"
          % (mx, tuple(int(i) for i in worst), got[worst] if diff.size else 0,
             want[worst] if diff.size else 0, rel, float(np.abs(want).max())))
    ok = bool(np.isfinite(got).all()) and rel < a.tol
    if not np.isfinite(got).all():
        print("logits: %d non-finite values from mswc" % int((~np.isfinite(got)).sum()))

    if a.targets:
        lw = float(ref.loss(torch.from_numpy(want), np.load(a.targets)))
        if "loss" in outs:
            lg = float(np.asarray(outs["loss"]).reshape(-1)[0])
            lrel = abs(lg - lw) / abs(lw)
            print("loss: mswc %.9f, torch %.9f, rel %.3e" % (lg, lw, lrel))
            ok = ok and lrel < a.tol
        else:
            print("loss: torch %.9f; mswc's output has no 'loss' (was --input targets=... given?)" % lw)
            ok = False

    print("PASS" if ok else "FAIL (tolerance %g)" % a.tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
