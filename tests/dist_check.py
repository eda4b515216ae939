"""Train a deterministic toy model with `mmvsim.train.train` and write what each process ends with.

Run by `tests/test_distributed.py`, once under `torchrun --nproc_per_node 2` (per-process batch 4) and once as a
single process (batch 8): same data, same order, same global batch. Each process writes `<tag>_rank<r>.safetensors`
(its final weights) and `<tag>_info_rank<r>.json` (world size, backend, summary). With `--resume`, the run is also
repeated interrupted mid-epoch and resumed, into `<tag>-resumed_*`.
"""
import argparse, json, os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from safetensors.torch import save_file

from mmvsim.training.core import TrainConfig
from mmvsim.training.loop import train


class Toy(nn.Module):
    """Deterministic MLP regression on `{'inp': {'x': (B, D)}, 'y': (B,)}` batches."""
    def __init__(self, d=6, h=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, 1))

    def forward(self, batch):
        pred = self.net(batch['inp']['x']).squeeze(-1)  # (B,)
        mse, l1 = F.mse_loss(pred, batch['y']), (pred - batch['y']).abs().mean()
        return {'loss': mse + 0.1 * l1, 'mse': mse, 'l1': l1}


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=64, d=6, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=g)                                  # (N, D)
        self.y = torch.tanh(self.x @ torch.randn(d, generator=g) / 2)           # (N,)
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return {'inp': {'x': self.x[i]}, 'y': self.y[i]}


def toy(seed=0):
    torch.manual_seed(seed)
    return Toy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out', type=Path)
    ap.add_argument('--batch-size', type=int, required=True)   # per process
    ap.add_argument('--tag', required=True)
    ap.add_argument('--resume', action='store_true')             # also run interrupted + resumed
    a = ap.parse_args()
    data = ToyData()
    eval_fn = lambda m: {'mse': m({'inp': {'x': data.x}, 'y': data.y})['mse'].item()}
    cfg = TrainConfig(epochs=2, batch_size=a.batch_size, lr_new=1e-2, warmup_ratio=0.1, log_every=2, save_every=3,
                      eval_every=4, best_metric='mse', greater_is_better=False, plot=False)
    rank = int(os.environ.get('RANK', 0))

    def record(tag, model, summary):
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
                  a.out/f'{tag}_rank{rank}.safetensors')
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        info = {'world_size': torch.distributed.get_world_size() if dist else 1,
                'backend': torch.distributed.get_backend() if dist else None, 'summary': summary}
        (a.out/f'{tag}_info_rank{rank}.json').write_text(json.dumps(info))

    m = toy()
    record(a.tag, m, train(m, data, cfg, a.out/a.tag, eval_fn=eval_fn))
    if a.resume:
        run = a.out/f'{a.tag}-resumed'
        train(toy(), data, cfg, run, eval_fn=eval_fn, stop_after=5)     # 5 of 8 steps in epoch 0
        m = toy(seed=1)
        record(f'{a.tag}-resumed', m, train(m, data, cfg, run, eval_fn=eval_fn))


if __name__ == '__main__':
    main()
